"""Real capture sources on real data: OpenCV decoding of the conveyor video, failures and recovery.

Data: ``../shared/data/video/delta_robot_green_belt/conveyor_belt.mp4`` (13 s, 368x656,
30 fps, MIT; see ``../shared/data/MANIFEST.md``). Device loss is produced for real:
a video file truncated under the open reader, a network stream (FFmpeg over a local
HTTP server, the same demuxer path and timeouts as RTSP) that stalls and refuses,
a closed and a silent local port.
"""

from __future__ import annotations

import http.server
import itertools
import os
import random
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from sorter.capture.backoff import Backoff
from sorter.capture.base import CaptureHealth
from sorter.capture.folder_source import ImageFolderSource
from sorter.capture.opencv_source import OpenCvSource, open_with_timeout
from sorter.capture.registry import create_frame_source
from sorter.clock import MonotonicClock
from sorter.config import CameraConfig
from sorter.entities import Frame
from sorter.errors import ConfigError, DeviceNotConnectedError

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT / ".." / "shared" / "data" / "video" / "delta_robot_green_belt" / "conveyor_belt.mp4"
SPEED_MM_PER_NS = 0.5e-6  # odometer of a 500 mm/s belt


def odometer(t_ns: int) -> float:
    return SPEED_MM_PER_NS * t_ns


def fast_backoff() -> Backoff:
    return Backoff(initial_s=0.05, max_s=0.2, jitter=0.1, rng=random.Random(3))


@pytest.fixture(scope="module")
def video() -> Path:
    if not VIDEO.is_file():
        pytest.fail(f"conveyor video missing: {VIDEO} (see ../shared/data/MANIFEST.md)")
    return VIDEO


KEPT = {*range(12), *range(0, 320, 40), 200, 386}  # reference frames the tests compare against (not all: 280 MB)


@pytest.fixture(scope="module")
def reference(video: Path) -> dict[int, np.ndarray]:
    """Frames of the video decoded directly with cv2 (ground truth), by index; ``-1`` maps to the frame count."""
    cap = cv2.VideoCapture(str(video))
    frames: dict[int, np.ndarray] = {}
    n = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        if n in KEPT:
            frames[n] = image
        n += 1
    cap.release()
    frames[-1] = np.array(n)
    return frames


def wait_for(pred: Callable[[], bool], timeout_s: float, what: str, poll: Callable[[], object] = lambda: None) -> float:
    """Seconds until ``pred()`` holds, calling ``poll()`` meanwhile (e.g. to consume frames); fails after the timeout."""
    t0 = time.perf_counter()
    while not pred():
        poll()
        if time.perf_counter() - t0 > timeout_s:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.005)
    return time.perf_counter() - t0


def drain(src: OpenCvSource, out: list[Frame]) -> Callable[[], object]:
    def take() -> None:
        frame = src.latest(0.0)
        if frame is not None:
            out.append(frame)

    return take


def assert_monotonic(frames: list[Frame]) -> None:
    idx = [f.frame_index for f in frames]
    t = [f.t_capture_ns for f in frames]
    assert all(b > a for a, b in itertools.pairwise(idx)), "frame_index must increase"
    assert all(b > a for a, b in itertools.pairwise(t)), "t_capture_ns must increase strictly"


# -- video files ---------------------------------------------------------------------------------------------------------
def test_unpaced_video_delivers_every_frame_decoded(video: Path, reference: dict[int, np.ndarray]) -> None:
    cap = cv2.VideoCapture(str(video))
    frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    src = OpenCvSource(CameraConfig(type="video", uri=str(video)), MonotonicClock(), odometer, realtime=False)
    frames: list[Frame] = []  # images dropped after the checks: keeping 387 of them costs 280 MB
    t0 = time.perf_counter()
    src.start()
    while not src.ended:
        frame = src.latest(2.0)
        if frame is not None:
            assert frame.image.shape == (656, 368, 3) and frame.image.dtype == np.uint8
            if frame.frame_index in reference:
                assert np.array_equal(frame.image, reference[frame.frame_index])
            frames.append(Frame(frame.image[:1, :1], frame.t_capture_ns, frame.s_capture_mm, frame.frame_index))
    elapsed = time.perf_counter() - t0
    health = src.health()
    src.close()
    print(f"\nunpaced source: {len(frames)} frames in {elapsed:.3f} s = {len(frames) / elapsed:.0f} fps")
    assert len(frames) == frame_count == int(reference[-1]) == 387
    assert [f.frame_index for f in frames] == list(range(frame_count))
    assert_monotonic(frames)
    assert all(f.s_capture_mm == pytest.approx(odometer(f.t_capture_ns)) for f in frames)
    assert src.frames_dropped == 0
    assert health.state == "ended" and "387" in health.reason and health.frames == frame_count
    assert src.health().state == "closed"


