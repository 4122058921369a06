"""``sorter calibrate``: guided calibration of a line (intrinsics, belt pose, encoder scale, valve timing).

Steps, in the order a new machine needs them::

    sorter calibrate sheet      --out sheet.pdf                 # print the belt sheet at exact scale
    sorter calibrate intrinsics --images DIR --board chessboard --cols 9 --rows 6 --square-mm 25 --out intr.yaml
    sorter calibrate belt       --intrinsics intr.yaml --image belt.png --sheet-x-mm 50 --out belt.yaml
    sorter calibrate speed      --calibration belt.yaml --frames REC_DIR --out encoder.yaml
    sorter calibrate timing     --sim --out valves.yaml
    sorter calibrate history    --store calibrations --machine line-1

``--store DIR --machine NAME`` keeps every result as a new version of the
machine's calibration (``camera.calibration_file: DIR/NAME``). ``--sim`` runs a
step against the simulated line of ``--config``. Exit status: 0 passed and
written, 1 measured but failed (previews only), 2 bad input (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sorter.commands.common import add_config_arguments

if TYPE_CHECKING:
    from sorter.calib.boards import BoardSpec
    from sorter.calib.guide import Guide
    from sorter.calib.procedures import Outputs
    from sorter.calib.timing_rig import PulseRig
    from sorter.config import Config

HELP = "guided calibration: intrinsics, belt pose, encoder scale, valve timing; print sheets; list history"

DEFAULT_SHEET: dict[str, Any] = {
    "board": "charuco",
    "cols": 11,
    "rows": 7,
    "square_mm": 100.0,
    "marker_mm": 70.0,
    "dictionary": "DICT_5X5_100",
}


def _board_arguments(p: argparse.ArgumentParser, default_board: str) -> None:
    g = p.add_argument_group("board / sheet")
    g.add_argument("--board", choices=["chessboard", "charuco", "aruco_grid"], default=default_board, help="target type")
    g.add_argument("--cols", type=int, help="chessboard: inner corners across; charuco: squares; aruco_grid: markers")
    g.add_argument("--rows", type=int, help="the same, down the board")
    g.add_argument("--square-mm", type=float, help="printed square size (chessboard, charuco)")
    g.add_argument("--marker-mm", type=float, help="printed marker size (charuco, aruco_grid)")
    g.add_argument("--separation-mm", type=float, default=0.0, help="gap between markers (aruco_grid)")
    g.add_argument("--dictionary", default=None, help="ArUco dictionary, e.g. DICT_6X6_250")
    g.add_argument("--legacy-pattern", action="store_true", help="ChArUco printed by OpenCV < 4.6 with an even row count")


def _output_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, help="write this step's result to a YAML file (an existing one is kept aside)")
    g.add_argument("--store", type=Path, help="calibration store root; the result becomes a new version of --machine")
    g.add_argument("--machine", help="machine name in the store (default: the config's line.name)")
    g.add_argument("--preview-dir", type=Path, help="folder for annotated preview images (default: next to the output)")
    g.add_argument("--non-interactive", action="store_true", help="never ask; take defaults (for scripts)")
    add_config_arguments(p)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="step", metavar="STEP", required=True)

    pi = sub.add_parser("intrinsics", help="lens focal length, centre and distortion from views of a board")
    src = pi.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", type=Path, help="folder of photos of the board")
    src.add_argument("--camera", help="live camera: device index or URL")
    src.add_argument("--sim", action="store_true", help="views rendered by the simulated camera of --config")
    pi.add_argument("--views", type=int, default=15, help="views to take from a live or simulated camera")
    _board_arguments(pi, "chessboard")
    m = pi.add_argument_group("model and thresholds")
    m.add_argument("--distortion", default="full5", choices=["none", "k1", "k1k2", "radial", "k1k2p1p2", "full5", "auto"])
    m.add_argument("--fix-aspect-ratio", action="store_true", help="square pixels: fx = fy")
    m.add_argument("--fix-principal-point", action="store_true", help="principal point at the image centre")
    m.add_argument("--zero-tangent", action="store_true", help="no tangential distortion (p1 = p2 = 0)")
    m.add_argument("--max-rms-px", type=float, default=1.0, help="pass threshold on the RMS reprojection error")
    m.add_argument("--min-views", type=int, default=4, help="fewest accepted views")
    m.add_argument("--max-view-rms-px", type=float, default=1.5, help="views reprojecting worse (and 4x the median) are left out")
    _output_arguments(pi)

    pb = sub.add_parser("belt", help="camera-to-belt pose from the printed sheet lying on the belt")
    pb.add_argument("--intrinsics", type=Path, help="intrinsics file (default: the latest in --store/--machine)")
    src = pb.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", type=Path, help="photo of the sheet on the belt, taken by the line camera")
    src.add_argument("--camera", help="live camera: device index or URL")
    src.add_argument("--sim", action="store_true", help="the simulated camera of --config")
    pb.add_argument(
        "--sheet-x-mm", type=float, help="across-belt distance from the belt's left edge to the sheet's pattern corner"
    )
    pb.add_argument(
        "--sheet-y-mm", type=float, help="along-belt position of that corner (0: it defines the camera reference line)"
    )
    pb.add_argument("--max-rms-mm", type=float, default=1.0, help="pass threshold on the RMS residual on the belt")
    pb.add_argument("--max-error-mm", type=float, default=3.0, help="pass threshold on the largest residual")
    _board_arguments(pb, "charuco")
    _output_arguments(pb)

    ps = sub.add_parser("speed", help="encoder mm per count and belt-speed stability")
    ps.add_argument(
        "--calibration", type=Path, help="belt calibration to map pixels to mm (default: latest in --store/--machine)"
    )
    src = ps.add_mutually_exclusive_group(required=True)
    src.add_argument("--frames", type=Path, help="recording folder with frames.csv (file,t_ns,count)")
    src.add_argument("--sim", action="store_true", help="the sheet riding the simulated belt of --config")
    src.add_argument("--length-mm", type=float, help="measured belt travel (with --counts): no camera needed")
    ps.add_argument("--counts", type=int, help="encoder counts over --length-mm")
    ps.add_argument("--max-rel-error", type=float, default=0.0005, help="pass threshold on the relative uncertainty")
    _board_arguments(ps, "charuco")
    _output_arguments(ps)

    pt = sub.add_parser("timing", help="per-valve latency and lateral offset from test pulses")
    src = pt.add_mutually_exclusive_group(required=True)
    src.add_argument("--sim", action="store_true", help="simulated controller, belt and valves of --config")
    src.add_argument("--link", choices=["serial", "modbus"], help="fire through a controller link (actuator.serial / .modbus)")
    pt.add_argument(
        "--emulator", action="store_true", help="with --link: the controller/PLC emulator over the simulated valves of --config"
    )
    pt.add_argument("--valves", default="all", help="valves to test: all, or e.g. 0-7,12")
    pt.add_argument("--repeats", type=int, default=5, help="pulses per valve")
    pt.add_argument("--max-jitter-ms", type=float, default=1.0, help="pass threshold on per-valve jitter")
    _output_arguments(pt)

    pp = sub.add_parser("sheet", help="write a printable sheet (PDF or PNG at exact scale)")
    pp.add_argument("--out", type=Path, required=True, help="file to write: .pdf or .png")
    pp.add_argument("--dpi", type=float, default=200.0, help="print resolution")
    pp.add_argument("--margin-mm", type=float, default=20.0, help="white margin with labels and the scale bar")
    _board_arguments(pp, "charuco")

    ph = sub.add_parser("history", help="list a machine's calibration versions and check the latest")
    ph.add_argument("--store", type=Path, required=True)
    ph.add_argument("--machine", required=True)
    ph.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="judge the latest version for this line, as 'sorter check' does (default: for a real line)",
    )
    ph.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key of --config")


# ---------------------------------------------------------------------- helpers


def _board(args: argparse.Namespace, sheet_defaults: bool) -> BoardSpec:
    from sorter.calib.boards import BoardSpec

    d = DEFAULT_SHEET if sheet_defaults and args.board == "charuco" else {}
    if args.board == "chessboard" and (args.cols is None or args.rows is None or args.square_mm is None):
        from sorter.errors import CalibrationError

        raise CalibrationError("a chessboard needs --cols and --rows (inner corners) and --square-mm")
    return BoardSpec(
        type=args.board,
        cols=args.cols if args.cols is not None else int(d.get("cols", 5)),
        rows=args.rows if args.rows is not None else int(d.get("rows", 7)),
        square_mm=args.square_mm if args.square_mm is not None else float(d.get("square_mm", 0.0)),
        marker_mm=args.marker_mm if args.marker_mm is not None else float(d.get("marker_mm", 0.0)),
        separation_mm=args.separation_mm,
        dictionary=args.dictionary or str(d.get("dictionary", "DICT_6X6_250")),
        legacy_pattern=args.legacy_pattern,
    )


def _config(args: argparse.Namespace, needed: bool) -> Config | None:
    from sorter.runtime.preflight import load_line_config

    if not needed and not args.config and not args.set:
        return None
    return load_line_config(args.config, args.set, calibration=False)


def _provenance(args: argparse.Namespace) -> str:
    """Where this step's numbers come from: the simulated line, a controller emulator, or the line itself."""
    if getattr(args, "sim", False):
        return "simulator"
    if getattr(args, "emulator", False):
        return "emulator"
    return "measured"


