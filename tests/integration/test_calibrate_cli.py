"""``sorter calibrate`` end to end: real OpenCV sample photos, the simulated line, and every bad-input stop."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from sorter.calib.boards import BoardSpec, render_board
from sorter.calib.homography import camera_from_belt_dict, mapping_error_mm
from sorter.calib_store import CalibrationStore, load_calibration, load_camera_model
from sorter.commands import calibrate
from sorter.config import load_config
from sorter.geometry import CameraModel
from sorter.sim.marker_sheet import BeltSheetScene
from sorter.sim.mount import sim_camera_model

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "data" / "calib"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared calibration data (../shared/data/calib) not present")


def run(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    calibrate.add_arguments(p)
    return calibrate.main(p.parse_args(argv))


def _reference(path: Path) -> tuple[np.ndarray, float]:
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    k, rms = fs.getNode("camera_matrix").mat(), fs.getNode("avg_reprojection_error").real()
    fs.release()
    return k, rms


def _copy(pattern: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(DATA.glob(pattern)):
        shutil.copy(f, dest / f.name)
    return dest


@needs_data
def test_issue_example_command_on_opencv_sample(tmp_path: Path) -> None:
    images = _copy("opencv_stereo_chessboard/left*.jpg", tmp_path / "left")
    out = tmp_path / "FILE.yaml"
    cmd = [sys.executable, "-m", "sorter.cli", "calibrate", "intrinsics", "--non-interactive", "--images", str(images)]
    cmd += ["--board", "chessboard", "--cols", "9", "--rows", "6", "--square-mm", "25", "--fix-aspect-ratio", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RESULT: PASS" in done.stdout
    doc = yaml.safe_load(out.read_text())
    k, rms = _reference(DATA / "opencv_stereo_chessboard" / "left_intrinsics.yml")
    assert abs(doc["fx"] / k[0, 0] - 1) < 0.005 and abs(doc["fy"] / k[1, 1] - 1) < 0.005
    assert abs(doc["cx"] - k[0, 2]) < 2 and abs(doc["cy"] - k[1, 2]) < 2
    assert abs(doc["rms_px"] - rms) < 0.02
    assert len(doc["dist"]) == 5 and doc["kind"] == "intrinsics" and doc["created_utc"].endswith("Z")
    previews = sorted(p.name for p in (tmp_path / "FILE-preview").iterdir())
    assert "coverage.png" in previews and "view_left01.png" in previews and len(previews) == 14


@needs_data
def test_charuco_photos_through_the_command(tmp_path: Path) -> None:
    images = _copy("opencv_aruco_charuco/img_0*.jpg", tmp_path / "ch")
    out = tmp_path / "ch.yaml"
    rc = run(
        [
            "intrinsics",
            "--non-interactive",
            "--images",
            str(images),
            "--board",
            "charuco",
            "--cols",
            "5",
            "--rows",
            "7",
            "--square-mm",
            "40",
            "--marker-mm",
            "20",
            "--dictionary",
            "DICT_6X6_250",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    k, _ = _reference(DATA / "opencv_aruco_charuco" / "tutorial_camera_charuco.yml")
    assert abs(yaml.safe_load(out.read_text())["fx"] / k[0, 0] - 1) < 0.02


def _assert_stopped(rc: int, capsys: pytest.CaptureFixture[str], tmp_path: Path, words: str) -> None:
    err = capsys.readouterr().err
    assert rc == 2, err
    assert words in err and "nothing was written" in err
    assert not list(tmp_path.rglob("*.yaml")) and not list(tmp_path.rglob("*.png*")), "bad input must write nothing"


def _intrinsics_args(images: Path, tmp_path: Path, cols: int = 9) -> list[str]:
    return ["intrinsics", "--non-interactive", "--images", str(images), "--board", "chessboard", "--cols", str(cols)]


@needs_data
@pytest.mark.parametrize(
    "case, words",
    [
        ("no_board", "no board found in any of the 4 image(s)"),
        ("wrong_size", "--cols 9 --rows 6"),
        ("too_small", "printed chessboard is larger"),
        ("too_few", "only 3 usable view(s)"),
        ("blurred", "blurred"),
    ],
)
def test_bad_intrinsics_input_stops_and_writes_nothing(
    case: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = sorted((DATA / "opencv_stereo_chessboard").glob("left*.jpg"))
    images = tmp_path / "in"
    images.mkdir()
    cols = 9
    if case == "no_board":
        for i in range(4):
            noise = np.random.default_rng(i).integers(0, 255, (480, 640, 3), dtype=np.uint8)
            cv2.imwrite(str(images / f"n{i}.jpg"), cv2.GaussianBlur(noise, (0, 0), 8))
    elif case in ("wrong_size", "too_small"):
        cols = 10 if case == "wrong_size" else 8
        for f in src[:6]:
            shutil.copy(f, images / f.name)
    elif case == "too_few":
        for f in src[:3]:
            shutil.copy(f, images / f.name)
    else:
        for f in src[:6]:
            cv2.imwrite(str(images / f.name), cv2.GaussianBlur(cv2.imread(str(f)), (0, 0), 3.0))
    argv = [
        *_intrinsics_args(images, tmp_path, cols),
        "--rows",
        "6",
        "--square-mm",
        "25",
        "--out",
        str(tmp_path / "o" / "i.yaml"),
    ]
    rc = run(argv)
    # inputs are images we made; the stop must leave nothing but them
    for f in images.iterdir():
        f.unlink()
    _assert_stopped(rc, capsys, tmp_path, words)


SHEET = BoardSpec("charuco", 11, 7, 100.0, 70.0, dictionary="DICT_5X5_100")


def _sim_sheet_image(cam: CameraModel) -> np.ndarray:
    return BeltSheetScene(cam, render_board(SHEET, 2.0, 10.0), 50.0, -350.0, seed=2).render(0.0)


def test_sheet_from_another_dictionary_and_a_belt_that_did_not_move_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_config()
    cam = sim_camera_model(cfg)
    work = tmp_path / "work"
    work.mkdir()
    lens = {
        "kind": "intrinsics",
        "created_utc": "2025-01-01T00:00:00Z",
        "width_px": cam.width_px,
        "height_px": cam.height_px,
        "fx": cam.fx,
        "fy": cam.fy,
        "cx": cam.cx,
        "cy": cam.cy,
        "dist": list(cam.dist),
        "rms_px": 0.1,
        "passed": True,
    }
    (work / "intr.yaml").write_text(yaml.safe_dump(lens))
    image = _sim_sheet_image(cam)
    cv2.imwrite(str(work / "sheet.png"), image)
    rc = run(
        [
            "belt",
            "--non-interactive",
            "--intrinsics",
            str(work / "intr.yaml"),
            "--image",
            str(work / "sheet.png"),
            "--dictionary",
            "DICT_6X6_250",
            "--sheet-x-mm",
            "50",
            "--sheet-y-mm",
            "-350",
            "--out",
            str(tmp_path / "o" / "b.yaml"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--dictionary DICT_5X5_50" in err and "another dictionary" in err
    assert not (tmp_path / "o").exists()

    belt = {**lens, "kind": "belt", "rvec": list(cam.rvec), "tvec_mm": list(cam.tvec_mm), "rms_mm": 0.1}
    (work / "belt.yaml").write_text(yaml.safe_dump(belt))
    rec = work / "rec"
    rec.mkdir()
    rows = ["file,t_ns,count"]
    for i in range(8):
        cv2.imwrite(str(rec / f"f{i}.png"), image)
        rows.append(f"f{i}.png,{i * 16_666_667},{5000 + (i % 2)}")
    (rec / "frames.csv").write_text("\n".join(rows) + "\n")
    rc = run(
        [
            "speed",
            "--non-interactive",
            "--calibration",
            str(work / "belt.yaml"),
            "--frames",
            str(rec),
            "--out",
            str(tmp_path / "o" / "e.yaml"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "did not move" in err
    assert not (tmp_path / "o").exists()


def test_simulated_line_calibrates_end_to_end_into_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--store", str(tmp_path / "cal"), "--machine", "sim-line", "--non-interactive"]
    assert (
        run(
            [
                "intrinsics",
                "--sim",
                "--board",
                "chessboard",
                "--cols",
                "9",
                "--rows",
                "6",
                "--square-mm",
                "30",
                "--views",
                "12",
                *store,
            ]
        )
        == 0
    )
    assert run(["belt", "--sim", *store]) == 0
    assert run(["speed", "--sim", *store]) == 0
    assert run(["timing", "--sim", "--valves", "0-11", "--repeats", "4", *store]) == 0
    out = capsys.readouterr().out
    assert out.count("RESULT: PASS") == 4

    cfg = load_config()
    truth = sim_camera_model(cfg)
    cal = load_calibration(tmp_path / "cal" / "sim-line")
    assert cal.version == 4 and set(cal.sections) == {"intrinsics", "belt", "encoder", "valves"}
    # homography error across the whole view, against the simulator's true mount
    rms_mm, _max_mm = mapping_error_mm(camera_from_belt_dict(cal.sections["belt"]), truth)
    assert rms_mm <= 1.0
    # encoder scale within 0.1 %
    assert abs(cal.sections["encoder"]["mm_per_count"] * cfg.belt.encoder_counts_per_mm - 1.0) < 0.001
    # valve latency within 0.5 ms of the simulated truth
    lat = [v["latency_ms"] for v in cal.sections["valves"]["valves"]]
    assert abs(cal.sections["valves"]["mean_latency_ms"] - cfg.sim.valve_latency_ms) < 0.5
    assert all(abs(x - cfg.sim.valve_latency_ms) < 0.5 for x in lat)
    # the service can load it, and the history lists every step
    cam = load_camera_model(str(tmp_path / "cal" / "sim-line"), cfg.camera.width_px, cfg.camera.height_px)
    assert mapping_error_mm(cam, truth)[0] <= 1.0
    assert len(CalibrationStore(tmp_path / "cal", "sim-line").versions()) == 4
    # history judges the latest version as the runtime does: made on the simulator, so refused for a real line...
    capsys.readouterr()
    assert run(["history", "--store", str(tmp_path / "cal"), "--machine", "sim-line"]) == 1
    out = capsys.readouterr().out
    assert "(simulator)" in out and "for a real line" in out and "REFUSED" in out
    # ... and valid for the simulated line, which 'sorter check' then runs with (the two agree)
    history = ["history", "--store", str(tmp_path / "cal"), "--machine", "sim-line", "--config", "sim-airjet.yaml"]
    assert run(history) == 0
    assert "valid" in capsys.readouterr().out
    from sorter.cli import main as sorter_main

    calibrated = f"camera.calibration_file={tmp_path / 'cal' / 'sim-line'}"
    assert sorter_main(["check", "--config-only", "--set", calibrated]) == 0
    out = capsys.readouterr().out
    assert "calibration v4 (simulator" in out


def test_sheet_command_writes_a_pdf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sheet", "--out", str(tmp_path / "sheet.pdf"), "--dpi", "72"]) == 0
    assert (tmp_path / "sheet.pdf").read_bytes().startswith(b"%PDF")
    assert "--dictionary DICT_5X5_100" in capsys.readouterr().out


@needs_data
def test_failing_thresholds_write_previews_but_no_calibration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = _copy("opencv_stereo_chessboard/left*.jpg", tmp_path / "left")
    out = tmp_path / "o" / "i.yaml"
    rc = run([*_intrinsics_args(images, tmp_path), "--rows", "6", "--square-mm", "25", "--max-rms-px", "0.2", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 1 and "RESULT: FAIL" in text and "exceeds 0.2 px" in text
    assert not out.exists()
    assert (tmp_path / "o" / "i-preview" / "coverage.png").is_file()


def test_live_camera_source_reads_a_video_stream(tmp_path: Path) -> None:
    """``--camera`` takes anything OpenCV opens: here a video file of a board waved in front of a simulated lens."""
    from sorter.sim.marker_sheet import PlaneView, board_poses, render_board_view

    cam = CameraModel.looking_down(640, 480, 60.0, 1000.0, 0.0, dist=(-0.1, 0.02, 0.0, 0.0, 0.0))
    spec = BoardSpec("chessboard", 9, 6, 30.0)
    texture = render_board(spec, 5.0, 15.0)
    view = PlaneView(cam, supersample=2)
    video = tmp_path / "board.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for i, pose in enumerate(board_poses(cam, spec.pattern_size_mm(), 8, seed=7)):
        frame = render_board_view(view, texture, pose, seed=i)
        for _ in range(4):  # the live source skips to a fresh frame: hold each pose for a few frames
            writer.write(frame)
    writer.release()
    out = tmp_path / "live.yaml"
    rc = run(
        [
            "intrinsics",
            "--non-interactive",
            "--camera",
            str(video),
            "--views",
            "6",
            "--board",
            "chessboard",
            "--cols",
            "9",
            "--rows",
            "6",
            "--square-mm",
            "30",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    doc = yaml.safe_load(out.read_text())
    assert len(doc["views"]) == 6
    assert abs(doc["fx"] / cam.fx - 1.0) < 0.02
