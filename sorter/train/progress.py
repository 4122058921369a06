"""A dependency-free progress bar on stderr (a plain log line per 10 % when not a terminal)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class Progress:
    """``with Progress(total, "epoch 3") as bar: bar.update(1, loss=0.3)``."""

    def __init__(self, total: int, desc: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = max(1, total)
        self.desc = desc
        self.n = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0 = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1
        self._postfix = ""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def update(self, n: int = 1, **postfix: float) -> None:
        """Advance by ``n`` steps; ``postfix`` values are shown after the bar."""
        self.n += n
        if postfix:
            self._postfix = " ".join(f"{k}={v:.4g}" for k, v in postfix.items())
        if not self.enabled:
            return
        now = time.monotonic()
        if self._tty:
            if now - self._last_draw > 0.2 or self.n >= self.total:
                self._draw(now, "\r")
        else:
            decile = min(10, 10 * self.n // self.total)
            if decile != self._last_decile:
                self._last_decile = decile
                self._draw(now, "", "\n")

    def _draw(self, now: float, prefix: str, end: str = "") -> None:
        self._last_draw = now
        frac = min(1.0, self.n / self.total)
        el = now - self._t0
        eta = el / frac - el if frac > 0 else 0.0
        bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
        self.stream.write(f"{prefix}{self.desc} [{bar}] {self.n}/{self.total} {el:.0f}s<{eta:.0f}s {self._postfix}{end}")
        self.stream.flush()

    def close(self) -> None:
        """Finish the line."""
        if self.enabled and self._tty:
            self._draw(time.monotonic(), "\r", "\n")