def _outputs(args: argparse.Namespace, cfg: Config | None) -> Outputs:
    from sorter.calib.procedures import Outputs
    from sorter.calib_store import CalibrationStore

    store = None
    if args.store is not None:
        machine = args.machine or (cfg.line.name if cfg else None)
        if not machine:
            from sorter.errors import CalibrationError

            raise CalibrationError("--store needs --machine NAME (or a --config whose line.name names the machine)")
        store = CalibrationStore(args.store, machine)
    return Outputs(
        out=args.out, store=store, preview_dir=args.preview_dir, now_utc=datetime.now(UTC), provenance=_provenance(args)
    )


def _guide(args: argparse.Namespace) -> Guide:
    from sorter.calib.guide import Guide

    return Guide(interactive=not args.non_interactive and sys.stdin.isatty())


def _section_from(path: Path | None, outputs: Outputs, kind: str, flag: str) -> dict[str, Any]:
    from sorter.calib_store import load_calibration, validate_section
    from sorter.errors import CalibrationError

    if path is not None:
        cal = load_calibration(path)
    elif outputs.store is not None and outputs.store.latest() is not None:
        latest = outputs.store.latest()
        assert latest is not None
        cal = latest
    else:
        raise CalibrationError(f"pass {flag} FILE (or --store/--machine holding a {kind} calibration)")
    section = cal.section(kind)
    problems = validate_section(kind, section)
    if problems:
        raise CalibrationError(f"{cal.path}: " + "; ".join(problems))
    return section


