"""Worker processes as the database names them, and whether one still runs on this machine.

A run leases jobs as ``"{host}:{pid}:run{run_id}"`` and its run row names its worker
``"{host}:{pid}"`` (rows written before pids were recorded hold the host name only). A name
that does not parse (a batch's ``batch:17``, an old row, a hand-written owner) is never
judged.

A host name does not name a process table: containers on the host network share one host
name, each with its own pids. So a run row also stores ``host_id()``, the boot id of the
kernel and the inode of the process's pid namespace: a pid is checked only by a process with
the same ``host_id``. Any other run is judged by its heartbeat in the database (``leases``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_OWNER = re.compile(r"(?P<host>[^:]+):(?P<pid>[1-9][0-9]{0,9}):run(?P<run_id>[0-9]{1,18})")
_WORKER = re.compile(r"(?P<host>[^:]+):(?P<pid>[1-9][0-9]{0,9})")


@dataclass(frozen=True)
class Worker:
    """A worker process: its host, its pid, and the run it leased jobs for (if known)."""

    host: str
    pid: int
    run_id: int | None = None

    @property
    def name(self) -> str:
        """``host:pid``, as a run row's ``worker`` column holds it."""
        return f"{self.host}:{self.pid}"


def parse_owner(owner: str | None) -> Worker | None:
    """The worker of a lease owner ``host:pid:runN``; None for any other name."""
    match = _OWNER.fullmatch(owner or "")
    if match is None:
        return None
    return Worker(match["host"], int(match["pid"]), int(match["run_id"]))


def parse_worker(worker: str | None) -> Worker | None:
    """The worker of a run row's ``host:pid``; None for a bare host name (older rows)."""
    match = _WORKER.fullmatch(worker or "")
    if match is None:
        return None
    return Worker(match["host"], int(match["pid"]))


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (signal 0 checks, sends nothing).

    A process owned by another user answers with ``PermissionError``: it exists.
    """
    if pid <= 0:
        return False  # 0 and negatives name process groups, never one worker
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False  # beyond any pid the kernel hands out
    return True


def owner_alive(
    owner: str | None, *, host: str, is_alive: Callable[[int], bool] = pid_alive
) -> bool | None:
    """Whether the process holding a lease runs: checked on ``host`` only, else None (unknown)."""
    worker = parse_owner(owner)
    if worker is None or worker.host != host:
        return None
    return is_alive(worker.pid)


@functools.cache
def host_id() -> str:
    """Where this process's pids mean something: kernel boot id and pid-namespace inode.

    Two processes with the same ``host_id`` see the same pids, so one can check the other with
    ``pid_alive``; containers sharing a host name (and even the kernel) get different ids.
    Without /proc (not Linux) it falls back to the host name. 16 hex digits.
    """
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        pass
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
