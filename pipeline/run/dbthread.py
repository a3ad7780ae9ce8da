"""The database thread of a run: one worker thread, retries across a lost connection.

A run's event loop never blocks on the database: every statement runs on one worker thread
(so a session is never shared between threads). A lost connection (PostgreSQL restarted, the
network dropped, SQLite busy) is retried with backoff until the run's ``Outage`` has lasted
``outage_s``; past that every call raises ``DatabaseError`` at once and the run stops cleanly
(``runner``), its paid results safe in the journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy.exc

from pipeline.errors import DatabaseError

log = logging.getLogger("contentgen.db")


class Outage:
    """One run's view of a database outage, shared by all its database threads.

    The outage starts at the first failed call and ends at the next success, whichever thread
    makes them. Once it has lasted ``outage_s`` every call fails at once: a run stops about
    ``outage_s`` after the database went away, not one window per call still waiting, and says
    so once (the retries are logged at INFO, not on the terminal).
    """

    def __init__(self, outage_s: float) -> None:
        self.outage_s = outage_s
        self.down_since: float | None = None
        self.given_up: DatabaseError | None = None

    def ok(self) -> None:
        """A call went through: the database is back."""
        self.down_since = None
        self.given_up = None

    def deadline(self, now: float) -> float:
        """When retries end for a call failing now."""
        if self.down_since is None:
            self.down_since = now
        return self.down_since + self.outage_s

    def give_up(self, exc: BaseException) -> DatabaseError:
        """The error every call raises from now on (until a call goes through)."""
        if self.given_up is None:
            cause = getattr(exc, "orig", None) or exc
            self.given_up = DatabaseError(
                f"the database did not answer for {self.outage_s:.0f}s "
                f"({type(cause).__name__}); paid results are kept in the journal and "
                "recorded by the next run, which also takes back this run's jobs"
            )
        return self.given_up


class DatabaseThread:
    """Runs database calls on one thread; see the module docstring.

    Threads of one run share an ``Outage`` (one is made when none is given)."""

    def __init__(
        self, *, outage_s: float = 60.0, name: str = "contentgen-db", outage: Outage | None = None
    ) -> None:
        self.outage = outage or Outage(outage_s)
        self.outage_s = self.outage.outage_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on the database thread, retried while the connection is
        lost; ``DatabaseError`` once the run's outage has lasted ``outage_s``."""
        loop = asyncio.get_running_loop()
        outage = self.outage
        delay = 0.2
        while True:
            try:
                result = await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
            except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
                if outage.given_up is not None:
                    raise outage.given_up from exc
                now = time.monotonic()
                deadline = outage.deadline(now)
                if now + delay > deadline:
                    raise outage.give_up(exc) from exc
                log.info("database error, retrying in %.1fs: %s", delay, exc.orig)
                await asyncio.sleep(min(delay, max(deadline - now, 0.01)))
                delay = min(delay * 2, 5.0)
                continue
            outage.ok()
            return result

    def shutdown(self) -> None:
        """Wait for the call in progress, then end the thread."""
        self._executor.shutdown(wait=True)
