"""The systemd unit written by scripts/install-service.sh (printed, not installed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-service.sh"


def _unit(*args: str) -> subprocess.CompletedProcess[str]:
    sorter = str(Path(sys.executable).with_name("sorter"))
    return subprocess.run(["bash", str(SCRIPT), "--sorter", sorter, "--user", "root", *args], capture_output=True, text=True)


def test_unit_runs_the_service_with_notify_watchdog_and_restart(tmp_path: Path) -> None:
    r = _unit("--config", "/etc/sorter/line.yaml", "--watchdog-s", "7", "--print")
    assert r.returncode == 0, r.stderr
    lines = set(r.stdout.splitlines())
    for want in (
        "Type=notify",
        "Restart=on-failure",
        "WatchdogSec=7",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "TimeoutStopSec=5",
        "WorkingDirectory=/etc/sorter",  # relative paths of the config work under the service
        "Environment=NUMBA_CACHE_DIR=/var/cache/sorter/numba",  # the tracker's kernels survive a restart, built once
    ):
        assert want in lines, want
    assert any(ln.startswith("ExecStart=") and ln.endswith("run --quiet --config /etc/sorter/line.yaml") for ln in lines)
    assert any(ln.startswith("ExecStartPre=") and "check --config /etc/sorter/line.yaml" in ln for ln in lines)
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:  # systemd's own parser, where the machine has it
        unit = tmp_path / "sorter-test.service"
        unit.write_text(r.stdout, encoding="utf-8")
        v = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
        problems = [ln for ln in v.stderr.splitlines() if str(unit) in ln]
        assert problems == [], problems


def test_bad_arguments_are_refused() -> None:
    r = _unit("--config", "relative.yaml", "--print")
    assert r.returncode == 2 and "absolute path" in r.stderr
    r = _unit("--bogus")
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr
