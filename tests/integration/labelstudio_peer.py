"""A real Label Studio server for the tests: started on loopback from its own environment, migrated once.

Label Studio lives in ``.venv-labelstudio`` at the root of the checkout (``python3 -m venv .venv-labelstudio &&
.venv-labelstudio/bin/pip install label-studio==1.23.2``) or is the ``label-studio`` program named by
``SORTER_LABEL_STUDIO``. Its first start migrates a database (minutes); :func:`prepare_template` does that once into
``.venv-labelstudio/sorter-test-data`` with the tests' user and token, and every test run starts from a copy.
``python3 tests/integration/labelstudio_peer.py`` prepares it ahead of the tests (``.ci/run`` does, beside the
install of the main environment).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "0123456789abcdef0123456789abcdef01234567"
USER, PASSWORD = "sorter@example.com", "sorter-test-password"


def find_program() -> Path | None:
    named = os.environ.get("SORTER_LABEL_STUDIO")
    p = Path(named) if named else ROOT / ".venv-labelstudio" / "bin" / "label-studio"
    return p if p.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(program: Path, data: Path, port: int, first: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LOCAL_FILES_SERVING_ENABLED": "true",
        "LOCAL_FILES_DOCUMENT_ROOT": "/",
        "DJANGO_DB": "sqlite",
    }
    cmd = [
        str(program),
        "start",
        "--no-browser",
        "--host",
        "127.0.0.1",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data),
    ]
    if first:
        cmd += ["--username", USER, "--password", PASSWORD, "--user-token", TOKEN]
    log = (data.parent / f"{data.name}.log").open("wb")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_up(proc: subprocess.Popen[bytes], port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Label Studio exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1.0)
    raise TimeoutError(f"Label Studio did not answer on port {port} within {timeout_s:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def prepare_template(program: Path) -> Path:
    """The migrated data folder every test run copies (made on the first call, in a temporary folder renamed at the end)."""
    template = program.parent.parent / "sorter-test-data"
    if not (template / "label_studio.sqlite3").exists():  # migrate once, with our user and token
        tmp = template.with_name("sorter-test-data.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        port = free_port()
        proc = start(program, tmp, port, first=True)
        try:
            wait_up(proc, port, 1200)
        finally:
            stop(proc)
        tmp.rename(template)
    return template


if __name__ == "__main__":
    found = find_program()
    if found is None:
        print("Label Studio is not installed: nothing to prepare", file=sys.stderr)
        raise SystemExit(1)
    print(f"Label Studio test data ready in {prepare_template(found)}")
