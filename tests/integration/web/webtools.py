"""Helpers of the HTTP and console tests: a `sorter run` subprocess with the endpoint on a free loopback port.

A plain module (not conftest.py, which is the name of the integration tests' own fixtures one level up).
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "t0ken-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None,
            body: bytes | None = None, timeout_s: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection: ``(status, headers with lower-case names, body)``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def wait_for(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        try:
            if pred():
                return
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Running:
    """A `sorter run` subprocess serving HTTP on ``port``."""

    proc: subprocess.Popen[str]
    port: int
    summary: Path
    stderr: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def status(self) -> dict[str, Any]:
        code, _h, body = request(self.port, "/status")
        assert code == 200, body
        out: dict[str, Any] = json.loads(body)
        return out

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait, keep stderr; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _out, self.stderr = self.proc.communicate(timeout=timeout_s)
        return int(self.proc.returncode)


def write_config(path: Path, port: int, service: dict[str, Any] | None = None, **sections: Any) -> Path:
    cfg: dict[str, Any] = {
        "detector": {"type": "oracle"},
        "policy": {"targets": ["pet_bottle", "hdpe_container"]},
        "sim": {"density_per_m2": 3.0},
        "service": {"http_port": port, "token": TOKEN, **(service or {})},
        **sections,
    }
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.fixture
def start_line(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start `sorter run` with a config (see :func:`write_config`); every started line is killed at the end."""
    started: list[Running] = []

    def start(service: dict[str, Any] | None = None, args: tuple[str, ...] = (), **sections: Any) -> Running:
        port = free_port()
        cfg = write_config(tmp_path / f"line-{port}.yaml", port, service, **sections)
        summary = tmp_path / f"summary-{port}.json"
        proc = subprocess.Popen(
            # states asserted by these tests do not depend on the machine's load: an overloaded loop is logged only
            [sys.executable, "-m", "sorter.cli", "run", "--quiet", "--config", str(cfg), "--summary", str(summary),
             "--set", "runtime.overload_degrades=false", *args],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        run = Running(proc, port, summary)
        started.append(run)
        wait_for(lambda: request(port, "/healthz")[0] == 200, 60.0, "/healthz 200")
        return run

    yield start
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.communicate()
