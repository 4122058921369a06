"""The one-screen live status shown by ``sorter run`` in a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sorter.runtime.line import Line


def render_status(line: Line, t_s: float) -> str:
    """Text of the live status: an overload warning while there is one, rates, objects, ejections, drops, latencies."""
    c = line.counters
    score = line.score()
    lat = line.latency.summary_ms()
    fps = c.frames / t_s if t_s > 0 else 0.0
    dropped = c.frames_dropped + c.frames_dropped_slot_live
    rows = [
        f"sorter | {line.cfg.line.name} ({line.cfg.line.mode}) | t={t_s:7.1f} s | {fps:5.1f} fps | dropped {dropped}",
        f"objects seen {score.get('objects_seen', 0):6d} | targets passed {score.get('targets_passed', 0):5d} "
        f"ejected {score.get('targets_ejected', 0):5d} | non-targets ejected {score.get('nontargets_ejected', 0):4d}",
        f"recovery {score.get('recovery', 0.0):.3f} | purity {score.get('purity', 1.0):.3f} | "
        f"commands {c.commands_sent} late-dropped {c.commands_late_dropped} rejected {c.commands_rejected}",
        "latency ms p50/p99: " + "  ".join(f"{k} {v['p50']:.2f}/{v['p99']:.2f}" for k, v in lat.items()),
    ]
    over = line.overload
    reason = over.reason() if over is not None else None
    if reason is not None:  # kept on screen while it lasts (a one-line status, not on a terminal, shows it too)
        rows.append(f"WARNING degraded: {reason}: the loop cannot hold {line.cfg.camera.fps:g} fps")
    return "\n".join(rows)