def _valves(text: str, count: int) -> list[int]:
    from sorter.errors import CalibrationError

    if text == "all":
        return list(range(count))
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                a, b = part.split("-", 1)
                out += list(range(int(a), int(b) + 1))
            elif part.strip():
                out.append(int(part))
    except ValueError:
        raise CalibrationError(f"--valves {text!r}: use 'all' or indices and ranges like 0-7,12") from None
    bad = [v for v in out if not 0 <= v < count]
    if bad:
        raise CalibrationError(f"--valves: {bad} outside 0..{count - 1} (airjet.valves.count = {count})")
    return sorted(set(out))


# ---------------------------------------------------------------------- steps


def _intrinsics(args: argparse.Namespace) -> int:
    from sorter.calib.intrinsics import IntrinsicsOptions
    from sorter.calib.procedures import live_views, run_intrinsics
    from sorter.calib.sources import LiveCamera, image_files, images_in
    from sorter.sim.calib_views import sim_board_views

    cfg = _config(args, needed=bool(args.sim))
    board = _board(args, sheet_defaults=False)
    options = IntrinsicsOptions(
        distortion=args.distortion,
        fix_aspect_ratio=args.fix_aspect_ratio,
        fix_principal_point=args.fix_principal_point,
        zero_tangent=args.zero_tangent,
        max_rms_px=args.max_rms_px,
        min_views=args.min_views,
        max_view_rms_px=args.max_view_rms_px,
    )
    outputs = _outputs(args, cfg)
    guide = _guide(args)
    if args.images is not None:
        n = len(image_files(args.images))
        return run_intrinsics(images_in(args.images), board, options, guide, outputs, n)
    if args.sim:
        assert cfg is not None
        return run_intrinsics(sim_board_views(cfg, board, args.views), board, options, guide, outputs, args.views)
    cam = LiveCamera(args.camera)
    try:
        return run_intrinsics(live_views(cam.grab, board, args.views, guide), board, options, guide, outputs, args.views)
    finally:
        cam.close()


