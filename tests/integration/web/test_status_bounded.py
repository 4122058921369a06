"""`/status` and the console's data stay small however long the line runs: ten minutes of belt (simulated clock)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from webtools import request

from sorter.config import load_config
from sorter.runtime.line import build_line
from sorter.runtime.loops import run_line
from sorter.runtime.service_setup import start_service


@pytest.mark.timeout(900)
def test_status_stays_under_20_kb_after_ten_minutes() -> None:
    # 15 frames per second keep ten minutes of belt to a couple of minutes of CPU; the shots are as many as at 60
    cfg = load_config(None, ["detector.type=oracle", "sim.density_per_m2=3", "camera.fps=15", "service.http_port=0"])
    line = build_line(cfg, fast=True)
    service, server = start_service(line, None)
    assert server is not None
    stop = threading.Event()
    summary: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: summary.update(run_line(line, 600.0, True, stop)), name="line")
    sizes: list[int] = []
    runner.start()
    try:
        while runner.is_alive():
            code, _h, body = request(server.port, "/status")
            assert code == 200
            sizes.append(len(body))
            runner.join(0.5)
        server.publish_snapshot()  # the state at the end of the ten minutes
        code, _h, body = request(server.port, "/status")
        status = json.loads(body)
        code_c, _h, console = request(server.port, "/api/console")
    finally:
        stop.set()
        runner.join(30)
        server.close()
    assert summary["sim_duration_s"] == 600.0
    n_errors = status["score"]["fire_position_errors_mm_n"]
    assert n_errors > 1000  # as the full list of old, these alone would be over 20 kB of JSON
    assert len(body) <= 20_000 and max(sizes) <= 20_000, (len(body), max(sizes))
    assert len(status["score"]["fire_position_errors_mm_recent"]) == 20
    assert code_c == 200 and len(console) <= 100_000
    assert status["uptime_s"] > 0 and service.fault_log.recent() == status["faults_recent"]
