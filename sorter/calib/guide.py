"""Step-by-step guidance for people running a calibration on site.

Interactive: numbered steps, questions with defaults, a progress line, and a
clear PASS/FAIL verdict. Non-interactive (``--non-interactive``): the same
text, never a question (defaults are taken), for scripts and tests.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TextIO


class Guide:
    """Talks to the person running the calibration.

    Args:
        interactive: ask questions; otherwise take every default.
        out: where to write (stdout by default).
        ask: how to read an answer (``input`` by default; injected in tests).
    """

    def __init__(self, interactive: bool, out: TextIO | None = None, ask: Callable[[str], str] | None = None) -> None:
        self.interactive = interactive
        self.out = out or sys.stdout
        self._ask = ask or input

    def _print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def title(self, text: str) -> None:
        self._print(f"== {text} ==")

    def step(self, n: int, total: int, text: str) -> None:
        """Announce step ``n`` of ``total``."""
        self._print(f"Step {n}/{total}: {text}")

    def info(self, text: str) -> None:
        self._print(f"  {text}")

    def warn(self, text: str) -> None:
        self._print(f"  ! {text}")

    def progress(self, done: int, total: int, label: str) -> None:
        """One progress line, e.g. ``[ 7/15] views``."""
        width = len(str(total))
        self._print(f"  [{done:>{width}}/{total}] {label}")

    def wait(self, prompt: str) -> bool:
        """Wait for Enter (interactive); False if the person typed q to stop. Non-interactive: True."""
        if not self.interactive:
            return True
        try:
            answer = self._ask(f"  {prompt} [Enter = go, q = stop] ")
        except EOFError:
            return False
        return answer.strip().lower() not in ("q", "quit", "stop")

    def ask(self, prompt: str, default: str) -> str:
        """Ask with a default; non-interactive returns the default."""
        if not self.interactive:
            return default
        try:
            answer = self._ask(f"  {prompt} [{default}] ").strip()
        except EOFError:
            return default
        return answer or default

    def verdict(self, passed: bool, summary: Sequence[str], problems: Sequence[str], warnings: Sequence[str] = ()) -> None:
        """Print the result: PASS or FAIL, the numbers, what failed and what to do."""
        self._print("RESULT: PASS" if passed else "RESULT: FAIL")
        for line in summary:
            self.info(line)
        for w in warnings:
            self.warn(w)
        for p in problems:
            self._print(f"  FAIL: {p}")
