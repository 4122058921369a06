"""The parts of ``/status`` that come from the service's optional parts and its fault book (each bounded in size)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sorter.runtime.service import LineService


def extra_status(svc: LineService) -> dict[str, Any]:
    """``faults_active`` (lasting faults with their start), ``alerts`` (active alert rules), ``model`` (the running and
    the previous detector model, where models can be switched), ``collect`` (frames offered, saved, dropped) and
    ``recording`` (frames written, captured, dropped) where the line has them."""
    out: dict[str, Any] = {
        "faults_active": [
            {"kind": f.kind, "reason": f.reason, "since_wall_s": round(f.since_wall_s, 3)} for f in svc.fault_book.active()
        ],
        "alerts": svc.alerts.active() if svc.alerts is not None else [],
    }
    if svc.models is not None:
        out["model"] = svc.models.describe()
    if svc.collector is not None:
        out["collect"] = svc.collector.stats()
    recorder = getattr(svc.line, "recorder", None)
    if recorder is not None:
        out["recording"] = recorder.live_counts()
    return out
