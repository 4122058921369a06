"""``sorter collect``: choose frames worth labelling from a running line (or its footage) into a batch folder."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sorter.commands.common import add_config_arguments, load_or_report
from sorter.errors import SorterError

if TYPE_CHECKING:
    from sorter.config import CameraConfig

HELP = "run the detector over the camera, a video or a recording and save the frames worth labelling (or an empty-belt capture)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, metavar="DIR", help="new batch folder (images/ and batch.json)")
    add_config_arguments(p)
    src = p.add_argument_group("source (default: the config's camera)")
    src.add_argument("--recording", type=Path, metavar="DIR", help="a folder written by 'sorter record'")
    src.add_argument(
        "--video", type=Path, metavar="FILE", help="a video file, read at its own frame rate (no calibration needed)"
    )
    src.add_argument("--duration", type=float, default=None, metavar="S", help="stop a live camera after this many seconds")
    src.add_argument("--from-s", type=float, default=None, metavar="S", help="files: start at this media time")
    src.add_argument("--to-s", type=float, default=None, metavar="S", help="files: stop at this media time")
    src.add_argument(
        "--roi", default=None, metavar="X,Y,W,H", help="belt region of the image in pixels (frames are cropped to it)"
    )
    m = p.add_argument_group("what to keep")
    m.add_argument(
        "--empty-belt",
        action="store_true",
        help="the belt is running with nothing on it (confirm it!): every frame is a hard negative, no labelling",
    )
    m.add_argument(
        "--keep-all", action="store_true", help="keep every n-th frame (--every) unlabelled, no sampling (evaluation sets)"
    )
    m.add_argument("--every", type=int, default=5, help="--empty-belt / --keep-all: keep every n-th frame (default 5)")
    m.add_argument("--max-frames", type=int, default=None, help="stop after saving this many frames")
    m.add_argument("--band", type=float, default=0.1, help="'near the threshold' band, +- (default 0.1)")
    m.add_argument("--confident", type=float, default=0.6, help="a score this high is confident (default 0.6)")
    m.add_argument("--random-share", type=float, default=0.02, help="share of frames kept at random (default 0.02)")
    m.add_argument("--max-per-hour", type=int, default=600, help="frames per hour of capture (default 600)")
    m.add_argument("--max-per-class-per-hour", type=int, default=150, help="frames per predicted class per hour (default 150)")
    m.add_argument("--min-gap-ms", type=float, default=200.0, help="least time between kept frames (default 200 ms)")
    m.add_argument("--novelty", type=float, default=3.0, help="novelty distance in reference spreads (default 3)")
    m.add_argument(
        "--reference",
        type=Path,
        metavar="BATCH",
        action="append",
        default=[],
        help="a batch (or dataset) whose frames count as already known, for novelty (repeatable)",
    )
    m.add_argument("--seed", type=int, default=0)
    p.add_argument("--yes", action="store_true", help="empty-belt mode: skip the confirmation question")


def _confirm_empty(args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print("sorter collect --empty-belt: confirm that the belt is empty with --yes (no terminal to ask)", file=sys.stderr)
        return False
    answer = input("Is the belt running with NOTHING on it for the whole capture? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _video_camera(path: Path) -> CameraConfig:
    """A ``video`` camera for a file, at the file's own frame rate (no calibration needed to collect)."""
    import cv2

    from sorter.config import CameraConfig

    cap = cv2.VideoCapture(str(path))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) if cap.isOpened() else 0.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    cap.release()
    return CameraConfig(type="video", uri=str(path), fps=fps if fps > 0 else 30.0, width_px=max(64, w), height_px=max(64, h))


