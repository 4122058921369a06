"""The one-screen live status shown by ``sorter run`` in a terminal, with a fault panel that keeps what went wrong.

The screen is redrawn every ``runtime.status_interval_s``, which would erase a
warning printed between two redraws; so the status itself carries the faults:
one line per fault that lasts (kind, reason, since when), the count of every
fault kind since the start (cleared ones included, with when they cleared; the
controller's watchdog trips and link reconnections too), and the last warnings
logged. Without a terminal (a pipe, a file, the journal) one line per interval
is printed, with the faults in it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from sorter.runtime.fault_book import RECONNECTS, WATCHDOG, FaultBook
from sorter.runtime.summary_text import fault_counts, score_lines

if TYPE_CHECKING:
    from sorter.runtime.line import Line

#: warnings kept for the panel
RECENT_WARNINGS = 4


def clock_text(t_wall_s: float) -> str:
    """Local time of day, ``HH:MM:SS``."""
    return time.strftime("%H:%M:%S", time.localtime(t_wall_s))


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s} s" if s < 120 else f"{s // 60} min {s % 60:02d} s"


class RecentWarnings(logging.Handler):
    """Keeps the last few warnings (and worse) for the status panel, with their wall-clock time."""

    def __init__(self, capacity: int = RECENT_WARNINGS) -> None:
        super().__init__(logging.WARNING)
        self._items: deque[tuple[float, str]] = deque(maxlen=capacity)
        self._items_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage().splitlines()[0] if record.getMessage() else ""
        except Exception:  # a bad format string must not break the status
            text = str(record.msg)
        with self._items_lock:
            self._items.append((record.created, f"{record.levelname.lower()}: {text}"))

    def recent(self) -> list[tuple[float, str]]:
        """``(t_wall_s, text)`` oldest first."""
        with self._items_lock:
            return list(self._items)


def fault_book_of(line: Line) -> FaultBook | None:
    """The service's fault book (None for a line run without a service)."""
    book = getattr(line.service, "fault_book", None)
    return book if isinstance(book, FaultBook) else None


def fault_panel(book: FaultBook | None, now_wall_s: float) -> list[str]:
    """Lines of the fault panel: one per lasting fault, then the counts (cleared faults and events included)."""
    if book is None:
        return []
    rows = [
        f"FAULT {f.kind}: {f.reason} (since {clock_text(f.since_wall_s)}, {_duration(now_wall_s - f.since_wall_s)})"
        for f in book.active()
    ]
    counts = book.counts()
    if not counts:
        return rows or ["faults: none"]
    parts = []
    for kind, n in counts.items():
        text = f"{kind.replace('_', ' ')} {n}"
        if kind in (WATCHDOG, RECONNECTS):
            last = book.last_event_at(kind)
            text += f" (last {clock_text(last)})" if last is not None else ""
        else:
            cleared = book.cleared_at(kind)
            text += f" (cleared {clock_text(cleared)})" if cleared is not None else " (active)"
        parts.append(text)
    rows.append("faults since start: " + " | ".join(parts))
    return rows


def _recording_row(line: Line) -> str | None:
    rec = line.recorder
    if rec is None:
        return None
    live = rec.live_counts()
    dropped = live["frames_dropped"]
    captured = live["frames_captured"]
    text = f"recording: {live['frames']} frames written of {captured} captured"
    if dropped:
        text += f", DROPPED {dropped} ({100 * dropped / max(1, captured):.1f} %): the recording is incomplete"
    return text


def render_status(line: Line, t_s: float, warnings: RecentWarnings | None = None, now_wall_s: float | None = None) -> str:
    """Text of the live status: rates, objects, removals, drops, stage latencies, an overload warning while there is
    one, the fault panel, recent warnings."""
    now = time.time() if now_wall_s is None else now_wall_s
    c = line.counters
    score = dict(line.score())
    score.setdefault("mode", line.cfg.line.mode)
    score["ground_truth"] = line.scoreboard is not None
    score["tracks_confirmed"] = c.tracks_confirmed
    score["objects_by_class"] = dict(c.objects_by_class)
    score["targets_ejected"] = int(score.get("targets_ejected", 0)) + int(score.get("targets_picked", 0))
    score["nontargets_ejected"] = int(score.get("nontargets_ejected", 0)) + int(score.get("nontargets_picked", 0))
    lat = line.latency.summary_ms(3600)
    fps = c.frames / t_s if t_s > 0 else 0.0
    dropped = c.frames_dropped + c.frames_dropped_slot_live
    rows = [
        f"sorter | {line.cfg.line.name} ({line.cfg.line.mode}) | t={t_s:7.1f} s | {fps:5.1f} fps | dropped {dropped}",
        " | ".join(r.strip() for r in score_lines(score, indent="", width=0)),
        f"commands {c.commands_sent} late-dropped {c.commands_late_dropped} rejected {c.commands_rejected}",
        "latency ms p50/p99: " + "  ".join(f"{k} {v['p50']:.2f}/{v['p99']:.2f}" for k, v in lat.items()),
    ]
    over = line.overload
    reason = over.reason() if over is not None else None
    if reason is not None:  # kept on screen while it lasts (a one-line status, not on a terminal, shows it too)
        rows.append(f"WARNING degraded: {reason}: the loop cannot hold {line.cfg.camera.fps:g} fps")
    rec = _recording_row(line)
    if rec is not None:
        rows.append(rec)
    rows += fault_panel(fault_book_of(line), now)
    if warnings is not None:
        recent = warnings.recent()
        if recent:
            rows.append("recent warnings:")
            rows += [f"  {clock_text(t)} {text}" for t, text in recent]
    return "\n".join(rows)


def status_line(line: Line, t_s: float) -> str:
    """One line for a pipe or a file: the first status row plus the faults (lasting ones and counts)."""
    c = line.counters
    fps = c.frames / t_s if t_s > 0 else 0.0
    dropped = c.frames_dropped + c.frames_dropped_slot_live
    text = f"sorter | {line.cfg.line.name} ({line.cfg.line.mode}) | t={t_s:7.1f} s | {fps:5.1f} fps | dropped {dropped}"
    rec = line.recorder
    if rec is not None:
        live = rec.live_counts()
        if live["frames_dropped"]:
            text += f" | recording dropped {live['frames_dropped']} of {live['frames_captured']}"
    over = line.overload
    reason = over.reason() if over is not None else None
    if reason is not None:
        text += f" | WARNING degraded: {reason}"
    book = fault_book_of(line)
    if book is not None:
        for f in book.active():
            text += f" | FAULT {f.kind}: {f.reason} (since {clock_text(f.since_wall_s)})"
        counts = book.counts()
        if counts:
            text += f" | faults: {fault_counts(counts)}"
    return text


def status_printer(tty: bool, out: Any, warnings: RecentWarnings | None) -> Any:
    """The status callback of the loops: a redrawn screen on a terminal, else one line per interval."""

    def show(line: Line, t_s: float) -> None:
        if tty:
            out.write("\x1b[H\x1b[J" + render_status(line, t_s, warnings) + "\n")
        else:
            out.write(status_line(line, t_s) + "\n")
        out.flush()

    return show
