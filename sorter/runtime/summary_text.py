"""The end-of-run summary in words, and the score line shared with the live status (pure: a summary dict in, text out).

Words follow the line: a robot *picks*, air jets *eject*. A figure that cannot be
known is said to be unknown rather than printed as a perfect or a zero score:
purity with nothing removed, recovery with no target gone by, and any score of a
run without ground truth (a real camera or a replay: only the simulated line
knows what passed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: command outcomes printed first, in this order; any other ``commands_*`` count of the summary follows
_COMMAND_ORDER = ("executed", "late_dropped", "rejected", "executed_late")


def verb(mode: str) -> str:
    """``picked`` on a robot line, ``ejected`` on an air-jet line."""
    return "picked" if mode == "robot" else "ejected"


def score_lines(s: Mapping[str, Any], *, indent: str = "  ", width: int = 18) -> list[str]:
    """The objects, removals, recovery and purity of a summary (or a live score) in words.

    Args:
        s: ``mode``, ``objects_seen``, ``targets_passed``, ``targets_ejected``, ``nontargets_ejected``, ``recovery``,
            ``purity``, ``tracks_confirmed``, ``objects_by_class`` and ``ground_truth`` (False: no simulator scored the run).
        indent: put before each line.
        width: column of the values.
    """
    v = verb(str(s.get("mode", "airjet")))

    def row(label: str, text: str) -> str:
        return f"{indent}{label:<{max(0, width - 1)}} {text}"

    if not s.get("ground_truth", True):
        by_class = ", ".join(f"{k} {n}" for k, n in (s.get("objects_by_class") or {}).items())
        tracked = f"{int(s.get('tracks_confirmed', 0))}" + (f" ({by_class})" if by_class else "")
        return [
            row("objects tracked", tracked),
            row("recovery, purity", "n/a (no ground truth: only the simulated line knows what went by)"),
        ]
    targets = int(s.get("targets_passed", 0))
    removed_targets = int(s.get("targets_ejected", 0))
    removed_others = int(s.get("nontargets_ejected", 0))
    removed = removed_targets + removed_others
    recovery = f"{float(s.get('recovery', 0.0)):.4f}" if targets else "n/a (no target went by)"
    purity = f"{float(s.get('purity', 1.0)):.4f}" if removed else f"n/a (nothing {v})"
    return [
        row("objects seen", f"{int(s.get('objects_seen', 0))}"),
        row("targets passed", f"{targets}  {v} {removed_targets}  non-targets {v} {removed_others}"),
        row("recovery", f"{recovery}   purity {purity}"),
    ]


def command_counts(s: Mapping[str, Any]) -> str:
    """``sent N  executed a  late-dropped b ...``: every ``commands_*`` count of the summary, known outcomes first."""
    counts = {k[len("commands_"):]: v for k, v in s.items() if k.startswith("commands_") and isinstance(v, int)}
    sent = counts.pop("sent", 0)
    order = [k for k in _COMMAND_ORDER if k in counts] + sorted(k for k in counts if k not in _COMMAND_ORDER)
    return "  ".join([f"sent {sent}"] + [f"{k.replace('_', '-')} {counts[k]}" for k in order])


def fault_counts(faults: Mapping[str, int]) -> str:
    """``camera 2, controller 1, watchdog trips 1`` (``none`` when nothing went wrong)."""
    parts = [f"{k.replace('_', ' ')} {n}" for k, n in sorted(faults.items()) if n]
    return ", ".join(parts) if parts else "none"


def recording_line(rec: Mapping[str, Any]) -> str:
    """What a recording holds and what it missed."""
    written = int(rec.get("frames", 0))
    captured = int(rec.get("frames_captured", written + int(rec.get("frames_dropped", 0))))
    dropped = int(rec.get("frames_dropped", 0))
    text = f"{written} of {captured} frames written"
    if dropped:
        text += (f", {dropped} dropped ({100 * float(rec.get('dropped_share', 0.0)):.1f} %), longest gap "
                 f"{float(rec.get('longest_gap_ms', 0.0)):.0f} ms: INCOMPLETE")
    else:
        text += ", complete"
    if rec.get("error"):
        text += f"; error: {rec['error']}"
    return text


def replay_line(rep: Mapping[str, Any]) -> str:
    """How much of what the camera captured the replay saw."""
    text = f"{int(rep.get('frames_replayed', 0))} of {int(rep.get('frames_captured', 0))} captured frames"
    missing = int(rep.get("frames_missing", 0))
    if missing:
        text += (f" ({missing} missing from the recording, {100 * float(rep.get('missing_share', 0.0)):.1f} %; "
                 f"longest gap {float(rep.get('longest_gap_ms', 0.0)):.0f} ms)")
    return text


def human_summary(s: Mapping[str, Any]) -> str:
    """A short text for the terminal from a run summary (``sorter.runtime.accounting.build_summary`` plus
    ``faults``, ``ground_truth``, ``recording`` and ``replay`` where the run has them)."""
    mode = str(s.get("mode", "airjet"))
    fe = s.get("fire_position_error_mm") or {}
    width = 18
    lines = [
        f"Run summary ({mode}, detector {s.get('detector', '?')}, "
        f"{float(s.get('sim_duration_s', 0.0)):.1f} s of belt in {float(s.get('wall_s', 0.0)):.1f} s wall, "
        f"x{float(s.get('realtime_factor', 0.0)):.2f})",
        f"  {'frames':<{width}}{s.get('frames', 0)}  dropped {s.get('frames_dropped', 0)} "
        f"({100 * float(s.get('frames_dropped_fraction', 0.0)):.2f} %)",
    ]
    if "replay" in s:
        lines.append(f"  {'replayed':<{width}}{replay_line(s['replay'])}")
    lines += score_lines(s, width=width)
    lines.append(f"  {'commands':<{width}}{command_counts(s)}")
    if fe.get("p50") or fe.get("max"):
        what = "pick error mm" if mode == "robot" else "position error mm"
        lines.append(f"  {what:<{width}}p50 {fe['p50']:.2f}  p99 {fe['p99']:.2f}  max {fe['max']:.2f}")
    if "pick_success" in s:
        lines.append(
            f"  {'picks':<{width}}{s.get('picks_succeeded', 0)}/{s.get('picks_attempted', 0)} ok "
            f"({s['pick_success']:.3f}), {s.get('picks_per_min', 0):.1f} picks/min"
        )
    lat = s.get("latency_ms") or {}
    if lat:
        lines.append(f"  {'latency ms':<{width}}" + "  ".join(f"{k} {v['p50']:.3f}/{v['p99']:.3f}" for k, v in lat.items())
                     + "  (p50/p99)")
    if "faults" in s:
        lines.append(f"  {'faults':<{width}}{fault_counts(s['faults'])}")
    if "recording" in s:
        lines.append(f"  {'recording':<{width}}{recording_line(s['recording'])}")
    return "\n".join(lines)
