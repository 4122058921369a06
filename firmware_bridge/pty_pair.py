"""A connected pair of pseudo-terminals made by ``socat``: a serial cable in software.

Each end gets a stable path (a symlink in ``link_dir``), so stopping and
restarting the pair is "unplugging and replugging" the port: the paths vanish
and come back, as a USB serial adapter's would.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path


class PtyPairError(RuntimeError):
    """socat is missing or did not create the pseudo-terminals."""


class PtyPair:
    """Two linked pseudo-terminals (``host_path`` <-> ``device_path``).

    Args:
        link_dir: where the two symlinks live; a temporary directory when None.
    """

    def __init__(self, link_dir: str | Path | None = None) -> None:
        self._own_dir = link_dir is None
        self.link_dir = Path(tempfile.mkdtemp(prefix="sorter-pty-")) if link_dir is None else Path(link_dir)
        self.host_path = str(self.link_dir / "host")
        self.device_path = str(self.link_dir / "device")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of socat while it runs (to watch or set its scheduling priority)."""
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self, timeout_s: float = 5.0) -> PtyPair:
        """Start socat and wait until both ends exist.

        Raises:
            PtyPairError: socat is not installed or failed to start.
        """
        socat = shutil.which("socat")
        if socat is None:
            raise PtyPairError("socat is not installed; install it (e.g. 'apt-get install socat') to emulate a serial port")
        self.link_dir.mkdir(parents=True, exist_ok=True)
        for p in (self.host_path, self.device_path):
            Path(p).unlink(missing_ok=True)
        log_path = self.link_dir / "socat.log"
        with open(log_path, "wb") as log_file:  # socat -d -d notices; a file never blocks it like a full pipe would
            self._proc = subprocess.Popen(
                [socat, "-d", "-d", f"pty,raw,echo=0,link={self.host_path}", f"pty,raw,echo=0,link={self.device_path}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if Path(self.host_path).exists() and Path(self.device_path).exists():
                return self
            if self._proc.poll() is not None:
                err = log_path.read_text(errors="replace")
                raise PtyPairError(f"socat exited with code {self._proc.returncode}: {err.strip()}")
            time.sleep(0.005)
        self.stop()
        raise PtyPairError(f"socat did not create {self.host_path} and {self.device_path} within {timeout_s} s")

    def stop(self) -> None:
        """Tear the pair down (both ends disappear)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=2.0)
            self._proc = None
        for p in (self.host_path, self.device_path):
            Path(p).unlink(missing_ok=True)

    def close(self) -> None:
        """Stop and remove the temporary directory (if this object made it)."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.link_dir, ignore_errors=True)

    def __enter__(self) -> PtyPair:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