def main(args: argparse.Namespace) -> int:
    cfg = load_or_report(args)
    if cfg is None:
        return 2
    if args.video is not None:
        cfg = cfg.model_copy(update={"camera": _video_camera(args.video)})
    if args.empty_belt and not _confirm_empty(args):
        return 2
    from sorter.detect.model_files import file_sha256, resolve_model
    from sorter.detect.registry import create_detector
    from sorter.entities import MATERIAL_CLASSES, Frame
    from sorter.train.data.batch import read_batch
    from sorter.train.data.collect import FrameCollector, parse_roi, run_collection
    from sorter.train.data.sampler import ActiveSampler, NoveltyModel, SamplerConfig, colour_feature
    from sorter.train.data.sources import belt_tracker_fn, config_frames, pixel_linker_fn, recording_frames

    threshold = cfg.detector.min_score
    keep = max(0.01, threshold - args.band)
    try:
        roi = parse_roi(args.roi)
        det_cfg = cfg.detector.model_copy(update={"min_score": keep})
        detector = create_detector(cfg.model_copy(update={"detector": det_cfg}), MATERIAL_CLASSES)
        novelty = None
        if not args.empty_belt:
            import cv2
            import numpy as np

            feats = []
            for ref in args.reference:
                b = read_batch(ref)
                for f in b.frames:
                    img = cv2.imread(str(b.image_path(f)), cv2.IMREAD_COLOR)
                    if img is not None:
                        feats.append(colour_feature(np.asarray(img, np.uint8)))
            novelty = NoveltyModel(np.stack(feats) if feats else None)
        sampler = (
            None
            if (args.empty_belt or args.keep_all)
            else ActiveSampler(
                SamplerConfig(
                    threshold=threshold,
                    threshold_band=args.band,
                    confident_score=args.confident,
                    novelty_distance=args.novelty,
                    random_share=args.random_share,
                    max_per_hour=args.max_per_hour,
                    max_per_class_per_hour=args.max_per_class_per_hour,
                    min_gap_ms=args.min_gap_ms,
                    seed=args.seed,
                ),
                novelty,
            )
        )
        if args.recording is not None:
            frames = recording_frames(args.recording)
            source, recording = str(args.recording), args.recording.name
        else:
            frames = config_frames(cfg, args.duration, window_s=(args.from_s, args.to_s))
            source = str(cfg.camera.uri or cfg.camera.type)
            recording = Path(source).stem if cfg.camera.type in ("video", "images") else cfg.line.name
        calibrated = cfg.camera.calibration_file is not None and roi is None
        track = belt_tracker_fn(cfg) if calibrated else pixel_linker_fn()
        model = resolve_model(cfg.detector.model, cfg.detector.precision)
        collector = FrameCollector(
            args.out,
            MATERIAL_CLASSES,
            sampler,
            empty_belt=args.empty_belt,
            keep_all=args.keep_all,
            every=args.every,
            keep_score=keep,
            source=source,
            recording=recording,
            max_frames=args.max_frames,
            info={
                "model": str(model),
                "model_sha256": file_sha256(model),
                "threshold": threshold,
                "roi_px": list(roi) if roi else None,
                "tracks": "belt tracker" if calibrated else "pixel linker",
                "command": shlex.join(["sorter", "collect", *sys.argv[2:]]),
            },
        )
        batch = run_collection(frames, lambda img: detector.detect(Frame(img, 0, 0.0, 0)), collector, track, roi)
        detector.close()
    except SorterError as e:
        print(f"sorter collect: {e}", file=sys.stderr)
        return 2
    kind = "empty-belt frames (hard negatives, no labelling needed)" if args.empty_belt else "frames to label"
    if args.empty_belt and batch.frames:
        import numpy as np

        fp = np.mean([sum(1 for b in f.predictions if (b.score or 0) >= threshold) for f in batch.frames])
        print(f"  the current model puts {fp:.2f} boxes per frame on this empty belt (threshold {threshold:g})")
    print(f"kept {len(batch.frames)} of {collector.offered} {kind} in {args.out}")
    if sampler is not None:
        print("  reasons: " + ", ".join(f"{k} {v}" for k, v in sampler.counts.items()) + f"; capped {sampler.capped}")
    return 0
