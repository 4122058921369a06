"""The live line loses its PLC mid-run and gets it back: a real pymodbus server taken off the network and restarted.

What a plant needs from this: the service says so (degraded, with the reason) and
recovers by itself; commands that came due while the PLC was away are dropped and
counted, never fired late; sorting resumes once the link is back.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

from sorter.commands.run import _complete_summary
from sorter.config import load_config
from sorter.runtime.line import build_line
from sorter.runtime.loops import run_line
from sorter.runtime.service_setup import start_service
from sorter.runtime.status import fault_panel
from sorter.runtime.summary_text import human_summary


def _status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
        out: dict[str, Any] = json.loads(r.read())
        return out


def _wait(port: int, pred: Any, timeout_s: float, what: str) -> dict[str, Any]:
    t_end = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < t_end:
        last = _status(port)
        if pred(last):
            return last
        time.sleep(0.02)
    raise AssertionError(f"{what} never happened; last status {last}")


def test_plc_lost_and_back_degrades_drops_late_commands_and_resumes() -> None:
    cfg = load_config("sim-airjet-modbus.yaml", ["service.http_port=0", "sim.density_per_m2=2", "sim.seed=3",
                                                   "runtime.overload_degrades=false"])
    line = build_line(cfg, fast=False)
    service, server = start_service(line, None)
    assert server is not None
    plc = line.actuator.emulator  # type: ignore[attr-defined]
    assert plc is not None
    summary: dict[str, Any] = {}
    stop = threading.Event()
    runner = threading.Thread(target=lambda: summary.update(run_line(line, 16.0, False, stop)), name="line")
    runner.start()
    try:
        _wait(server.port, lambda s: s["state"] == "running" and s["commands"]["executed"] >= 5, 15.0,
              "running with executed commands")
        t_lost = time.monotonic()
        plc.stop_server()  # the PLC drops off the network (its program keeps scanning; its watchdog closes the valves)
        st = _wait(server.port, lambda s: s["state"] == "degraded", 5.0, "degraded")
        assert "controller link down" in st["reason"]
        detect_s = time.monotonic() - t_lost
        time.sleep(max(0.0, 2.0 - (time.monotonic() - t_lost)))  # two seconds away: objects pass their valves meanwhile
        plc.server.start()  # back on the same port
        st = _wait(server.port, lambda s: s["state"] == "running", 10.0, "running again")
        assert st["reason"] == "" and st["faults"]["controller"] == 1
        executed_at_return = line.counters.commands_executed
        runner.join(30.0)
        assert not runner.is_alive()
    finally:
        stop.set()
        runner.join(10.0)
        server.close()
    assert detect_s < 2.0  # the health check runs once a second
    # the PLC's watchdog closed the valves while the host was away: the run counts that trip (the terminal's panel and
    # the summary show it), with the controller's outage and the reconnection
    faults = service.faults
    assert faults["controller"] == 1 and faults["watchdog_trips"] >= 1 and faults["link_reconnects"] >= 1
    panel = fault_panel(service.fault_book, time.time())
    assert panel[-1].startswith("faults since start: ") and "controller 1 (cleared " in panel[-1]
    assert f"watchdog trips {faults['watchdog_trips']} (last " in panel[-1]
    _complete_summary(summary, line, service, None, None)  # what `sorter run` adds before printing its summary
    assert summary["faults"]["watchdog_trips"] >= faults["watchdog_trips"]
    assert f"watchdog trips {summary['faults']['watchdog_trips']}" in human_summary(summary)
    a = summary["actuator"]
    assert a["reconnects"] >= 1 and a["link_late_local"] >= 1  # the link itself dropped what came due while down
    assert summary["commands_executed_late"] == 0  # nothing fired after its time
    assert summary["commands_late_dropped"] >= 1  # due while the PLC was away: dropped and counted
    assert summary["commands_executed"] > executed_at_return + 5  # sorting resumed after the link came back
    # every command ends in exactly one outcome; one in flight when the PLC dropped off may be lost, never unknown
    assert summary["commands_without_outcome"] == 0
    # late_sent, not late_dropped: a command the planner itself found late was never sent (a busy machine makes some)
    assert summary["commands_sent"] == (
        summary["commands_executed"] + summary["commands_late_sent"] + summary["commands_rejected"]
        + summary["commands_cancelled"] + summary["commands_lost"]
    )
