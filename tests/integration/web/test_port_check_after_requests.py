"""`sorter check` right after the service stopped: the port's connections linger in TIME_WAIT for about a minute, and
the check binds the port the way the server does (address reuse), so it passes at once instead of failing."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from webtools import ROOT, Running

TIME_WAIT = "06"


def _time_wait_on(port: int) -> int:
    """Connections in TIME_WAIT whose local port is ``port`` (from /proc/net/tcp and tcp6)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == TIME_WAIT and int(cols[1].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


def test_check_passes_the_port_right_after_the_service_stopped(start_line: Callable[..., Running], tmp_path: Path) -> None:
    run = start_line()
    for path in ("/metrics", "/status", "/healthz"):  # a scrape; the server closes first, so the wait is on its side
        with socket.create_connection(("127.0.0.1", run.port), timeout=30) as conn:
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := conn.recv(65536):  # read to the end: the server closes, then we do
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
    assert run.stop() == 0
    assert _time_wait_on(run.port) >= 1  # the situation that used to fail the check for about 60 s
    with socket.socket() as plain:  # what a bind without address reuse meets
        try:
            plain.bind(("127.0.0.1", run.port))
            plain_failed = False
        except OSError as e:
            plain_failed = e.errno == errno.EADDRINUSE
    assert plain_failed
    r = subprocess.run(
        [sys.executable, "-m", "sorter.cli", "check", "--set", "detector.type=oracle", "--set", f"service.http_port={run.port}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    line = next(ln for ln in r.stdout.splitlines() if "http port" in ln)
    assert line.lstrip().startswith("PASS") and f"127.0.0.1:{run.port} free" in line, r.stdout
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_still_fails_a_port_another_process_listens_on() -> None:
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # even a listener that allows reuse keeps its port
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "sorter.cli", "check", "--set", "detector.type=oracle", "--set", f"service.http_port={port}"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
    line = next(ln for ln in r.stdout.splitlines() if "http port" in ln)
    assert line.lstrip().startswith("FAIL") and "already in use" in line
    assert r.returncode == 2


def test_check_fails_a_guarded_view_without_a_token() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "sorter.cli", "check", "--set", "detector.type=oracle", "--set", "service.http_port=0",
         "--set", "service.http_host=0.0.0.0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if k != "SORTER_TOKEN"},
    )
    line = next(ln for ln in r.stdout.splitlines() if "http port" in ln)
    assert line.lstrip().startswith("FAIL") and "service.token" in line and "token_for_view" in line, r.stdout
