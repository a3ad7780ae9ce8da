"""A local journal of results paid for but not yet recorded: nothing paid is ever lost.

Between the API's answer and the database commit there is a window: a crash (kill -9) or a
database outage there loses a result the provider has billed, and a later run would pay for
it again or, served from the response cache, record it at $0 (the ledger would no longer
equal the bill). So every billed result is appended to this journal (one JSON line, flushed to
the operating system: it survives the process, not a power cut) before it is recorded, and
marked done after the commit. The next run on this machine drains what a dead run left:
each pending result is recorded with its real usage and cost (``db.jobs.recover``).

One file per run owner (``host:pid:runN``) in the journal folder; a file is drained only when
its process is gone, and deleted once every entry in it is done.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("contentgen.journal")

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def file_name(owner: str) -> str:
    """The journal file of ``owner`` (its characters made safe for a file name)."""
    return _UNSAFE.sub("_", owner) + ".jsonl"


@dataclass(frozen=True)
class Pending:
    """A result a dead run paid for and never recorded, with the file it came from."""

    path: Path
    entry: dict[str, Any]


class Journal:
    """The append-only journal of one run (see the module docstring)."""

    def __init__(self, directory: Path, owner: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / file_name(owner)
        self.owner = owner
        self._fh: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._open = 0

    def write(self, record: dict[str, Any]) -> str:
        """Append a paid result before it is recorded; returns its entry id."""
        entry_id = uuid.uuid4().hex
        self._append({"id": entry_id, "owner": self.owner, **record})
        self._open += 1
        return entry_id

    def done(self, entry_id: str) -> None:
        """The result ``entry_id`` is in the database."""
        self._append({"done": entry_id})
        self._open -= 1

    def _append(self, data: dict[str, Any]) -> None:
        if self._fh is None:
            raise RuntimeError("journal is closed")
        self._fh.write(json.dumps(data, separators=(",", ":"), default=str) + "\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file; delete it when every entry is done (nothing left to drain)."""
        if self._fh is None:
            return
        self._fh.close()
        self._fh = None
        if self._open == 0:
            self.path.unlink(missing_ok=True)


def read_pending(path: Path) -> list[dict[str, Any]]:
    """The entries of one journal file that were never marked done (unreadable lines skipped:
    a crash can cut the last line short)."""
    entries: dict[str, dict[str, Any]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            data = json.loads(line)
        except ValueError:
            log.warning("%s: skipping a damaged line", path)
            continue
        if not isinstance(data, dict):
            continue
        if "done" in data:
            entries.pop(str(data["done"]), None)
        elif "id" in data:
            entries[str(data["id"])] = data
    return list(entries.values())


def file_pid(path: Path, host: str) -> int | None:
    """The pid in a journal file's name when it belongs to ``host`` (None otherwise)."""
    parts = path.name.removesuffix(".jsonl").rsplit("_", 2)
    if len(parts) != 3 or parts[0] != _UNSAFE.sub("_", host) or not parts[1].isdigit():
        return None
    return int(parts[1])


def dead_files(
    directory: Path, *, host: str, is_alive: Callable[[int], bool]
) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """Journal files of this host's dead runs, with their pending entries (maybe none)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.jsonl")):
        pid = file_pid(path, host)
        if pid is None or pid == os.getpid() or is_alive(pid):
            continue
        yield path, read_pending(path)


_SKIPPED = ("id", "created_at")


def generation_record(generation: Any) -> dict[str, Any]:
    """A generation row's columns as JSON-ready values (money as decimal strings)."""
    table = generation.__table__
    return {
        c.key: getattr(generation, c.key)
        for c in table.columns
        if c.key not in _SKIPPED and getattr(generation, c.key) is not None
    }


def journal_dir(base: Path | None, database_url: str) -> Path:
    """The journal folder of a database: ``base`` (default: the user's state folder,
    ``$XDG_STATE_HOME/contentgen/journal``) plus a hash of the database URL, so a journal is
    only ever drained into the database its results belong to."""
    if base is None:
        state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        base = Path(state) / "contentgen" / "journal"
    return base / hashlib.sha256(database_url.encode()).hexdigest()[:16]