def test_paced_video_runs_at_file_rate_and_drops_for_a_slow_consumer(video: Path) -> None:
    src = OpenCvSource(CameraConfig(type="video", uri=str(video), stale_after_ms=200), MonotonicClock())
    src.start()
    frames: list[Frame] = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.0:  # fast consumer: takes everything
        frame = src.latest(0.2)
        if frame is not None:
            frames.append(frame)
    assert src.frames_dropped == 0
    periods_ms = np.diff([f.t_capture_ns for f in frames]) / 1e6
    print(f"\npaced: {len(frames)} frames in 1 s, median period {np.median(periods_ms):.2f} ms (file: 33.33 ms)")
    assert 24 <= len(frames) <= 34
    assert np.median(periods_ms) == pytest.approx(1000 / 30, rel=0.1)
    slow: list[Frame] = []
    for _ in range(5):  # slow consumer: 100 ms per frame, about two frames dropped each time
        time.sleep(0.1)
        frame = src.latest(0.2)
        assert frame is not None
        slow.append(frame)
    assert_monotonic(frames + slow)
    assert src.frames_dropped >= 5
    assert max(np.diff([f.frame_index for f in slow])) >= 2
    assert src.health().state == "streaming"
    t_close = time.perf_counter()
    src.close()
    assert time.perf_counter() - t_close < 1.0


def write_clip(path: Path, reference: dict[int, np.ndarray], n: int) -> None:
    h, w = reference[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (w, h))
    assert writer.isOpened()
    for i in range(n):
        writer.write(reference[i])
    writer.release()


def test_written_clip_loops_or_ends(tmp_path: Path, reference: dict[int, np.ndarray]) -> None:
    clip = tmp_path / "clip.avi"
    write_clip(clip, reference, 12)
    cfg = CameraConfig(type="video", uri=str(clip))
    looped = OpenCvSource(cfg, MonotonicClock(), realtime=False, loop=True)
    looped.start()
    frames = [f for f in (looped.latest(2.0) for _ in range(30)) if f is not None]
    looped.close()
    assert [f.frame_index for f in frames] == list(range(30))
    assert_monotonic(frames)
    once = OpenCvSource(cfg, MonotonicClock(), realtime=False)
    once.start()
    count = 0
    while not once.ended:
        count += once.latest(2.0) is not None
    once.close()
    assert count == 12


# -- losing the device ---------------------------------------------------------------------------------------------------
def test_video_file_truncated_mid_run_reconnects_and_resumes(tmp_path: Path, video: Path) -> None:
    path = tmp_path / "belt.mp4"
    shutil.copyfile(video, path)
    data = path.read_bytes()
    cfg = CameraConfig(type="video", uri=str(path), stale_after_ms=150)
    src = OpenCvSource(cfg, MonotonicClock(), odometer, backoff=fast_backoff())
    frames: list[Frame] = []
    take = drain(src, frames)
    src.start()
    wait_for(lambda: len(frames) >= 10, 3.0, "10 frames", take)
    os.truncate(path, 0)  # the "device" vanishes under the open reader: reads fail, reopening fails
    t_lost = time.perf_counter()
    wait_for(lambda: src.health().state == "reconnecting", 3.0, "reconnecting", take)
    detect_s = time.perf_counter() - t_lost
    time.sleep(0.3)
    lost: CaptureHealth = src.health()
    assert lost.state == "reconnecting" and "read failed at frame" in lost.reason and "attempt" in lost.reason
    n_before = len(frames)
    tmp = tmp_path / "belt.part"
    tmp.write_bytes(data)
    os.replace(tmp, path)  # comes back, atomically
    recover_s = wait_for(lambda: src.health().state == "streaming", 3.0, "streaming again", take)
    wait_for(lambda: len(frames) >= n_before + 5, 3.0, "5 more frames", take)
    src.close()
    print(f"\ntruncated file: reconnecting after {detect_s * 1000:.0f} ms, streaming {recover_s * 1000:.0f} ms after restore")
    assert src.reconnects >= 1
    assert_monotonic(frames)
    # Resumed where the file broke off, frame-accurately (one pass, no loop: frame_index is the file position).
    last = frames[-1]
    cap = cv2.VideoCapture(str(video))
    for _ in range(last.frame_index + 1):
        ok, expected = cap.read()
        assert ok
    cap.release()
    assert np.array_equal(last.image, expected)
    assert frames[-1].s_capture_mm == pytest.approx(odometer(frames[-1].t_capture_ns))


