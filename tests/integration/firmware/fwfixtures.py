"""Fixtures of the firmware tests: the firmware and its emulated board, built once per session with make.

Not a conftest.py: tests/integration/test_event_store_postgres.py imports its folder's conftest by module name,
which a second conftest.py would shadow. The test modules take these fixtures by name (``fw = fwfixtures.fw``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fwboard import Build, build, probe_identity, tools_missing


@pytest.fixture(scope="session")
def fw() -> Build:
    """``make -C firmware avr board``: the firmware ELF and the simavr board (skipped without the toolchain)."""
    missing = tools_missing()
    if missing:
        pytest.skip(f"cannot build the firmware: {missing}")
    return build()


@pytest.fixture(scope="session")
def identity(fw: Build, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, int]:
    """(boot_id, epoch) of a script run's boot (seed 1, erased EEPROM): the epoch scripted commands must carry."""
    return probe_identity(fw, tmp_path_factory.mktemp("probe"))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A scratch folder for one board run (its script, event log and EEPROM)."""
    return tmp_path
