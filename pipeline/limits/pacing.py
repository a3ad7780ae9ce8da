"""Pacing a run to its deadline, so each prompt-cache key stays within what one machine holds.

Before GPT-5.6 a key routes a prefix to one cache machine, which takes about 15 requests a
minute; past that the provider spills requests onto other machines, each a cold miss the
first time (API-NOTES §1.1). A run sent as fast as the rate limit allows needs a key (bucket)
per ~12 requests/min, and each key's first request misses; a small batch sent in a burst pays
that miss for every dozen requests. When the run may take longer, sending at
``paced_rpm`` needs fewer keys: the planner sizes buckets for that rate, and the ``Pacer``
holds the send rate to it. GPT-5.6+ models route automatically and are never paced.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

# Requests a minute one key is planned to carry (the planner's 0.8 x ~15).
KEY_RPM = 12.0


def paced_rpm(jobs: int, within_h: float, *, key_rpm: float = KEY_RPM) -> float:
    """The send rate that finishes ``jobs`` within ``within_h`` hours, in whole keys' worth.

    At least one key's rate; rounded up to a multiple of ``key_rpm`` so every bucket the
    planner makes is used at its full rate.
    """
    if within_h <= 0:
        raise ValueError(f"within_h must be > 0, got {within_h}")
    needed = jobs / (within_h * 60.0)
    return max(1, math.ceil(needed / key_rpm)) * key_rpm


class Pacer:
    """Lets at most ``per_minute`` callers through a minute, evenly spaced, in arrival order."""

    def __init__(
        self,
        per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError(f"per_minute must be > 0, got {per_minute}")
        self.per_minute = per_minute
        self._interval = 60.0 / per_minute
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def set_rate(self, per_minute: float) -> None:
        """Send at ``per_minute`` from the next slot on (slots already taken keep their time)."""
        if per_minute <= 0:
            raise ValueError(f"per_minute must be > 0, got {per_minute}")
        self.per_minute = per_minute
        self._interval = 60.0 / per_minute

    async def wait(self) -> None:
        """Return when the caller may send (slots are taken at once, so callers never race)."""
        now = self._clock()
        if self._next is None or now >= self._next:
            self._next = now + self._interval
            return
        delay = self._next - now
        self._next += self._interval
        await self._sleep(delay)
