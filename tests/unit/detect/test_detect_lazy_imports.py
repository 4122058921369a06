"""Heavy dependencies stay lazy: the CLI, the onnxruntime path and the TensorRT module import without torch/tensorrt."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import sorter.cli
sorter.cli.build_parser()
import sorter.detect.onnxruntime_backend, sorter.detect.tensorrt_backend, sorter.detect.torch_backend
import sorter.commands.eval_detector, sorter.train.evaluate, sorter.train.synth, sorter.train.coco
heavy = sorted(m for m in ("torch", "tensorrt", "tensorrt_rtx", "tensorrt_lean") if m in sys.modules)
print(",".join(heavy))
"""


def test_no_heavy_import_at_module_level() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "", f"imported at module level: {out.stdout.strip()}"
