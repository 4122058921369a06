"""Alerts as table rows, shared by the SQLite and PostgreSQL stores (columns, row conversion, the window clause)."""

from __future__ import annotations

from typing import Any

from sorter.analytics.alerts import Alert

#: Columns of the alerts table (PostgreSQL adds ``line``), in the order of :func:`alert_row`.
ALERT_COLUMNS = ("rule", "kind", "t_start_ns", "t_end_ns", "value", "threshold", "unit", "window_s", "message")


def alert_row(a: Alert) -> tuple[str, str, int, int | None, float, float, str, float, str]:
    """An alert's values in :data:`ALERT_COLUMNS` order."""
    return (a.rule, a.kind, int(a.t_start_ns), None if a.t_end_ns is None else int(a.t_end_ns), float(a.value),
            float(a.threshold), a.unit, float(a.window_s), a.message)


def alert_from_row(r: Any) -> Alert:
    """Inverse of :func:`alert_row`."""
    return Alert(str(r[0]), str(r[1]), int(r[2]), None if r[3] is None else int(r[3]), float(r[4]), float(r[5]), str(r[6]),
                 float(r[7]), str(r[8]))


def alert_where(since_ns: int | None, until_ns: int | None, active_only: bool, mark: str) -> tuple[str, list[Any]]:
    """SQL ``WHERE`` for alerts overlapping a window; ``mark`` is the driver's parameter mark (``?`` or ``%s``)."""
    clauses: list[str] = []
    params: list[Any] = []
    if until_ns is not None:
        clauses.append(f"t_start_ns < {mark}")
        params.append(until_ns)
    if since_ns is not None:
        clauses.append(f"(t_end_ns IS NULL OR t_end_ns > {mark})")
        params.append(since_ns)
    if active_only:
        clauses.append("t_end_ns IS NULL")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