class StreamServer:
    """A network camera stand-in: serves the video over HTTP at ``rate`` bytes/s; can stall or refuse.

    Modes: "up" streams, "stall" holds the connection open without sending, "down" answers 503.
    """

    def __init__(self, data: bytes, rate: float) -> None:
        self.mode = "up"
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if server.mode != "up":
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for i in range(0, len(data), 8192):
                    while server.mode == "stall":
                        time.sleep(0.01)
                    if server.mode == "down":
                        return
                    self.wfile.write(data[i : i + 8192])
                    time.sleep(8192 / rate)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cam.mp4"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.mode = "down"
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stream_server(video: Path) -> Iterator[StreamServer]:
    server = StreamServer(video.read_bytes(), rate=250_000)
    yield server
    server.close()


def test_network_stream_stall_goes_stale_then_reconnects(stream_server: StreamServer) -> None:
    cfg = CameraConfig(type="rtsp", uri=stream_server.url, stale_after_ms=250)
    src = OpenCvSource(cfg, MonotonicClock(), backoff=fast_backoff(), open_timeout_s=2.0, read_timeout_s=1.0)
    frames: list[Frame] = []
    take = drain(src, frames)
    src.start()
    wait_for(lambda: len(frames) >= 20, 5.0, "20 frames", take)
    stream_server.mode = "stall"  # connection open, no data: grab() blocks
    t_stall = time.perf_counter()
    wait_for(lambda: src.health().state == "stale", 2.0, "stale", take)
    stale_s = time.perf_counter() - t_stall
    stale = src.health()
    assert "no fresh frame" in stale.reason and stale.last_frame_age_ms is not None and stale.last_frame_age_ms > 250
    # Still stalled (new connections get 503): only the backend's read timeout can end the blocked grab().
    wait_for(lambda: src.health().state == "reconnecting", 3.0, "reconnecting after the read timeout", take)
    reconnect_s = time.perf_counter() - t_stall
    stream_server.mode = "down"  # lets the stalled server thread finish
    time.sleep(0.3)
    assert "attempt" in src.health().reason
    n_before = len(frames)
    stream_server.mode = "up"
    recover_s = wait_for(lambda: src.health().state == "streaming", 5.0, "streaming again", take)
    wait_for(lambda: len(frames) >= n_before + 5, 3.0, "5 more frames", take)
    src.close()
    print(f"\nstream stall: stale after {stale_s * 1000:.0f} ms, reconnecting after {reconnect_s * 1000:.0f} ms "
          f"(read timeout 1000 ms), streaming {recover_s * 1000:.0f} ms after the server came back")
    assert src.reconnects >= 1
    assert_monotonic(frames)


def test_wait_for_device_picks_up_a_file_that_appears_later(tmp_path: Path, video: Path) -> None:
    path = tmp_path / "later.mp4"
    cfg = CameraConfig(type="video", uri=str(path))
    src = OpenCvSource(cfg, MonotonicClock(), wait_for_device=True, backoff=fast_backoff())
    src.start()
    assert src.latest(0.2) is None
    health = src.health()
    assert health.state == "reconnecting" and "no such file" in health.reason
    shutil.copyfile(video, path)
    wait_for(lambda: src.latest(0.05) is not None, 3.0, "first frame")
    assert src.health().state == "streaming" and src.reconnects == 0  # a first open is not a reconnect
    src.close()


# -- failing at start ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "uri", "hint"),
    [("opencv", "/dev/video99", "v4l2-ctl"), ("opencv", "9", "v4l2-ctl"), ("video", "/nonexistent/belt.mp4", "no such file")],
)
def test_missing_device_fails_at_start_with_a_clear_message(kind: str, uri: str, hint: str) -> None:
    src = OpenCvSource(CameraConfig(type=kind, uri=uri), MonotonicClock())  # type: ignore[arg-type]
    with pytest.raises(DeviceNotConnectedError) as err:
        src.start()
    assert uri in str(err.value) and hint in str(err.value)
    src.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_rtsp_to_a_closed_port_fails_fast() -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/stream"
    src = OpenCvSource(CameraConfig(type="rtsp", uri=url), MonotonicClock(), open_timeout_s=2.0)
    t0 = time.perf_counter()
    with pytest.raises(DeviceNotConnectedError, match="could not be opened") as err:
        src.start()
    assert time.perf_counter() - t0 < 2.0
    assert url in str(err.value) and "ffprobe" in str(err.value)


def test_rtsp_to_a_silent_server_fails_within_the_open_timeout() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"rtsp://127.0.0.1:{listener.getsockname()[1]}/stream"
        src = OpenCvSource(CameraConfig(type="rtsp", uri=url), MonotonicClock(), open_timeout_s=1.0)
        t0 = time.perf_counter()
        with pytest.raises(DeviceNotConnectedError, match=r"127\.0\.0\.1"):
            src.start()
        assert time.perf_counter() - t0 < 2.5


