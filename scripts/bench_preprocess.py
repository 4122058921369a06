#!/usr/bin/env python3
"""Detector preprocessing per frame: whole frame against the belt crop, at 1280x720 and 1920x1080.

Each row times :class:`sorter.detect.preprocess.Preprocessor` (crop view, one
INTER_LINEAR resize into the reused canvas, uint8 -> float32 CHW in [0, 1]) and,
for comparison, the INTER_AREA resize through a temporary image it replaced. The
belt region comes from a camera model like a real mount that sees more than the
belt (the belt and its margins are cropped by :func:`sorter.detect.roi.belt_roi`).
Frames are rendered simulator frames scaled to each size (the cost of a resize
does not depend on the content).

Times per frame, p50 and p99: ``wall`` (perf_counter) and ``cpu`` (the calling
thread's CPU time, which does not grow when other processes load the machine).
OpenCV runs on one thread (``--cv-threads``) so the thread's CPU time is the whole
cost; the loop's preprocessing runs on one core beside the inference.

    .venv/bin/python scripts/bench_preprocess.py --iterations 500
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sorter.detect.model_files import read_model_info, resolve_model
from sorter.detect.preprocess import Letterbox, Preprocessor, letterbox_params, to_tensor
from sorter.detect.roi import Roi, belt_roi
from sorter.detect.spec import ModelSpec
from sorter.entities import ImageArray
from sorter.geometry import CameraModel

#: the mount of the table: 1400 mm above a 1200 mm belt with a 70 degree lens, so the view is about 1960 mm wide
BELT_WIDTH_MM = 1200.0
MARGIN_MM = 50.0


def _camera(w_px: int, h_px: int) -> CameraModel:
    return CameraModel.looking_down(w_px, h_px, hfov_deg=70.0, height_mm=1400.0, centre_x_mm=BELT_WIDTH_MM / 2.0,
                                    dist=(-0.05, 0.01, 0.0, 0.0, 0.0))


def _frame(w_px: int, h_px: int) -> ImageArray:
    from sorter.train.synth import SynthDataset, SynthRecipe

    image = SynthDataset(SynthRecipe(n_images=1, seed=424242, randomise_style=False))[0].image
    return np.ascontiguousarray(cv2.resize(image, (w_px, h_px), interpolation=cv2.INTER_LINEAR), np.uint8)


def _area_preprocess(spec: ModelSpec, roi: Roi | None) -> Callable[[ImageArray], tuple[object, Letterbox]]:
    """The replaced path: fill the canvas, INTER_AREA resize into a temporary image, copy it in, scale."""
    canvas = np.empty((spec.input_h_px, spec.input_w_px, 3), np.uint8)
    tensor = np.empty((1, 3, spec.input_h_px, spec.input_w_px), np.float32)

    def run(image: ImageArray) -> tuple[object, Letterbox]:
        src = image if roi is None else roi.crop(image)
        h, w = src.shape[:2]
        lb = letterbox_params(w, h, spec.input_w_px, spec.input_h_px)
        canvas[...] = spec.pad_value
        resized = cv2.resize(src, (lb.new_w_px, lb.new_h_px), interpolation=cv2.INTER_AREA)
        canvas[lb.pad_y_px : lb.pad_y_px + lb.new_h_px, lb.pad_x_px : lb.pad_x_px + lb.new_w_px] = resized
        return to_tensor(canvas, tensor), lb

    return run


def _time(fn: Callable[[ImageArray], object], image: ImageArray, iterations: int, warmup: int) -> dict[str, float]:
    wall, cpu = [], []
    for i in range(warmup + iterations):
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        fn(image)
        t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        if i >= warmup:
            wall.append((t1 - t0) / 1e6)
            cpu.append((c1 - c0) / 1e6)
    return {
        "wall_p50": float(np.percentile(wall, 50)), "wall_p99": float(np.percentile(wall, 99)),
        "cpu_p50": float(np.percentile(cpu, 50)), "cpu_p99": float(np.percentile(cpu, 99)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="ONNX model whose input size is used (default: the packaged default)")
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--cv-threads", type=int, default=1, help="OpenCV threads (default 1: thread CPU time is the cost)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(args.cv_threads)
    spec = read_model_info(resolve_model(args.model, "fp32")).spec

    hdr = (f"{'frame':9s} {'region':34s} {'resize':12s} | {'wall p50':>8s} {'p99':>7s} | {'cpu p50':>8s} {'p99':>7s}  (ms)")
    print(f"network input {spec.input_w_px}x{spec.input_h_px}; belt {BELT_WIDTH_MM:g} mm + {MARGIN_MM:g} mm margins seen "
          f"by a 70 deg camera 1400 mm above it; {args.iterations} iterations, OpenCV threads {args.cv_threads}")
    print(hdr)
    print("-" * len(hdr))
    for w_px, h_px in ((1280, 720), (1920, 1080)):
        image = _frame(w_px, h_px)
        crop = belt_roi(_camera(w_px, h_px), BELT_WIDTH_MM, MARGIN_MM)
        for roi in (None, crop):
            region = "whole frame" if roi is None else f"belt {roi.w_px}x{roi.h_px} ({100 * roi.share:.0f} %)"
            pre = Preprocessor(spec, roi)
            for name, fn in (("INTER_LINEAR", pre), ("INTER_AREA*", _area_preprocess(spec, roi))):
                r = _time(fn, image, args.iterations, args.warmup)
                print(f"{w_px}x{h_px:<4d} {region:34s} {name:12s} | {r['wall_p50']:8.3f} {r['wall_p99']:7.3f} | "
                      f"{r['cpu_p50']:8.3f} {r['cpu_p99']:7.3f}")
    print("* INTER_AREA: the resize before the crop existed (temporary image, whole canvas filled), for comparison")
    return 0


if __name__ == "__main__":
    sys.exit(main())
