"""`sorter check` runs the start-up checks against the real things: model, controller link, event store, HTTP port."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sorter.cli import main as cli_main


def test_default_line_passes_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.count("  PASS  ") == 7
    assert "onnxruntime" in out  # the shipped model really loaded


def test_failures_are_named_with_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("not a folder\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        rc = cli_main([
            "check", "--config", "sim-airjet-serial.yaml", "--timeout", "1",
            "--set", "actuator.emulator=false", "--set", f"actuator.serial.url={tmp_path / 'ttyNOPE'}",
            "--set", f"analytics.store={tmp_path / 'missing' / 'events.db'}",
            "--set", f"service.http_port={port}",
            "--set", f"service.flight_recorder_dir={tmp_path / 'a-file' / 'flight'}",
        ])
    assert rc == 2
    cap = capsys.readouterr()
    fails = {ln.split()[1] for ln in cap.out.splitlines() if ln.startswith("  FAIL")}
    assert fails == {"controller", "event", "http", "flight"}
    assert "ttyNOPE" in cap.out and "mkdir -p" in cap.out and f"service.http_port {port}" in cap.out
    assert "flight_recorder_dir" in cap.out and "not a writable folder" in cap.out
    assert "NOT READY" in cap.err
    assert not (tmp_path / "missing").exists()


def test_config_only_opens_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(["check", "--config-only", "--set", f"analytics.store={tmp_path / 'missing' / 'e.db'}"])
    assert rc == 0 and "Start-up checks" not in capsys.readouterr().out
