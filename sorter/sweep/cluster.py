"""Ray, when asked for: a local instance or a cluster by address, and tasks whose results come back in order.

Ray is the optional ``ray`` extra; nothing imports it until a command asks for it (``--address``, or
``sorter sweep`` without ``--sequential``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sorter.errors import SorterError

__all__ = ["RayMissingError", "connect", "import_ray", "map_in_order"]


class RayMissingError(SorterError):
    """Ray is asked for but not installed."""


def import_ray() -> Any:
    """Ray, or a clear error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayMissingError(
            "Ray is not installed; install the extra: pip install -e '.[ray]' (or pip install 'ray[client]'), "
            "or run without Ray: sorter sweep --sequential"
        ) from None
    return ray


def connect(address: str | None, num_cpus: int | None) -> bool:
    """Start a local Ray instance (``address`` None), or join a cluster. Returns whether this call started Ray.

    A local instance (``address`` None or ``local``) gets ``num_cpus`` CPUs (default: all of this machine's), no
    dashboard, and its workers run this interpreter with this checkout importable. Otherwise ``address`` is
    ``auto``, ``host:port`` of a head, or ``ray://host:port`` (Ray Client).
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    address = None if address == "local" else address
    project_root = str(Path(__file__).resolve().parents[2])
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [project_root, os.environ.get("PYTHONPATH", "")]))}}
    try:
        if address is None:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     configure_logging=False, runtime_env=env)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = "a local Ray instance" if address is None else f"the Ray cluster at '{address}'"
        raise SorterError(f"cannot start or reach {where}: {e}; check --address (auto, host:port or ray://host:port)") from None
    return True


def map_in_order(fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], address: str | None = None,
                 num_cpus: int | None = None, on_done: Callable[[int, Any], None] | None = None) -> list[Any]:
    """Run ``fn(*args)`` for each args of ``calls`` as Ray tasks (one CPU each); results in the order of ``calls``.

    ``fn`` must be a module-level function (workers import it). ``on_done(position, result)`` is called as each
    task finishes. Starts Ray (and shuts it down after) unless this process is already connected.
    """
    ray = import_ray()
    started = connect(address, num_cpus)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(fn)
        pending = {remote.remote(*args): n for n, args in enumerate(calls)}
        results: dict[int, Any] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                n = pending.pop(ref)
                try:
                    results[n] = ray.get(ref)
                except Exception as e:  # the worker died or the task raised
                    results[n] = e
                if on_done is not None:
                    on_done(n, results[n])
        return [results[n] for n in range(len(calls))]
    finally:
        if started:
            ray.shutdown()