def _belt(args: argparse.Namespace) -> int:
    from sorter.calib.homography import BeltThresholds, SheetPlacement
    from sorter.calib.intrinsics import intrinsics_from_dict
    from sorter.calib.procedures import run_belt
    from sorter.calib.sources import LiveCamera, read_image
    from sorter.sim.calib_views import sim_belt_image, sim_camera, sim_sheet_placement

    cfg = _config(args, needed=bool(args.sim))
    sheet = _board(args, sheet_defaults=True)
    outputs = _outputs(args, cfg)
    guide = _guide(args)
    intr = intrinsics_from_dict(_section_from(args.intrinsics, outputs, "intrinsics", "--intrinsics"))
    thresholds = BeltThresholds(max_rms_mm=args.max_rms_mm, max_error_mm=args.max_error_mm)
    truth = None
    if args.sim:
        assert cfg is not None
        default = sim_sheet_placement(cfg, sheet)
        placement = SheetPlacement(
            args.sheet_x_mm if args.sheet_x_mm is not None else default.x_mm,
            args.sheet_y_mm if args.sheet_y_mm is not None else default.y_mm,
        )
        image = sim_belt_image(cfg, sheet, placement)
        truth = sim_camera(cfg)
    else:
        x = (
            args.sheet_x_mm
            if args.sheet_x_mm is not None
            else float(guide.ask("sheet corner distance from the belt's left edge, mm", "0"))
        )
        y = (
            args.sheet_y_mm
            if args.sheet_y_mm is not None
            else float(guide.ask("sheet corner along the belt (0 = reference line), mm", "0"))
        )
        placement = SheetPlacement(x, y)
        if args.image is not None:
            image = read_image(args.image)
        else:
            guide.wait("lay the sheet flat on the stopped belt, printed side up, arrow downstream")
            cam = LiveCamera(args.camera, intr.width_px, intr.height_px)
            try:
                image = cam.grab()
            finally:
                cam.close()
    return run_belt(image, intr, sheet, placement, thresholds, guide, outputs, truth)


def _speed(args: argparse.Namespace) -> int:
    from sorter.calib.homography import camera_from_belt_dict
    from sorter.calib.procedures import run_speed, run_speed_from_length
    from sorter.calib.sources import recorded_frames
    from sorter.calib.speed import SpeedThresholds
    from sorter.errors import CalibrationError
    from sorter.sim.calib_views import sim_camera, sim_sheet_placement, sim_speed_frames

    cfg = _config(args, needed=bool(args.sim))
    outputs = _outputs(args, cfg)
    guide = _guide(args)
    if args.length_mm is not None:
        if args.counts is None:
            raise CalibrationError("--length-mm needs --counts: the encoder counts read over that length")
        return run_speed_from_length(args.length_mm, args.counts, guide, outputs)
    sheet = _board(args, sheet_defaults=True)
    thresholds = SpeedThresholds(max_rel_std_error=args.max_rel_error)
    if args.sim and args.calibration is None and (outputs.store is None or outputs.store.latest() is None):
        assert cfg is not None
        camera = sim_camera(cfg)
        guide.warn("no belt calibration given: using the simulated camera's true mount")
    else:
        camera = camera_from_belt_dict(_section_from(args.calibration, outputs, "belt", "--calibration"))
    if args.sim:
        assert cfg is not None
        x = sim_sheet_placement(cfg, sheet).x_mm
        frames = sim_speed_frames(cfg, sheet, x)
        return run_speed(frames, camera, sheet, thresholds, guide, outputs, 1.0 / cfg.belt.encoder_counts_per_mm)
    guide.wait("recording ready: the sheet rode the belt through the view while the encoder counted")
    return run_speed(recorded_frames(args.frames), camera, sheet, thresholds, guide, outputs)