def test_own_open_timeout_bounds_a_stuck_backend() -> None:
    def stuck() -> cv2.VideoCapture:
        time.sleep(2.0)
        return cv2.VideoCapture()

    t0 = time.perf_counter()
    with pytest.raises(DeviceNotConnectedError, match=r"did not finish within 0\.2 s"):
        open_with_timeout(stuck, 0.2, "camera 'x'")
    assert time.perf_counter() - t0 < 0.6


def test_gstreamer_needs_the_backend() -> None:
    cfg = CameraConfig(type="gstreamer", uri="videotestsrc num-buffers=5 ! videoconvert ! appsink")
    src = OpenCvSource(cfg, MonotonicClock())
    if cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
        src.start()
        assert src.latest(5.0) is not None
    else:
        with pytest.raises(DeviceNotConnectedError, match="no GStreamer backend"):
            src.start()
    src.close()


# -- registry ------------------------------------------------------------------------------------------------------------
def test_registry_builds_each_real_type_and_refuses_sim(tmp_path: Path) -> None:
    clock = MonotonicClock()
    for kind in ("opencv", "video", "rtsp", "gstreamer"):
        assert isinstance(create_frame_source(CameraConfig(type=kind, uri="x"), clock), OpenCvSource)  # type: ignore[arg-type]
    assert isinstance(create_frame_source(CameraConfig(type="images", uri=str(tmp_path)), clock), ImageFolderSource)
    with pytest.raises(ConfigError, match="wired by the runtime"):
        create_frame_source(CameraConfig(type="sim"), clock)
    with pytest.raises(ConfigError, match=r"camera\.uri is required"):
        create_frame_source(CameraConfig(type="rtsp"), clock)


# -- image folders -------------------------------------------------------------------------------------------------------
@pytest.fixture
def image_folder(tmp_path: Path, reference: dict[int, np.ndarray]) -> Path:
    """Eight real frames (PNG and JPEG), one corrupt PNG, one empty JPEG and a text file."""
    for i in range(8):
        cv2.imwrite(str(tmp_path / f"frame_{i:03d}.{'png' if i % 2 else 'jpg'}"), reference[i * 40])
    (tmp_path / "frame_003a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(500))
    (tmp_path / "frame_005a.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_image_folder_skips_corrupt_files(image_folder: Path, reference: dict[int, np.ndarray]) -> None:
    src = ImageFolderSource(CameraConfig(type="images", uri=str(image_folder)), MonotonicClock(), odometer, realtime=False)
    src.start()
    frames: list[Frame] = []
    while not src.ended:
        frame = src.latest(1.0)
        if frame is not None:
            frames.append(frame)
    # sorted by name: frame_003a.png (position 4) and frame_005a.jpg (position 7) are the bad ones
    assert [f.frame_index for f in frames] == [0, 1, 2, 3, 5, 6, 8, 9]
    assert_monotonic(frames)
    assert np.array_equal(frames[1].image, reference[40])  # PNG is lossless
    assert frames[0].image.shape == reference[0].shape
    assert src.unreadable == 2 and src.frames_dropped == 0
    assert src.health().state == "ended" and src.health().frames == 8


def test_image_folder_paced_at_camera_fps_drops_for_a_slow_consumer(image_folder: Path) -> None:
    cfg = CameraConfig(type="images", uri=str(image_folder / "frame_[0-9][0-9][0-9].*"), fps=20.0)  # the 8 good ones
    src = ImageFolderSource(cfg, MonotonicClock(), loop=True)
    src.start()
    t0 = time.perf_counter()
    frames = [f for f in (src.latest(0.5) for _ in range(10)) if f is not None]
    elapsed = time.perf_counter() - t0
    assert [f.frame_index for f in frames] == list(range(10))  # looped past the 8 files
    assert 0.35 <= elapsed <= 0.7  # 9 periods of 50 ms: the first image is due at once
    time.sleep(0.2)  # about four images fall due unread
    late = src.latest(0.5)
    assert late is not None and late.frame_index >= 12 and src.frames_dropped == late.frame_index - 10
    assert src.latest(0.0) is None  # the next one is not due yet
    src.close()
    assert src.latest(1.0) is None and src.health().state == "closed"


def test_image_folder_without_images_fails_at_start(tmp_path: Path) -> None:
    src = ImageFolderSource(CameraConfig(type="images", uri=str(tmp_path / "*.png")), MonotonicClock())
    with pytest.raises(DeviceNotConnectedError, match="matches no image file"):
        src.start()
