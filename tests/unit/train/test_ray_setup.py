"""`sorter train --address` options: checked before anything starts, and Ray imported only when training on it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sorter.errors import ConfigError
from sorter.train.ray_train import RaySetup


def test_setup_checks_its_numbers() -> None:
    assert RaySetup("local").to_dict() == {"address": "local", "workers": 2, "cpus_per_worker": 1}
    with pytest.raises(ConfigError, match="--workers 0"):
        RaySetup("local", workers=0)
    with pytest.raises(ConfigError, match="--cpus-per-worker -1"):
        RaySetup("127.0.0.1:6379", workers=2, cpus_per_worker=-1)


def test_the_training_job_does_not_import_ray() -> None:
    code = "import sys, sorter.train.job, sorter.commands.train; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
