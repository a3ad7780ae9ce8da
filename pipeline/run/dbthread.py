"""The database thread of a run: one worker thread, retries across a lost connection.

A run's event loop never blocks on the database: every statement runs on one worker thread
(so a session is never shared between threads). A lost connection (PostgreSQL restarted, the
network dropped, SQLite busy) is retried with backoff for ``outage_s``; past that the call
raises ``DatabaseError`` and the run stops cleanly (``runner``), its paid results safe in the
journal.
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


class DatabaseThread:
    """Runs database calls on one thread; see the module docstring."""

    def __init__(self, *, outage_s: float = 60.0, name: str = "contentgen-db") -> None:
        self.outage_s = outage_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on the database thread, retried while the connection is
        lost; ``DatabaseError`` once it has been lost for ``outage_s``."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.outage_s
        delay = 0.2
        while True:
            try:
                return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
            except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
                if time.monotonic() + delay > deadline:
                    raise DatabaseError(
                        f"the database did not answer for {self.outage_s:.0f}s "
                        f"({type(exc.orig).__name__}); paid results are kept in the journal "
                        "and recorded by the next run"
                    ) from exc
                log.warning("database error, retrying in %.1fs: %s", delay, exc.orig)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def shutdown(self) -> None:
        """Wait for the call in progress, then end the thread."""
        self._executor.shutdown(wait=True)
