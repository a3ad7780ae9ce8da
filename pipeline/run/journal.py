"""A local journal of results paid for but not yet recorded: nothing paid is ever lost.

Between the API's answer and the database commit there is a window: a crash (kill -9) or a
database outage there loses a result the provider has billed, and a later run would pay for
it again or, served from the response cache, record it at $0 (the ledger would no longer
equal the bill). So every billed result is appended to this journal (one JSON line, flushed to
the operating system: it survives the process, not a power cut) before it is recorded, and
marked done after the commit. The next run on this machine drains what a dead run left:
each pending result is recorded with its real usage and cost (``db.jobs.recover``).

The journal also says which request a worker died on. Each attempt leaves small marks: ``s``
(about to send job N), ``a`` (its answer is arriving), ``e`` (the attempt ended), and a tick
``t`` written ``TICK_S`` after a send, proof that the worker outlived it. A dead run's file
then ``blames`` the jobs whose answer was being read when it died or, failing that, the jobs
sent after its last tick and not ended: a worker killed by one request (an answer that
exhausts its memory, a send that crashes it) names that request, while a worker killed at a
random moment names nothing, or several jobs (which are only suspected, see
``db.jobs.record_death``). Marks are a few bytes written on the event loop; no database
commit is on the send path.

One file per run owner (``host:pid:runN``, its first line) in the journal folder; a file is
drained only when its owner is dead (``dead_files``), and deleted once every entry is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline.settings import ledger_id

log = logging.getLogger("contentgen.journal")

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# A send with no tick after it happened at most this long before the worker died.
TICK_S = 0.1


def file_name(owner: str) -> str:
    """The journal file of ``owner`` (its characters made safe for a file name)."""
    return _UNSAFE.sub("_", owner) + ".jsonl"


@dataclass(frozen=True)
class Pending:
    """A result a dead run paid for and never recorded, with the file it came from."""

    path: Path
    entry: dict[str, Any]


class Journal:
    """The append-only journal of one run (see the module docstring).

    ``write`` and ``done`` raise ``OSError`` (a full disk, a folder gone read-only): the run
    decides what to do. Marks never raise: a mark that cannot be written calls ``on_error``.
    """

    def __init__(
        self,
        directory: Path,
        owner: str,
        *,
        on_error: Callable[[OSError], None] | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / file_name(owner)
        self.owner = owner
        self._on_error = on_error
        self._fh: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._open = 0
        self._tick: asyncio.TimerHandle | None = None
        self._failed = False
        self._append(json.dumps({"owner": owner}))

    def write(self, record: dict[str, Any]) -> str:
        """Append a paid result before it is recorded; returns its entry id."""
        entry_id = uuid.uuid4().hex
        self._append(
            json.dumps(
                {"id": entry_id, "owner": self.owner, **record},
                separators=(",", ":"),
                default=str,
            )
        )
        self._open += 1
        return entry_id

    def done(self, entry_id: str) -> None:
        """The result ``entry_id`` is in the database."""
        self._append(f'{{"done":"{entry_id}"}}')
        self._open -= 1

    def mark(self, kind: str, job_id: int) -> None:
        """Mark an attempt of ``job_id``: ``s`` sending, ``a`` answering, ``e`` ended. A send
        schedules a tick ``TICK_S`` later (on the running loop)."""
        self._mark(f'{{"{kind}":{job_id}}}')
        if kind == "s" and self._tick is None:
            # No running loop (tools, tests): no tick, which blames more, never less.
            with contextlib.suppress(RuntimeError):
                self._tick = asyncio.get_running_loop().call_later(TICK_S, self._ticked)

    def _ticked(self) -> None:
        self._tick = None
        self._mark('{"t":1}')

    def _mark(self, line: str) -> None:
        if self._failed:
            return
        try:
            self._append(line)
        except OSError as exc:
            self._failed = True
            if self._on_error is not None:
                self._on_error(exc)

    def _append(self, line: str) -> None:
        if self._fh is None:
            raise RuntimeError("journal is closed")
        self._fh.write(line + "\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file; delete it when every entry is done (nothing left to drain)."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        if self._fh is None:
            return
        try:
            self._fh.close()
        except OSError as exc:  # the last line could not be written: the run said so already
            log.info("%s: %s", self.path, exc)
        self._fh = None
        if self._open == 0:
            self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class JournalFile:
    """What a journal file holds: its owner, results never marked done, and the jobs its
    worker died on (``blame``)."""

    owner: str | None
    pending: list[dict[str, Any]]
    blamed: frozenset[int]


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            log.warning("%s: skipping a damaged line", path)
            continue
        if isinstance(data, dict):
            yield data


def blame(marks: Iterable[tuple[str, int]]) -> frozenset[int]:
    """The jobs a worker died on, from its marks in order (see the module docstring).

    Jobs whose answer was arriving and whose attempt never ended come first; else the jobs
    sent after the last tick whose attempt never ended. Empty when the death came at a quiet
    moment (nothing to blame)."""
    answering: set[int] = set()
    tail: set[int] = set()
    for kind, job_id in marks:
        if kind == "t":
            tail.clear()
        elif kind == "s":
            tail.add(job_id)
        elif kind == "a":
            answering.add(job_id)
        elif kind == "e":
            answering.discard(job_id)
            tail.discard(job_id)
    return frozenset(answering or tail)


def read_journal(path: Path) -> JournalFile:
    """Read one journal file (unreadable lines skipped: a crash can cut the last one short)."""
    owner: str | None = None
    entries: dict[str, dict[str, Any]] = {}
    marks: list[tuple[str, int]] = []
    for data in _lines(path):
        if "done" in data:
            entries.pop(str(data["done"]), None)
        elif "id" in data:
            entries[str(data["id"])] = data
        elif "owner" in data and owner is None:
            owner = str(data["owner"])
        else:
            for kind in ("s", "a", "e", "t"):
                value = data.get(kind)
                if isinstance(value, int):
                    marks.append((kind, value))
    return JournalFile(owner, list(entries.values()), blame(marks))


def read_pending(path: Path) -> list[dict[str, Any]]:
    """The entries of one journal file that were never marked done."""
    return read_journal(path).pending


def file_pid(path: Path, host: str) -> int | None:
    """The pid in a journal file's name when it belongs to ``host`` (None otherwise)."""
    parts = path.name.removesuffix(".jsonl").rsplit("_", 2)
    if len(parts) != 3 or parts[0] != _UNSAFE.sub("_", host) or not parts[1].isdigit():
        return None
    return int(parts[1])


def dead_files(
    directory: Path,
    *,
    host: str,
    is_alive: Callable[[int], bool],
    owner_dead: Callable[[str], bool | None] | None = None,
) -> Iterator[tuple[Path, JournalFile]]:
    """Journal files of dead runs, read (their pending entries may be none).

    ``owner_dead(owner)`` judges a file's owner where it can (the database knows its run);
    otherwise, and for files written before owners were recorded, a file of ``host`` is dead
    when the pid in its name is not ``is_alive``.
    """
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.jsonl")):
        journal = read_journal(path)
        verdict = None
        if owner_dead is not None and journal.owner is not None:
            verdict = owner_dead(journal.owner)
        if verdict is None:
            pid = file_pid(path, host)
            verdict = pid is not None and pid != os.getpid() and not is_alive(pid)
        if verdict:
            yield path, journal


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
    return base / ledger_id(database_url)


def check_writable(directory: Path) -> None:
    """Make ``directory`` and write, flush and remove a probe file in it; ``OSError`` if any
    step fails (a read-only or full file system, a path through a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    probe = directory / f".probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with probe.open("w", encoding="utf-8") as fh:
            fh.write("contentgen journal probe\n" * 4)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        probe.unlink(missing_ok=True)
