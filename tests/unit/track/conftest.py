"""Every tracker test runs twice: with the compiled kernels and with the numpy implementation.

Both must give the same results (``test_tracker_compiled.py`` compares them bit
for bit); running every behavioural test on each keeps either from drifting.
"""

from __future__ import annotations

import pytest

from sorter.track.tracker import KERNELS_ENV


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def tracker_kernels(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The implementation every ``BeltTracker`` of the test uses (through ``SORTER_TRACKER_KERNELS``)."""
    kernels: str = request.param
    monkeypatch.setenv(KERNELS_ENV, kernels)
    return kernels
