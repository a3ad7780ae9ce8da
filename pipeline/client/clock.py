"""Time as a side effect that is passed in: the real clock, and a fake one for tests.

The limiter and the retry policy read time and sleep only through a ``Clock``, so tests run
their real code paths without sleeping (``FakeClock.sleep`` moves time forward at once).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """A monotonic time source and a way to wait on it."""

    def monotonic(self) -> float:
        """Seconds on a monotonic scale (only differences mean anything)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (returns at once for zero or negative values)."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        """Seconds from ``time.monotonic``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop."""
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK: Clock = SystemClock()


class FakeClock:
    """A clock for tests: ``sleep`` advances time instantly and is recorded in ``sleeps``.

    Sleeping still yields to the event loop once, so other tasks get to run. Concurrent
    sleepers each advance time by their own amount (time is not shared out between them),
    which is exact whenever only one task sleeps at a time, as in the limiter's FIFO queue.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The current fake time."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Record ``seconds``, move time forward by it, and yield once."""
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        """Move time forward without sleeping (time passing while nothing waits)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.now += seconds

    @property
    def slept_s(self) -> float:
        """Total seconds slept so far."""
        return sum(s for s in self.sleeps if s > 0)
