"""A circuit breaker for an API that stops answering, and a stop signal for waits.

``OutageBreaker``: after ``threshold`` connection failures in a row (no answer at all: refused,
reset, timed out), or one failure that ends ``silence_open_s`` (or the window, if shorter) of
silence (a request timed out after the server accepted it and said nothing), the API is taken
to be down.
Sending pauses: one probe every ``probe_every_s`` goes through, the others wait, and no
request spends its retries on a dead endpoint (the client keeps a request inside its attempt
while the breaker is open). An answer (any HTTP status) closes the breaker and everyone goes
on. The outage is dated from the start of the silence, not from the failure that revealed
it: the moment the first unanswered request was sent (or the last answer, if later), so an
API that accepts connections and never answers is given up ``window_s`` after the first
request it swallowed, not after a few of its timeouts. When the outage has lasted
``window_s``, every waiting and later request fails with a ``FatalAPIError`` (``unreachable``)
that says how long the API really was silent: the run stops and hands its jobs back
untouched, instead of failing them one by one or hanging.

``Stopping``: set when the run stops; waits in the client (limiter, breaker, retry backoff) end
at once with ``RunStopping``, so a stop takes seconds, not a retry schedule.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pipeline.client.clock import SYSTEM_CLOCK, Clock
from pipeline.errors import APIError, FatalAPIError, RetryableAPIError

T = TypeVar("T")


class RunStopping(APIError):
    """The run is stopping: this request was not sent (or its retry was abandoned)."""


class Stopping:
    """The run's stop flag, with waits that end when it is set."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    @property
    def is_set(self) -> bool:
        """True once the run is stopping."""
        return self._event.is_set()

    def set(self) -> None:
        """Stop: every wait through ``race``/``sleep`` ends with ``RunStopping``."""
        self._event.set()

    async def race(self, waiting: Awaitable[T]) -> T:
        """``await waiting``, unless the run stops first (then ``RunStopping``)."""
        if self._event.is_set():
            if asyncio.iscoroutine(waiting):
                waiting.close()
            raise RunStopping("the run is stopping")
        task = asyncio.ensure_future(waiting)
        stop = asyncio.ensure_future(self._event.wait())
        try:
            done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task in done:
            return task.result()
        task.cancel()
        raise RunStopping("the run is stopping")

    async def sleep(self, seconds: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        """``sleep(seconds)`` that ends early (with ``RunStopping``) when the run stops."""
        await self.race(sleep(seconds))


def is_outage(exc: BaseException) -> bool:
    """No answer at all: a connection refused, reset or timed out (not an HTTP status)."""
    return isinstance(exc, RetryableAPIError) and exc.status is None and exc.code is None


class OutageBreaker:
    """Pauses sending while the API does not answer; gives up after ``window_s``."""

    def __init__(
        self,
        *,
        threshold: int = 5,
        window_s: float = 120.0,
        probe_every_s: float = 1.0,
        silence_open_s: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.threshold = threshold
        self.window_s = window_s
        self.probe_every_s = probe_every_s
        self.silence_open_s = silence_open_s
        self._clock = clock
        self._failures = 0
        self._down_since: float | None = None
        self._silent_since: float | None = None  # start of the silence the failures show
        self._last_answer = -math.inf
        self._probing = False
        self._next_probe = 0.0
        self._changed = asyncio.Event()
        self.last_error: str | None = None

    @property
    def open(self) -> bool:
        """True while the API is taken to be down."""
        return self._down_since is not None

    def _dead(self) -> FatalAPIError | None:
        if self._down_since is None:
            return None
        silent_s = self._clock.monotonic() - self._down_since
        if silent_s < self.window_s:
            return None
        return FatalAPIError(
            f"the API did not answer for {silent_s:.0f}s ({self.last_error or 'no answer'})",
            kind="unreachable",
            advice="check OPENAI_BASE_URL and the network, then run again: unsent jobs are "
            "still queued",
        )

    async def before(self, stopping: Stopping | None = None) -> bool:
        """Wait until this request may be sent; True when it goes as the outage's probe.

        Raises ``FatalAPIError`` once the outage has lasted ``window_s``.
        """
        while True:
            dead = self._dead()
            if dead is not None:
                raise dead
            if self._down_since is None:
                return False
            now = self._clock.monotonic()
            if not self._probing and now >= self._next_probe:
                self._probing = True
                return True
            self._changed.clear()
            until = self._down_since + self.window_s
            if not self._probing:
                until = min(until, self._next_probe)
            waiter = asyncio.wait_for(self._changed.wait(), timeout=max(until - now, 0.01))
            try:
                if stopping is not None:
                    await stopping.race(waiter)
                else:
                    await waiter
            except TimeoutError:
                continue

    def answered(self, probe: bool) -> None:
        """The API answered (with any status): close the breaker."""
        self._failures = 0
        self._down_since = None
        self._silent_since = None
        self._last_answer = self._clock.monotonic()
        if probe:
            self._probing = False
        self._changed.set()

    def failed(self, exc: BaseException, probe: bool, sent_at: float | None = None) -> None:
        """A request got no answer, or another error (which is an answer if it has a status).

        ``sent_at`` is when the failed attempt went out (monotonic): the silence it ends began
        then, or at the last answer if that came later.
        """
        if probe:
            self._probing = False
            self._next_probe = self._clock.monotonic() + self.probe_every_s
            self._changed.set()
        if not is_outage(exc):
            if isinstance(exc, APIError) and exc.status is not None:
                self.answered(False)
            return
        self.last_error = str(exc)
        self._failures += 1
        now = self._clock.monotonic()
        if self._silent_since is None:
            start = now if sent_at is None else min(sent_at, now)
            self._silent_since = max(start, self._last_answer)
        silent_s = now - self._silent_since
        long_silence = silent_s >= min(self.silence_open_s, self.window_s)
        if self._down_since is None and (self._failures >= self.threshold or long_silence):
            self._down_since = self._silent_since