def _timing(args: argparse.Namespace) -> int:
    from sorter.calib.procedures import run_timing
    from sorter.calib.timing import TimingThresholds, ValveGeometry

    cfg = _config(args, needed=True)
    assert cfg is not None
    outputs = _outputs(args, cfg)
    guide = _guide(args)
    v = cfg.airjet.valves
    geometry = ValveGeometry(v.count, v.pitch_mm, v.x_first_mm)
    valves = _valves(args.valves, v.count)
    thresholds = TimingThresholds(max_jitter_ms=args.max_jitter_ms)
    rig: PulseRig
    if args.sim:
        from sorter.sim.calib_views import sim_pulse_rig

        rig = sim_pulse_rig(cfg, geometry)
    else:
        rig = _bridge_rig(cfg, args.link, args.emulator)
    truth_ms = cfg.sim.valve_latency_ms if (args.sim or args.emulator) else None
    return run_timing(rig, geometry, valves, args.repeats, thresholds, guide, outputs, truth_ms)


def _bridge_rig(cfg: Config, link_type: str, emulator: bool) -> PulseRig:
    """Test pulses through a controller link: on a real line (not possible yet), or through the emulator of the
    configured link whose device is the simulator's valve bank with its true latency and jitter."""
    from sorter.actuate.links import link_counts_per_mm, link_max_counts_per_s, open_link, simulation_limits
    from sorter.calib.bridge_rig import BridgePulseRig
    from sorter.errors import CalibrationError, DeviceNotConnectedError
    from sorter.sim.calib_views import valve_bench

    if not emulator:
        raise CalibrationError(
            "observing the air hits on a real line needs the camera procedure for blown targets, which this version "
            f"does not have; run 'sorter calibrate timing --link {link_type} --emulator' against the emulator, or --sim"
        )
    cpm = link_counts_per_mm(cfg)
    bench = valve_bench(cfg, cpm)
    limits = simulation_limits(cfg.airjet.valves.max_pulse_ms)
    rate = link_max_counts_per_s(cfg)
    opened = open_link(cfg.actuator, link_type=link_type, emulate=bench.device, limits=limits, max_counts_per_s=rate)
    if not opened.link.wait_ready(3.0):
        opened.close()
        raise DeviceNotConnectedError(
            f"the {link_type} controller emulator did not answer within 3 s (serial needs socat installed)"
        )
    return BridgePulseRig(opened.link, cpm, bench.hits, bench.belt, on_close=opened.stop_emulator)


def _sheet(args: argparse.Namespace) -> int:
    from sorter.calib.printing import write_sheet

    spec = _board(args, sheet_defaults=True)
    sheet = write_sheet(args.out, spec, args.dpi, args.margin_mm)
    h, w = sheet.image.shape
    print(f"written: {args.out}: {spec.describe()}")
    print(f"  page {w / sheet.px_per_mm:.1f} x {h / sheet.px_per_mm:.1f} mm at {sheet.px_per_mm * 25.4:.1f} dpi")
    print("  print at 100 % (actual size, no 'fit to page'); check the 100 mm scale bar with a ruler")
    if spec.has_ids:
        print(
            f"  calibrate with: --board {spec.type} --cols {spec.cols} --rows {spec.rows} --square-mm {spec.square_mm:g} "
            f"--marker-mm {spec.marker_mm:g} --dictionary {spec.dictionary}"
        )
    return 0


def main(args: argparse.Namespace) -> int:
    from sorter.commands.calibrate_history import history
    from sorter.errors import SorterError

    def _history(a: argparse.Namespace) -> int:
        return history(a, lambda x: _config(x, needed=True))

    steps = {"intrinsics": _intrinsics, "belt": _belt, "speed": _speed, "timing": _timing, "sheet": _sheet, "history": _history}
    try:
        return steps[args.step](args)
    except SorterError as e:
        print(f"calibration stopped: {e}", file=sys.stderr)
        print("nothing was written.", file=sys.stderr)
        return 2
