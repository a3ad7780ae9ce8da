"""Results recorded in small groups, off the send path and off the claim thread.

A request's result is judged and written to the journal on the event loop (so a crash after
payment loses nothing: ``journal``, ``recovery``), then handed to the ``Recorder`` and the
request's slot is free at once. The recorder commits what has gathered as one group
(``db.outcomes.record_outcomes``) on a database thread of its own, so claims never wait behind
recording: at most ``max_delay_s`` after the group's first result, or as soon as ``max_group``
results are waiting, or straight away when the previous commit took longer than the delay.
Once a group is committed its journal entries are marked done and ``on_recorded`` is told
each outcome's new job state.

A database that stays away past the thread's outage window ends recording with
``DatabaseError`` (passed to ``on_error``); what was not committed stays in the journal for
the next run. ``close()`` commits everything still waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.db import OutcomeRow
from pipeline.errors import DatabaseError
from pipeline.run.dbthread import DatabaseThread, Outage

log = logging.getLogger("contentgen.recorder")

MAX_DELAY_S = 0.1
MAX_GROUP = 500


@dataclass(frozen=True)
class Pending:
    """One outcome waiting to be committed, with its journal entry (None: not journalled)."""

    outcome: OutcomeRow
    entry: str | None
    at: float


class Recorder:
    """Groups outcomes and commits them on its own database thread; see the module docstring.

    ``write(outcomes) -> states`` runs on the database thread (one transaction);
    ``on_recorded(pending, state)`` runs on the event loop after the commit.
    """

    def __init__(
        self,
        write: Callable[[Sequence[OutcomeRow]], list[str | None]],
        *,
        on_recorded: Callable[[Pending, str | None], None],
        on_error: Callable[[DatabaseError], None],
        outage_s: float,
        max_delay_s: float = MAX_DELAY_S,
        max_group: int = MAX_GROUP,
        outage: Outage | None = None,
    ) -> None:
        self._write = write
        self._on_recorded = on_recorded
        self._on_error = on_error
        self._db = DatabaseThread(outage_s=outage_s, name="contentgen-recorder", outage=outage)
        self.max_delay_s = max_delay_s
        self.max_group = max_group
        self._pending: list[Pending] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._failed: DatabaseError | None = None
        self._task: asyncio.Task[None] | None = None
        self._committing = False
        self.groups = 0
        self.recorded = 0

    @property
    def waiting(self) -> int:
        """Outcomes handed over and not yet committed."""
        return len(self._pending)

    @property
    def busy(self) -> bool:
        """Outcomes are waiting or being committed (jobs may yet go back to the queue)."""
        return bool(self._pending) or self._committing

    def start(self) -> None:
        """Start the commit loop on the running event loop."""
        self._task = asyncio.create_task(self._loop(), name="contentgen-recorder")

    def add(self, outcome: OutcomeRow, entry: str | None) -> None:
        """Hand over one outcome (never waits). After a database failure it is left to the
        journal: nothing more is committed by this run."""
        if self._failed is not None:
            return
        if not self._pending:
            self._arrived.set()
        self._pending.append(Pending(outcome, entry, time.monotonic()))
        if len(self._pending) >= self.max_group:
            self._full.set()

    async def close(self) -> None:
        """Commit everything still waiting, then end the loop and its thread."""
        self._closing = True
        self._arrived.set()
        self._full.set()
        try:
            if self._task is not None:
                try:
                    await self._task
                except asyncio.CancelledError:
                    if not self._task.cancelled():
                        raise  # we are the ones being cancelled
                    # The loop alone was cancelled (the event loop shutting down on a cancel):
                    # commit what waits here, so the jobs are done before they are released.
                    while self._pending and self._failed is None:
                        group = self._pending[: self.max_group]
                        del self._pending[: self.max_group]
                        if not await self._commit(group):
                            break
        finally:
            self._db.shutdown()

    async def _loop(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            wait = self._pending[0].at + self.max_delay_s - time.monotonic()
            if wait > 0 and not self._closing and len(self._pending) < self.max_group:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), wait)
            group = self._pending[: self.max_group]
            del self._pending[: self.max_group]
            self._full.clear()
            if not await self._commit(group):
                return

    async def _commit(self, group: list[Pending]) -> bool:
        self._committing = True
        # The commit runs on its own thread and goes on whatever happens to us: a cancel waits
        # for it (and its bookkeeping) before it is passed on, or the group would be lost or
        # committed twice.
        call = asyncio.ensure_future(self._db.call(self._write, [p.outcome for p in group]))
        cancelled = False
        try:
            while True:
                try:
                    states: list[str | None] = await asyncio.shield(call)
                    break
                except asyncio.CancelledError:
                    if call.cancelled():
                        raise
                    cancelled = True
        except DatabaseError as exc:
            self._failed = exc
            self._pending.clear()
            self._on_error(exc)
            return False
        finally:
            self._committing = False
        self.groups += 1
        self.recorded += len(group)
        for pending, state in zip(group, states, strict=True):
            self._on_recorded(pending, state)
        if cancelled:
            raise asyncio.CancelledError
        return True
