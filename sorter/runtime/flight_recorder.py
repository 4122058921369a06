"""Flight recorder: the last N cycles of the loop, kept in memory and dumped to a file when a fault is raised.

A technician looking at "degraded: camera ..." wants to know what the line was
doing just before: frame stamps and gaps, detections, tracks, commands, belt
speed. Recording a cycle is a few attribute reads into a bounded deque; the
dump (JSON, one file per fault) runs on its own thread.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sorter.errors import SorterError

if TYPE_CHECKING:
    from sorter.runtime.pipeline import CycleResult

log = logging.getLogger(__name__)


class FlightRecorder:
    """Keeps the last ``capacity`` cycles; :meth:`dump` writes them with the fault's reason into ``out_dir``.

    Raises:
        SorterError: ``out_dir`` cannot be created or written (checked at start-up, not at the first fault).
    """

    def __init__(self, out_dir: str | Path, capacity: int = 600) -> None:
        self.dir = Path(out_dir)
        self._cycles: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.dumps = 0
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.dir, prefix=".write-test-"):
                pass
        except OSError as e:
            raise SorterError(
                f"service.flight_recorder_dir {str(self.dir)!r} is not a writable folder ({e.strerror or e}); "
                "create it and give the service user write access, or set it to null"
            ) from e

    def record(self, result: CycleResult, t_done_ns: int) -> None:
        f = result.frame
        self._cycles.append(
            {
                "frame_index": f.frame_index,
                "t_capture_ns": f.t_capture_ns,
                "s_capture_mm": round(f.s_capture_mm, 3),
                "t_done_ns": t_done_ns,
                "detections": len(result.detections),
                "tracks": len(result.active),
                "retired": len(result.retired),
                "commands": [c.command_id for c in result.commands],
                "late_dropped": result.late_dropped,
                "speed_mm_s": round(result.speed_mm_s, 1),
            }
        )

    def dump(self, kind: str, reason: str) -> threading.Thread:
        """Write the recorded cycles to ``out_dir/flight-<UTC time>-<kind>.json`` from a background thread."""
        cycles = list(self._cycles)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        safe_kind = "".join(ch if ch.isalnum() else "-" for ch in kind)
        path = self.dir / f"flight-{stamp}-{safe_kind}-{self.dumps}.json"
        self.dumps += 1

        def write() -> None:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"fault": kind, "reason": reason, "cycles": cycles}) + "\n", encoding="utf-8")
                tmp.replace(path)
                log.warning("flight recorder: last %d cycles before '%s' written to %s", len(cycles), kind, path)
            except OSError as e:
                log.error("flight recorder: cannot write %s: %s", path, e)

        t = threading.Thread(target=write, name="flight-dump", daemon=True)
        t.start()
        return t
