"""A plugin package adds a camera, a detector and an actuator through entry points, and a line runs on them.

``tests/plugins/sorter_example_plugin`` is built and installed by pip into a throwaway site directory (on the
``PYTHONPATH`` of the sorter processes this test starts, so the test environment itself is left untouched).
Its three types then validate in the config, ``sorter check`` lists them with their package, and ``sorter
run`` sorts with them: the synthetic camera's boxes are detected, tracked and planned, and the logging
actuator writes the fire commands it receives.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sorter.calib_store import CalibrationStore
from sorter.geometry import CameraModel

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "tests" / "plugins" / "sorter_example_plugin"
W_PX, H_PX, HEIGHT_MM = 320, 240, 1000.0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("plugin-site")
    source = tmp_path_factory.mktemp("plugin-build") / "src"
    shutil.copytree(PLUGIN, source)  # setuptools builds in the source folder: keep the checkout clean
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-cache-dir",
         "--target", str(target), str(source)],
        check=True, timeout=300, env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"),
    )
    yield target


def _sorter(args: list[str], site: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "sorter.cli", *args], capture_output=True, text=True, timeout=240, cwd=cwd,
                          env=env)


def _line(tmp_path: Path) -> list[str]:
    """A real-camera line on the plugins: a calibration matching the synthetic camera's scale, commands logged."""
    cam = CameraModel.looking_down(W_PX, H_PX, 60.0, HEIGHT_MM, 600.0)
    lens = {"width_px": W_PX, "height_px": H_PX, "fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy, "dist": list(cam.dist)}
    store = CalibrationStore(tmp_path / "calib", "plugin-line")
    now = datetime.now(UTC)
    store.add("intrinsics", {**lens, "rms_px": 0.3, "passed": True, "problems": []}, now)
    store.add("belt", {**lens, "rvec": list(cam.rvec), "tvec_mm": list(cam.tvec_mm), "rms_mm": 0.4, "passed": True,
                       "problems": []}, now)
    sets = [
        "line.name=plugin-line", "camera.type=example_pattern", f"camera.width_px={W_PX}", f"camera.height_px={H_PX}",
        "camera.fps=30", f"camera.calibration_file={tmp_path / 'calib' / 'plugin-line'}",
        f"camera.options={{px_per_mm: {cam.fx / HEIGHT_MM}, centre_x_mm: 600.0, centre_y_mm: 0.0}}",
        "detector.type=example_blobs", "actuator.type=example_log", f"actuator.options={{path: {tmp_path / 'cmd.jsonl'}}}",
    ]
    return [a for s in sets for a in ("--set", s)]


def test_plugin_types_are_unknown_until_installed(tmp_path: Path) -> None:
    r = _sorter(["check", "--config-only", *_line(tmp_path)], None, tmp_path)
    assert r.returncode == 2
    assert "unknown camera type 'example_pattern'" in r.stderr and "plugins: none installed" in r.stderr
    assert "built-in: sim, opencv" in r.stderr


def test_check_lists_the_plugins_and_passes(site: Path, tmp_path: Path) -> None:
    r = _sorter(["check", "--timeout", "10", *_line(tmp_path)], site, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for kind, name, target in (
        ("camera", "example_pattern", "sorter_example_plugin.camera:create"),
        ("detector", "example_blobs", "sorter_example_plugin.detector:create"),
        ("actuator", "example_log", "sorter_example_plugin.actuator:create"),
    ):
        assert f"plugin {kind} '{name}': plugin sorter-example-plugin 0.1.0 ({target})" in out
    assert "PASS  camera       example_pattern" in out and "PASS  model" in out


def test_a_line_runs_on_the_plugins(site: Path, tmp_path: Path) -> None:
    summary = tmp_path / "run.json"
    r = _sorter(["run", "--quiet", "--duration", "4", "--summary", str(summary), *_line(tmp_path)], site, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads(summary.read_text())
    assert s["detector"] == "example_blobs" and s["frames"] >= 60  # 30 fps for 4 s, some lost at start-up
    assert s["objects_by_class"].get("pet_bottle", 0) >= 10  # a box every 500 mm at 2.5 m/s
    logged = [json.loads(line) for line in (tmp_path / "cmd.jsonl").read_text().splitlines()]
    assert len(logged) == s["commands_sent"] >= 10
    assert all(c["kind"] == "FireCommand" and c["s_close_mm"] > c["s_open_mm"] for c in logged)
    assert s["actuator"]["sent"] == len(logged)
