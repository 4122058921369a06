"""The operator console in a real browser (Debian's Chromium, driven by its chromedriver through Selenium): the live
image, a planned shot on the belt map, the status panel, and the fault list when the camera stops delivering."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from sorter.config import load_config
from sorter.runtime.line import build_line
from sorter.runtime.loops import run_line
from sorter.runtime.service_setup import start_service

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs a real Chromium: apt-get install chromium chromium-driver",
)


class CameraGate:
    """The simulated camera with a switch: while closed, it delivers no frame (a camera that stopped)."""

    def __init__(self, world: Any) -> None:
        self.open = threading.Event()
        self.open.set()
        self.released = threading.Event()
        self._capture = world.capture
        world.capture = self.capture  # the capture thread calls world.capture for every frame

    def capture(self, *args: Any, **kwargs: Any) -> Any:
        while not self.open.wait(0.05) and not self.released.is_set():
            pass
        return self._capture(*args, **kwargs)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--disable-dev-shm-usage", "--window-size=1600,1300", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _until(driver: Any, script: str, timeout_s: float, what: str) -> Any:
    """Poll ``script`` (JavaScript returning a value) in the page until it is truthy."""
    t_end = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < t_end:
        last = driver.execute_script(script)
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"the page never showed {what} (last: {last!r})")


def _shot(driver: Any, element_id: str, out: Path) -> np.ndarray:
    """A screenshot of one element, kept as a PNG next to the test's files; decoded for checking."""
    from selenium.webdriver.common.by import By

    png = driver.find_element(By.ID, element_id).screenshot_as_png
    out.write_bytes(png)
    keep = os.environ.get("SORTER_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(keep) / out.name)
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.size > 0
    return img


def _page_shot(driver: Any, out: Path) -> None:
    driver.save_screenshot(str(out))
    keep = os.environ.get("SORTER_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(keep) / out.name)


def _colour_share(img: np.ndarray, bgr: tuple[int, int, int], tol: int = 40) -> float:
    return float(np.mean(np.all(np.abs(img.astype(np.int16) - np.array(bgr, np.int16)) <= tol, axis=2)))


PIXELS_JS = """
const c = document.getElementById('frame');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0, s = 0, s2 = 0;
for (let i = 0; i < d.length; i += 4 * 97) { const y = (d[i] + d[i + 1] + d[i + 2]) / 3; n++; s += y; s2 += y * y; }
const m = s / n; return {live: c.dataset.live, w: c.width, h: c.height, mean: m, std: Math.sqrt(s2 / n - m * m)};
"""


def test_console_in_chromium(browser: Any, tmp_path: Path) -> None:
    cfg = load_config(None, ["detector.type=oracle", "sim.density_per_m2=3", "camera.fps=30", "service.http_port=0",
                             "camera.stale_after_ms=300"])
    line = build_line(cfg, fast=False)
    gate = CameraGate(line.plant.world)  # type: ignore[attr-defined]
    _service, server = start_service(line, None)
    assert server is not None
    stop = threading.Event()
    summary: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: summary.update(run_line(line, None, False, stop)), name="line")
    runner.start()
    def text(element_id: str) -> str:
        return str(browser.execute_script(f"return document.getElementById('{element_id}').textContent"))

    try:
        browser.get(server.url)
        nav = browser.execute_script("return performance.getEntriesByType('navigation')[0].toJSON()")
        load_ms = float(nav["loadEventEnd"]) - float(nav["startTime"])
        assert 0 < load_ms <= 1000.0, f"page load took {load_ms:.0f} ms"
        assert browser.execute_script("return [...document.images].filter(i => !i.complete || !i.naturalWidth).length") == 0
        _page_shot(browser, tmp_path / "console-first-paint.png")  # the placeholder, never a broken image

        # the live image: drawn on the canvas, not blank
        live_frame = "const r = (function(){" + PIXELS_JS + "})(); return r.live === '1' && r.std > 8 ? r : null;"
        px = _until(browser, live_frame, 60.0, "a live frame")
        assert (px["w"], px["h"]) == (1280, 720)
        img = _shot(browser, "frame", tmp_path / "console-frame.png")
        assert float(img.std()) > 8.0  # a picture, not an empty box

        # status panel
        _until(browser, "return document.getElementById('state').textContent === 'RUNNING'", 30.0, "state RUNNING")
        _until(browser, "return parseFloat(document.getElementById('fps').textContent) > 0", 30.0, "a frame rate")
        assert "ms" in text("latency").lower() or text("latency").startswith("stage")

        # a planned shot on the belt map (a valve window ahead of or at the ejection line)
        # (the belt runs at 2.5 m/s: a shot crosses the map in about a second, so look until one is caught on camera)
        shot_colours = [(32, 160, 240), (113, 191, 47)]  # BGR of planned (amber) and fired (green) shots
        share = 0.0
        for _ in range(20):
            n_shots = _until(browser, "return document.querySelectorAll('#belt .shot').length", 60.0, "a planned shot")
            assert n_shots >= 1
            belt = _shot(browser, "belt", tmp_path / "console-belt.png")
            share = max(_colour_share(belt, c) for c in shot_colours)
            if share > 0.0005:
                break
        assert share > 0.0005, "shots are in the page but none was seen drawn"
        _page_shot(browser, tmp_path / "console-running.png")

        # the camera stops: the fault list says so with its time, the badge turns, the image is marked stalled
        gate.open.clear()
        _until(browser, "return [...document.querySelectorAll('#faults li.fault.degraded .kind')]"
                        ".some(e => e.textContent === 'camera')", 30.0, "a camera fault in the list")
        _until(browser, "return document.getElementById('state').textContent === 'DEGRADED'", 30.0, "state DEGRADED")
        _until(browser, "return document.getElementById('frame').dataset.live === '0'", 30.0, "the stalled image marked")
        assert "camera" in text("reason")
        fault_row = browser.execute_script("return document.querySelector('#faults li.fault.degraded').textContent")
        assert ":" in fault_row.split()[0]  # starts with its time of day
        _page_shot(browser, tmp_path / "console-camera-lost.png")
        stalled = _shot(browser, "frame", tmp_path / "console-frame-stalled.png")
        assert float(stalled.std()) > 8.0

        # back: recovered, running again
        gate.open.set()
        _until(browser, "return document.getElementById('state').textContent === 'RUNNING'", 30.0, "RUNNING again")
        _until(browser, "return [...document.querySelectorAll('#faults li.fault.recovered .kind')]"
                        ".some(e => e.textContent === 'camera')", 30.0, "the camera's recovery in the list")
        _until(browser, "return document.getElementById('frame').dataset.live === '1'", 30.0, "the live image back")
        _page_shot(browser, tmp_path / "console-recovered.png")
    finally:
        gate.released.set()
        gate.open.set()
        stop.set()
        runner.join(30)
        server.close()
    assert not runner.is_alive()
    assert summary["commands_executed_late"] == 0
