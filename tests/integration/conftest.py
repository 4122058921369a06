"""Shared fixtures of the integration tests: a real, throwaway PostgreSQL server; a Ray head on loopback."""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Ray reads its authentication settings once per process, at its first use: the Ray tests run with token
# authentication and a throwaway token (never the user's ~/.ray/auth_token), set before any test can touch Ray.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))


def _pg_bin() -> Path | None:
    """The directory of PostgreSQL's server programs (initdb, pg_ctl), or None when no server is installed."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    return Path(dirs[-1]) if dirs and Path(dirs[-1], "pg_ctl").exists() else None


@dataclass
class PgServer:
    """A PostgreSQL cluster in a temporary directory, on a free loopback port, with a superuser ``sorter`` (trust auth)."""

    bindir: Path
    datadir: Path
    port: int
    as_user: list[str]

    def url(self, user: str = "sorter", dbname: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args],
                       check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40"
        self._ctl("-o", opts, "-l", str(self.datadir / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        out = subprocess.run([str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                              "-d", self.url(dbname=dbname), "-c", sql], check=True, capture_output=True, text=True, timeout=30)
        return out.stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server for the session (the server packages: apt-get install postgresql; .ci/run installs them)."""
    pytest.importorskip("psycopg", reason="the PostgreSQL store tests need psycopg (pip install -e '.[dev]')")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server programs (apt-get install postgresql)")
    # not under pytest's tmp folders: those are private to this user, and the server runs as another one when we are root
    root = Path(tempfile.mkdtemp(prefix="sorter-pg-"))
    datadir = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run the server as the packaged 'postgres' user
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
        as_user = [runuser, "-u", "postgres", "--"]
        datadir.mkdir(mode=0o700)
        shutil.chown(datadir, "postgres", "postgres")
        os.chmod(root, 0o755)
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(datadir), "-U", "sorter", "--auth=trust", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True, timeout=120)
    server = PgServer(bindir, datadir, _free_port(), as_user)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped by a test
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer, request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty database on the session's server (one per test)."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    pg_server.psql(f"DROP DATABASE IF EXISTS {name}")
    pg_server.psql(f"CREATE DATABASE {name}")
    return pg_server.url(dbname=name)


@pytest.fixture(scope="module")
def ray_token() -> str:
    """The throwaway token of the test session (set above, before anything touches Ray, which keeps the first token
    it reads for the process), never the user's ~/.ray/auth_token."""
    assert os.environ.get("RAY_AUTH_MODE") == "token"
    return os.environ["RAY_AUTH_TOKEN"]


@pytest.fixture
def ray_head(ray_token: str) -> Iterator[str]:
    """A Ray head (2 CPUs) started on loopback with `ray start --head --block`, its process group ended after."""
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rayh")  # short: Ray's socket paths must fit in 107 bytes
    ray_bin = str(Path(sys.executable).with_name("ray"))
    cmd = [ray_bin, "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
           "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp]
    head = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"ray start --head did not listen on port {port} (exit code {head.poll()})")
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=15)
        except subprocess.TimeoutExpired:  # still draining: nothing of this throwaway head is worth waiting for
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)
