"""Overload as a state: the loop cannot hold the camera rate when it drops frames or its stages outlast the frame budget.

Pure logic, fed once per processed frame by the main loop with the frames
dropped since the previous one and the time each stage took (booked time:
measured live, modelled in deterministic ``--fast`` runs, so the verdict of a
``--fast`` run is as reproducible as its sorting figures). The window counts
camera frames (processed plus dropped), not wall time.

Overloaded when, over the window, more than ``drop_share_limit`` of the frames
were dropped, or the stage medians add up to more than the frame budget; clear
again once the dropped share falls below half the limit and the stages fit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class OverloadVerdict:
    """One evaluation of the window."""

    overloaded: bool
    drop_share: float
    stage_p50_ms: Mapping[str, float]
    budget_ms: float

    @property
    def total_p50_ms(self) -> float:
        return float(sum(self.stage_p50_ms.values()))

    def reason(self) -> str:
        """E.g. ``overloaded (detect 45.0 ms p50 > 16.7 ms budget, 63 % of frames dropped)``."""
        return f"overloaded ({self.cause()})"

    def cause(self) -> str:
        """E.g. ``detect 45.0 ms p50 > 16.7 ms budget, 63 % of frames dropped``."""
        dropped = f"{100 * self.drop_share:.0f} % of frames dropped"
        if not self.stage_p50_ms:
            return dropped
        stage = max(self.stage_p50_ms, key=lambda k: self.stage_p50_ms[k])
        worst = self.stage_p50_ms[stage]
        if worst > self.budget_ms:
            cause = f"{stage} {worst:.1f} ms p50 > {self.budget_ms:.1f} ms budget"
        elif self.total_p50_ms > self.budget_ms:
            cause = f"stages {self.total_p50_ms:.1f} ms p50 ({stage} {worst:.1f}) > {self.budget_ms:.1f} ms budget"
        else:
            cause = f"stages {self.total_p50_ms:.1f} ms p50 within the {self.budget_ms:.1f} ms budget"
        return f"{cause}, {dropped}"


class OverloadMonitor:
    """Judges, frame by frame, whether the loop holds the camera rate.

    Args:
        fps: camera rate (the frame budget is ``1000 / fps`` ms).
        window_s: how much camera time the verdict covers.
        drop_share_limit: dropped share of the window's frames above which the loop is overloaded.
    """

    def __init__(self, fps: float, window_s: float, drop_share_limit: float) -> None:
        self.budget_ms = 1000.0 / fps
        self.fps = fps
        self.window_frames = max(10, round(fps * window_s))
        self.drop_share_limit = drop_share_limit
        self._cycles: deque[tuple[int, Mapping[str, float]]] = deque()
        self._offered = 0  # frames in the window: processed + dropped
        self._dropped = 0
        self._every = max(1, self.window_frames // 8)
        self._since_eval = 0
        self._dropped_seen = 0
        self.verdict: OverloadVerdict | None = None
        self.episodes = 0
        self.frames_overloaded = 0  # camera frames offered while overloaded
        self.worst: OverloadVerdict | None = None

    @property
    def overloaded(self) -> bool:
        return self.verdict is not None and self.verdict.overloaded

    def reason(self) -> str | None:
        """The degraded reason while overloaded, else None."""
        return self.verdict.reason() if self.verdict is not None and self.verdict.overloaded else None

    def cause(self) -> str | None:
        """What overloads the loop (the reason without the word ``overloaded``), else None."""
        return self.verdict.cause() if self.verdict is not None and self.verdict.overloaded else None

    def on_frame(self, dropped_total: int, stage_ms: Mapping[str, float]) -> bool:
        """One processed frame, ``dropped_total`` frames dropped so far in the run; True when the state changed."""
        dropped = max(0, dropped_total - self._dropped_seen)
        self._dropped_seen = max(self._dropped_seen, dropped_total)
        if self.overloaded:
            self.frames_overloaded += 1 + dropped
        self._cycles.append((dropped, dict(stage_ms)))
        self._offered += 1 + dropped
        self._dropped += dropped
        while len(self._cycles) > 1 and self._offered - (1 + self._cycles[0][0]) >= self.window_frames:
            old, _ = self._cycles.popleft()
            self._offered -= 1 + old
            self._dropped -= old
        self._since_eval += 1
        if self._offered < self.window_frames or self._since_eval < self._every:
            return False
        self._since_eval = 0
        return self._evaluate()

    def _evaluate(self) -> bool:
        stages: dict[str, list[float]] = {}
        for _, st in self._cycles:
            for k, v in st.items():
                stages.setdefault(k, []).append(v)
        p50 = {k: round(float(np.median(v)), 3) for k, v in stages.items()}
        share = self._dropped / self._offered
        was = self.overloaded
        over_budget = sum(p50.values()) > self.budget_ms
        if was:
            now = over_budget or share >= self.drop_share_limit / 2
        else:
            now = over_budget or share > self.drop_share_limit
        self.verdict = OverloadVerdict(now, round(share, 4), p50, self.budget_ms)
        if now and not was:
            self.episodes += 1
        if now and (self.worst is None or share > self.worst.drop_share):
            self.worst = self.verdict
        return now != was

    def summary(self) -> dict[str, object]:
        """For the end-of-run summary: episodes, camera time spent overloaded, the worst window's reason."""
        return {
            "overloaded": self.episodes > 0,
            "episodes": self.episodes,
            "overloaded_s": round(self.frames_overloaded / self.fps, 3),
            "worst": self.worst.reason() if self.worst is not None else None,
            "budget_ms": round(self.budget_ms, 3),
        }
