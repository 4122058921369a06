"""The guided calibration procedures behind ``sorter calibrate``: gather, fit, preview, judge, store.

Each procedure collects its measurements from a source, fits, saves an
annotated preview of what it measured, prints a PASS/FAIL verdict with the
numbers, and stores the result only when it passed. Bad input raises
:class:`sorter.errors.CalibrationError` before anything is written.

Exit codes of the procedures: 0 passed and stored, 1 measured but failed the
thresholds (previews written, no calibration stored).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sorter.calib import preview
from sorter.calib.board_hints import diagnose_missing_board, larger_chessboard
from sorter.calib.boards import BoardDetection, BoardSpec, detect_board
from sorter.calib.guide import Guide
from sorter.calib.homography import BeltThresholds, SheetPlacement, belt_fit_to_dict, fit_belt_pose
from sorter.calib.intrinsics import (
    CameraIntrinsics,
    IntrinsicsOptions,
    RejectedView,
    calibrate_intrinsics,
    result_to_dict,
)
from sorter.calib.sources import RecordedFrame
from sorter.calib.speed import (
    Sightings,
    SpeedThresholds,
    fit_mm_per_count,
    length_fit_to_dict,
    sightings_from_detection,
    speed_fit_to_dict,
)
from sorter.calib.timing import TimingThresholds, ValveGeometry, fit_timing, timing_fit_to_dict
from sorter.calib.timing_rig import PulseRig, run_test_pulses
from sorter.calib_store import CalibrationStore, make_section, validate_section, write_section_file
from sorter.errors import CalibrationError
from sorter.geometry import CameraModel

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Outputs:
    """Where a procedure writes.

    Attributes:
        out: standalone section file (``--out``), or None.
        store: the machine's calibration history (``--store``/``--machine``), or None.
        preview_dir: folder for annotated images; None: next to the output.
        now_utc: the date stamped on the result.
        provenance: where the numbers come from, stamped on the result: ``measured`` on the line, the
            ``simulator``, or a controller ``emulator`` (a real line refuses the last two).
    """

    out: Path | None
    store: CalibrationStore | None
    preview_dir: Path | None
    now_utc: datetime
    provenance: str = "measured"

    def previews(self, kind: str) -> Path:
        if self.preview_dir is not None:
            return self.preview_dir
        stamp = self.now_utc.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        if self.out is not None:
            return self.out.parent / f"{self.out.stem}-preview"
        if self.store is not None:
            return self.store.dir / "preview" / f"{kind}-{stamp}"
        return Path("calibration-preview") / f"{kind}-{stamp}"


def store_result(kind: str, body: dict[str, Any], outputs: Outputs, guide: Guide) -> list[Path]:
    """Validate, then write the section to the store and/or the standalone file."""
    if outputs.out is None and outputs.store is None:
        raise CalibrationError("no output given; pass --out FILE.yaml and/or --store DIR --machine NAME")
    body = {**body, "provenance": outputs.provenance}
    if outputs.provenance != "measured":
        guide.warn(
            f"this {kind} calibration comes from the {outputs.provenance} and is marked so: "
            "the simulated line uses it, a real line refuses it"
        )
    problems = validate_section(kind, make_section(kind, body, outputs.now_utc))
    if problems:
        raise CalibrationError("nothing written: " + "; ".join(problems))
    written = []
    version = 0
    if outputs.store is not None:
        p = outputs.store.add(kind, body, outputs.now_utc)
        version = int(p.name[1:5])
        written.append(p)
    if outputs.out is not None:
        written.append(write_section_file(outputs.out, make_section(kind, body, outputs.now_utc, version)))
    for p in written:
        guide.info(f"written: {p}")
    return written


# ---------------------------------------------------------------------- intrinsics


def run_intrinsics(
    images: Iterable[tuple[str, U8]],
    board: BoardSpec,
    options: IntrinsicsOptions,
    guide: Guide,
    outputs: Outputs,
    expected_views: int | None = None,
) -> int:
    """Calibrate intrinsics from images of a board (files, live camera or simulator)."""
    guide.title("camera intrinsics")
    guide.step(1, 3, f"finding the board ({board.describe()}) in every image")
    views: list[tuple[str, BoardDetection]] = []
    pictures: dict[str, U8] = {}
    rejected: list[RejectedView] = []
    size: tuple[int, int] | None = None
    first_miss: tuple[str, str] | None = None
    n_images = 0
    for name, img in images:
        n_images += 1
        h, w = img.shape[:2]
        if size is None:
            size = (w, h)
        elif size != (w, h):
            raise CalibrationError(
                f"image '{name}' is {w}x{h} but the first was {size[0]}x{size[1]}; calibrate one camera at one resolution per run"
            )
        det = detect_board(img, board)
        if det is None:
            why = diagnose_missing_board(img, board)
            rejected.append(RejectedView(name, f"board not found: {why}"))
            first_miss = first_miss or (name, why)
            guide.progress(n_images, expected_views or n_images, f"{name}: no board ({why})")
            continue
        views.append((name, det))
        pictures[name] = img
        guide.progress(n_images, expected_views or n_images, f"{name}: {len(det)} points")
    if size is None:
        raise CalibrationError("no images to calibrate from; check the folder or the camera")
    if not views:
        assert first_miss is not None
        raise CalibrationError(
            f"no board found in any of the {n_images} image(s); first image '{first_miss[0]}': {first_miss[1]}"
        )
    if board.type == "chessboard":
        bigger = [b for n, d in views if (b := larger_chessboard(pictures[n], d, board)) is not None]
        if len(bigger) * 2 >= len(views):
            n_cols, n_rows = max(set(bigger), key=bigger.count)
            raise CalibrationError(
                f"the printed chessboard is larger than --cols {board.cols} --rows {board.rows}: a {n_cols}x{n_rows} grid of "
                f"inner corners is visible in {len(bigger)} of {len(views)} views; count the inner corners of the whole board "
                f"(e.g. --cols {n_cols} --rows {n_rows})"
            )

    guide.step(2, 3, f"calibrating from {len(views)} view(s)")
    result = calibrate_intrinsics(views, size[0], size[1], board, options, rejected)
    for r in result.rejected:
        guide.warn(f"left out {r.source}: {r.reason}")

    guide.step(3, 3, "saving previews and the result")
    pdir = outputs.previews("intrinsics")
    i = result.intrinsics
    used = {v.source for v in result.views}
    for name, det in views:
        if name in used:
            pv = preview.intrinsics_view_preview(pictures[name], det, i.k_matrix, i.dist_array, name, options.max_view_rms_px)
            preview.save_preview(pdir / f"view_{Path(name).stem}.png", pv)
    cov = preview.coverage_preview(
        size[0], size[1], [d.image_points_px for n, d in views if n in used], result.hints, result.passed
    )
    preview.save_preview(pdir / "coverage.png", cov)
    guide.info(f"previews: {pdir}")
    summary = [
        f"fx {i.fx:.3f}  fy {i.fy:.3f}  cx {i.cx:.3f}  cy {i.cy:.3f} px",
        "dist (k1 k2 p1 p2 k3) " + " ".join(f"{d:+.5f}" for d in i.dist),
        f"RMS reprojection error {result.rms_px:.4f} px over {len(result.views)} views (limit {options.max_rms_px:g})",
        f"board covered {result.coverage_fraction:.0%} of the image; distortion model {result.model}",
    ]
    guide.verdict(result.passed, summary, result.problems, [f"hint: {h}" for h in result.hints])
    if not result.passed:
        return 1
    store_result("intrinsics", result_to_dict(result, board), outputs, guide)
    return 0


def live_views(grab: Callable[[], U8], board: BoardSpec, n_views: int, guide: Guide) -> Iterator[tuple[str, U8]]:
    """Views from a live camera: interactive, one per Enter; otherwise every frame with the board, up to ``n_views``."""
    taken = 0
    tries = 0
    while taken < n_views and tries < 20 * n_views:
        tries += 1
        if guide.interactive:
            where = ["centre", "left edge", "right edge", "top edge", "bottom edge", "corners", "tilted left", "tilted right"]
            if not guide.wait(f"view {taken + 1}/{n_views}: hold the board at the {where[taken % len(where)]}, still"):
                return
        img = grab()
        if detect_board(img, board) is None:
            guide.warn("board not seen in this frame: " + diagnose_missing_board(img, board))
            continue
        taken += 1
        yield f"live_{taken:02d}", img


# ---------------------------------------------------------------------- belt


def run_belt(
    image: U8,
    intrinsics: CameraIntrinsics,
    sheet: BoardSpec,
    placement: SheetPlacement,
    thresholds: BeltThresholds,
    guide: Guide,
    outputs: Outputs,
    truth: CameraModel | None = None,
) -> int:
    """Fit the camera-to-belt pose from one image of the sheet lying on the belt."""
    from sorter.calib.homography import mapping_error_mm

    guide.title("camera-to-belt pose")
    if not sheet.has_ids:
        raise CalibrationError("the belt needs a ChArUco or ArUco sheet (a chessboard has no ids); pass --board charuco")
    h, w = image.shape[:2]
    if (w, h) != (intrinsics.width_px, intrinsics.height_px):
        raise CalibrationError(
            f"the image is {w}x{h} but the intrinsics were made at {intrinsics.width_px}x{intrinsics.height_px}; "
            "use the same camera resolution for both"
        )
    guide.step(1, 3, f"finding the sheet ({sheet.describe()}) lying at x = {placement.x_mm:g} mm, y = {placement.y_mm:g} mm")
    det = detect_board(image, sheet)
    if det is None:
        raise CalibrationError("sheet not found: " + diagnose_missing_board(image, sheet))
    guide.info(f"{len(det)} sheet points, {len(det.marker_ids)} markers")
    guide.step(2, 3, "fitting the pose and measuring residuals on the belt")
    fit = fit_belt_pose(det, intrinsics, placement, thresholds)
    x0, x1, y0, y1 = fit.camera.view_extent_mm()
    summary = [
        f"residuals on the belt: RMS {fit.rms_mm:.3f} mm, max {fit.max_mm:.3f} mm (limits {thresholds.max_rms_mm:g} / "
        f"{thresholds.max_error_mm:g})",
        "RMS per image third (top row first): "
        + " | ".join(" ".join("  -  " if np.isnan(v) else f"{v:5.2f}" for v in row) for row in fit.cell_rms_mm),
        f"camera {fit.camera_height_mm:.0f} mm above the belt; view x {x0:.0f}..{x1:.0f} mm, y {y0:.0f}..{y1:.0f} mm",
        f"sheet covers {fit.coverage_fraction:.0%} of the image",
    ]
    if truth is not None:
        rms, mx = mapping_error_mm(fit.camera, truth)
        summary.append(f"simulator check: pixel->belt error vs the true mount RMS {rms:.3f} mm, max {mx:.3f} mm")
    guide.step(3, 3, "saving the preview and the result")
    pdir = outputs.previews("belt")
    lines = summary[:1] + summary[2:3]
    preview.save_preview(pdir / "belt.png", preview.belt_preview(image, det, fit.camera, fit.belt_points_mm, lines, fit.passed))
    guide.info(f"preview: {pdir / 'belt.png'}")
    guide.verdict(fit.passed, summary, fit.problems)
    if not fit.passed:
        return 1
    store_result("belt", belt_fit_to_dict(fit, placement, thresholds, sheet.to_dict()), outputs, guide)
    return 0


# ---------------------------------------------------------------------- speed


def run_speed(
    frames: Iterable[RecordedFrame],
    camera: CameraModel,
    sheet: BoardSpec,
    thresholds: SpeedThresholds,
    guide: Guide,
    outputs: Outputs,
    true_mm_per_count: float | None = None,
) -> int:
    """Fit mm per encoder count from frames of the sheet riding the belt."""
    guide.title("encoder scale and belt speed")
    guide.step(1, 3, "tracking the sheet's points through the frames")
    parts: list[Sightings] = []
    last: tuple[U8, BoardDetection] | None = None
    first_miss: str | None = None
    n = 0
    for f in frames:
        n += 1
        h, w = f.image.shape[:2]
        if (w, h) != (camera.width_px, camera.height_px):
            raise CalibrationError(
                f"frame '{f.name}' is {w}x{h} but the belt calibration is for {camera.width_px}x{camera.height_px}; "
                "record at the calibrated resolution"
            )
        det = detect_board(f.image, sheet)
        if det is None:
            first_miss = first_miss or diagnose_missing_board(f.image, sheet)
            continue
        parts.append(sightings_from_detection(det, camera, n - 1, f.t_ns, f.count))
        last = (f.image, det)
        if n % 10 == 0:
            guide.info(f"{n} frames read, {len(parts)} with the sheet")
    if not parts:
        raise CalibrationError(f"the sheet was not seen in any of {n} frame(s): {first_miss or 'no frames'}")
    guide.step(2, 3, f"fitting over {len(parts)} of {n} frame(s) with the sheet")
    s = Sightings.concat(parts)
    fit = fit_mm_per_count(s, thresholds)
    summary = [
        f"mm per count {fit.mm_per_count:.7f} (counts per mm {fit.counts_per_mm:.5f}), uncertainty {fit.rel_std_error:.4%}",
        f"residual RMS {fit.residual_rms_mm:.3f} mm over {fit.n_points} points, {fit.n_frames} frames, "
        f"{fit.travel_mm:.0f} mm of travel",
        f"belt speed {fit.speed_mean_mm_s:.0f} mm/s (std {fit.speed_std_mm_s:.1f}, "
        f"{fit.speed_min_mm_s:.0f}..{fit.speed_max_mm_s:.0f})",
        f"sideways drift {fit.lateral_drift_mm_per_m:+.2f} mm per metre",
        f"the line takes belt.encoder_counts_per_mm = {fit.counts_per_mm:.6g} from the stored calibration "
        "(camera.calibration_file); nothing to copy",
    ]
    if true_mm_per_count is not None:
        summary.append(f"simulator check: error vs the true scale {fit.mm_per_count / true_mm_per_count - 1.0:+.4%}")
    guide.step(3, 3, "saving previews and the result")
    pdir = outputs.previews("encoder")
    assert last is not None
    img, det = last
    frame_pv = preview.draw_banner(preview.draw_belt_grid(preview.draw_detection(img, det), camera), fit.passed, summary[:2])
    preview.save_preview(pdir / "last_frame.png", frame_pv)
    resid = _speed_residuals(s, fit.mm_per_count)
    preview.save_preview(
        pdir / "residuals.png",
        preview.scatter(resid[0], resid[1], "along-belt residual per sighting vs encoder count", "encoder count", "mm"),
    )
    guide.info(f"previews: {pdir}")
    guide.verdict(fit.passed, summary, fit.problems, fit.warnings)
    if not fit.passed:
        return 1
    store_result("encoder", speed_fit_to_dict(fit, thresholds, "marker_sheet"), outputs, guide)
    return 0


def _speed_residuals(s: Sightings, m: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    _, grp = np.unique(s.point_id, return_inverse=True)
    u = s.y_w_mm - m * s.count
    sums = np.bincount(grp, weights=u)
    cnt = np.bincount(grp).astype(np.float64)
    return s.count.astype(np.float64), np.asarray(u - (sums / cnt)[grp], dtype=np.float64)


def run_speed_from_length(length_mm: float, counts: int, guide: Guide, outputs: Outputs) -> int:
    """Encoder scale from a measured belt length and the counts over it."""
    guide.title("encoder scale from a measured length")
    body = length_fit_to_dict(length_mm, counts)
    guide.verdict(
        True,
        [
            f"mm per count {body['mm_per_count']:.7f} ({length_mm:g} mm / {counts} counts)",
            f"the line takes belt.encoder_counts_per_mm = {body['counts_per_mm']:.6g} from the stored calibration "
            "(camera.calibration_file); nothing to copy",
        ],
        [],
    )
    store_result("encoder", body, outputs, guide)
    return 0


# ---------------------------------------------------------------------- timing


def run_timing(
    rig: PulseRig,
    geometry: ValveGeometry,
    valves: list[int],
    repeats: int,
    thresholds: TimingThresholds,
    guide: Guide,
    outputs: Outputs,
    true_latency_ms: float | None = None,
) -> int:
    """Fire test pulses at marked targets and fit per-valve latency and lateral offset."""
    guide.title("actuation timing")
    guide.step(1, 3, f"firing {repeats} test pulse(s) on each of {len(valves)} valve(s)")
    if not guide.wait("targets marked on the belt, belt running, air on, people clear of the valves?"):
        raise CalibrationError("stopped before firing; nothing written")
    step = max(1, (len(valves) * repeats) // 10)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            guide.progress(done, total, "pulses")

    try:
        obs, missed = run_test_pulses(rig, valves, repeats, progress)
    finally:
        rig.close()
    guide.step(2, 3, f"fitting {len(obs)} observed pulse(s)")
    fit = fit_timing(obs, geometry, thresholds, missed)
    lat = np.array([t.latency_ms for t in fit.valves])
    jit = np.array([t.jitter_ms for t in fit.valves])
    offsets = [t.lateral_offset_mm for t in fit.valves]
    summary = [
        f"latency {fit.mean_latency_ms:.3f} ms mean over {len(fit.valves)} valve(s) ({lat.min():.3f}..{lat.max():.3f})",
        f"jitter up to {np.nanmax(jit):.3f} ms" if np.any(np.isfinite(jit)) else "jitter: n/a (one pulse per valve)",
        f"lateral offsets {min(offsets):+.2f}..{max(offsets):+.2f} mm",
        f"the line takes the valve delays ({fit.mean_latency_ms:.3f} ms mean) from the stored calibration "
        "(camera.calibration_file); nothing to copy",
    ]
    if fit.y_eject_offset_mm is not None:
        summary.append(f"ejection line offset {fit.y_eject_offset_mm:+.2f} mm from airjet.y_eject_mm")
    if true_latency_ms is not None:
        summary.append(f"simulator check: error vs the true latency {fit.mean_latency_ms - true_latency_ms:+.3f} ms")
    guide.step(3, 3, "saving the preview and the result")
    pdir = outputs.previews("valves")
    chart = preview.chart(
        lat,
        [str(t.valve) for t in fit.valves],
        "latency per valve (ms), bars = +-1 jitter",
        "ms",
        jit,
    )
    preview.save_preview(pdir / "latency.png", chart)
    guide.info(f"preview: {pdir / 'latency.png'}")
    guide.verdict(fit.passed, summary, fit.problems, fit.warnings)
    if not fit.passed:
        return 1
    store_result("valves", timing_fit_to_dict(fit, geometry, obs), outputs, guide)
    return 0
