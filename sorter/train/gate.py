"""The promotion gate: may a candidate model replace the current one? Pure.

A candidate is refused when

* on the plant's held-out set it is worse than the current model *beyond* the bootstrap interval (the whole
  95 % interval of ``candidate - current`` mAP@0.5 lies below zero);
* on the rendered held-out set its mAP@0.5 is lower than the current model's by more than ``max_rendered_drop``
  (0.02): the plant data must not make it forget the classes this belt has not shown yet;
* a required replay A/B on recorded footage failed for the candidate, or (where the replay knows the truth)
  lost recovery or purity beyond ``max_replay_drop``.

A first model (nothing current) has nothing to be compared with and passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_RENDERED_DROP = 0.02
MAX_REPLAY_DROP = 0.01


@dataclass
class GateVerdict:
    """The decision and the checks behind it (JSON-ready through :meth:`to_dict`)."""

    passed: bool = True
    reasons: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, reason: str) -> None:
        self.passed = False
        self.reasons.append(reason)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "checks": self.checks}


def judge(
    plant: dict[str, Any] | None,
    rendered: tuple[float, float] | None,
    replay: tuple[dict[str, Any] | None, dict[str, Any] | None] | None = None,
    max_rendered_drop: float = MAX_RENDERED_DROP,
    max_replay_drop: float = MAX_REPLAY_DROP,
) -> GateVerdict:
    """Apply the rules.

    Args:
        plant: :func:`sorter.train.honest.compare_images` of current (A) vs candidate (B) on the plant set, or None.
        rendered: ``(current, candidate)`` mAP@0.5 on the rendered held-out set, or None.
        replay: ``(current, candidate)`` replay summaries (None for a replay that failed), or None when not required.
    """
    v = GateVerdict()
    if plant is not None:
        m = plant["all"]["map50"]
        lo, hi = m["diff"]["ci95"] or (None, None)
        v.checks.append(
            {
                "check": "plant held-out mAP@0.5",
                "current": m["a"],
                "candidate": m["b"],
                "diff": m["diff"]["value"],
                "ci95": m["diff"]["ci95"],
                "images": plant["num_images"],
            }
        )
        if hi is not None and hi < 0:
            v.refuse(
                f"worse than the current model on the plant held-out set: mAP@0.5 {m['b']:.3f} vs {m['a']:.3f}, "
                f"difference {m['diff']['value']:+.3f} with 95 % interval [{lo:+.3f}, {hi:+.3f}] below zero"
            )
    if rendered is not None:
        cur, cand = rendered
        v.checks.append(
            {
                "check": "rendered held-out mAP@0.5",
                "current": round(cur, 4),
                "candidate": round(cand, 4),
                "max_drop": max_rendered_drop,
            }
        )
        if cand < cur - max_rendered_drop:
            v.refuse(
                f"rendered held-out mAP@0.5 falls from {cur:.4f} to {cand:.4f} (more than {max_rendered_drop}): "
                "mix more rendered frames into the fine-tune (--real-share) so unlabelled classes are not forgotten"
            )
    if replay is not None:
        cur_s, cand_s = replay
        check: dict[str, Any] = {"check": "replay A/B"}
        if cand_s is None:
            v.refuse("the candidate's replay of the recording failed; see its log")
        elif cur_s is not None:
            for key in ("recovery", "purity"):
                a, b = cur_s.get(key), cand_s.get(key)
                check[key] = [a, b]
                if isinstance(a, int | float) and isinstance(b, int | float) and b < a - max_replay_drop:
                    v.refuse(f"replay {key} falls from {a:.3f} to {b:.3f} (more than {max_replay_drop})")
            for key in ("frames", "objects_seen", "targets_ejected", "commands_sent"):
                check[key] = [cur_s.get(key), cand_s.get(key)]
            if (
                isinstance(cur_s.get("frames"), int)
                and isinstance(cand_s.get("frames"), int)
                and cand_s["frames"] < cur_s["frames"]
            ):
                v.refuse(
                    f"the candidate processed {cand_s['frames']} frames of the recording, the current model {cur_s['frames']}"
                )
        v.checks.append(check)
    return v
