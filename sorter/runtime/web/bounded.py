"""Keep ``/status`` bounded on an endless run: per-shot lists become summaries plus a fixed window of recent values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Keys of the simulator's scoreboard that grow with every shot or pick.
GROWING = ("fire_position_errors_mm", "pick_errors_mm")


def bounded_score(score: Mapping[str, Any], recent: int = 20) -> dict[str, Any]:
    """``score`` with each growing list replaced by ``<key>_n`` (its length) and ``<key>_recent`` (its last values).

    The percentiles the scoreboard already computes (``*_p50``, ``*_p99``, ``*_max``) are kept as they are.
    """
    out: dict[str, Any] = {}
    for k, v in score.items():
        if k in GROWING and isinstance(v, list):
            out[f"{k}_n"] = len(v)
            out[f"{k}_recent"] = [round(float(x), 2) for x in v[-recent:]]
        else:
            out[k] = v
    return out
