"""The import contract (``scripts/check_imports.py``) finds each kind of violation in a tree fed to it, and none here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "check_imports.py"


def _contract(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--root", str(root)], capture_output=True, text=True, timeout=120)


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in {"sorter/__init__.py": "", "firmware_bridge/__init__.py": "", **files}.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_this_repository_keeps_the_contract() -> None:
    r = _contract(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "import contract: OK" in r.stdout


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "sorter/entities.py": "import dataclasses\nimport numpy as np\n",
        "sorter/track/tracker.py": "from sorter.entities import Track\nfrom . import assign\n",
        "sorter/runtime/line.py": "".join(f"import sorter.{s}\n" for s in ("capture", "detect", "track", "schedule", "actuate")),
        "sorter/config.py": "import pydantic\nfrom sorter.errors import ConfigError\nfrom sorter.sim.config import SimConfig\n",
    })
    r = _contract(tmp_path)
    assert r.returncode == 0, r.stdout


def test_every_rule_reports_its_violation(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "sorter/detect/oracle.py": "x = 1\nfrom sorter.capture.base import FrameSource\n",
        "sorter/schedule/planner.py": "import cv2\n",
        "sorter/track/assign.py": "if True:\n    from sorter.geometry import CameraModel\n",
        "sorter/geometry.py": "from sorter.config import Config\n",
        "sorter/train/everything.py": "".join(
            f"from sorter.{s} import x\n" for s in ("capture", "detect", "track", "schedule", "actuate")
        ),
        "sorter/runtime/preflight.py": "def f():\n    from sorter.commands.hw import open_target\n",
        "sorter/config.py": "from sorter.runtime.plant import camera_model\n",
        "sorter/calib/rig.py": "from ..sim import world\nfrom sorter.actuate import links\n",
        "sorter/calib_store/files.py": "from sorter.calib.homography import camera_from_belt_dict\n",
        "firmware_bridge/link.py": "import sorter.entities\n",
        "sorter/sim/plant.py": "from sorter.actuate.bridge import _sim_limits\n",
    })
    r = _contract(tmp_path)
    assert r.returncode == 1
    out = r.stdout
    expected = [
        "sorter/detect/oracle.py:2: a stage never imports a sibling stage: sorter.detect.oracle (detect) imports "
        "sorter.capture.base (capture)",
        "sorter/schedule/planner.py:1: the pure core imports only the standard library, numpy, scipy, numba and entities: "
        "sorter.schedule.planner imports cv2",
        "sorter/track/assign.py:2: the pure core imports only the standard library, numpy, scipy, numba and entities",
        "sorter/geometry.py:1: the pure core imports only the standard library, numpy, scipy, numba and entities",
        "only runtime/ imports every stage: sorter.train imports all stages",
        "sorter/runtime/preflight.py:2: runtime never imports commands: sorter.runtime.preflight imports sorter.commands.hw",
        "sorter/config.py:1: config.py imports nothing above it: sorter.config imports sorter.runtime.plant",
        "sorter/calib/rig.py:1: calib does not import runtime, sim or actuate: sorter.calib.rig imports sorter.sim",
        "sorter/calib/rig.py:2: calib does not import runtime, sim or actuate: sorter.calib.rig imports sorter.actuate",
        "sorter/calib_store/files.py:1: calib_store depends on nothing above geometry and errors",
        "firmware_bridge/link.py:1: firmware_bridge never imports sorter: firmware_bridge.link imports sorter.entities",
        "sorter/sim/plant.py:1: no private cross-module imports: sorter.sim.plant imports _sim_limits from sorter.actuate.bridge",
    ]
    for line in expected:
        assert line in out, f"{line!r} not reported in:\n{out}"
    assert "violation(s)" in r.stderr
