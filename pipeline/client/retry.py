"""The one retry layer for API calls, built on tenacity's ``AsyncRetrying``.

A ``RetryPolicy`` retries ``RetryableAPIError`` (429, 408, 409, 5xx, timeouts, dropped
connections, failed streams) and nothing else; ``PermanentAPIError`` ends the call at once.
It is bounded by attempts and by total time, and logs each retry as one event on the
``contentgen.retry`` logger with job id, attempt, wait, cause and request id.

Waits: when the server gave a hint (``retry-after-ms``/``retry-after``, or the "try again in"
of a 429 message) the wait is the hint plus a small jitter (up to 10% + 0.1 s, so clients told
the same moment do not return together). A hint longer than ``max_retry_after_s`` ends the
retries, as the SDK does: the server is saying "not soon". Without a hint the wait is
exponential with jitter: ``min(max_backoff_s, base_s * 2**(n-1))`` scaled by a random factor in
[0.5, 1]. A retry whose wait would overrun ``max_total_s`` is not taken.

``within`` gives the same policy with other bounds for one stage of a call (a flex request's
flex stage runs until its fallback deadline; see ``client/flex.py``): stages run one after the
other, never nested, so this stays the one retry layer.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from pipeline.client.clock import SYSTEM_CLOCK, Clock
from pipeline.client.errors import scrub
from pipeline.errors import APIError, RetryableAPIError

log = logging.getLogger("contentgen.retry")

T = TypeVar("T")


@dataclass(frozen=True)
class Attempted(Generic[T]):
    """What a retried call came to: its value or its last error, and how many attempts it took."""

    value: T | None
    error: APIError | None
    attempts: int

    @property
    def ok(self) -> bool:
        """True when the call produced a value."""
        return self.error is None


def describe(exc: BaseException) -> str:
    """One line naming an error for logs, with any API key scrubbed."""
    return scrub(f"{type(exc).__name__}: {exc}")


class RetryPolicy:
    """How API calls are retried: which errors, how long to wait, when to give up.

    ``sleep`` defaults to ``clock.sleep``; tests pass a ``FakeClock`` so nothing really sleeps.
    ``rng`` makes the jitter reproducible.
    """

    def __init__(
        self,
        max_attempts: int = 6,
        max_total_s: float = 600.0,
        base_s: float = 0.5,
        max_backoff_s: float = 30.0,
        *,
        max_retry_after_s: float = 120.0,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.max_attempts = max_attempts
        self.max_total_s = max_total_s
        self.base_s = base_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self._clock = clock
        self._sleep = sleep if sleep is not None else clock.sleep
        self._rng = rng if rng is not None else random.Random()

    def within(self, *, max_total_s: float, max_attempts: int | None = None) -> RetryPolicy:
        """The same policy (waits, clock, jitter) with other bounds, for one stage of a call.

        Flex requests use it for their flex stage: retried until ``max_total_s`` (the fallback
        deadline), then sent again at the default tier under this policy's own bounds.
        """
        policy = RetryPolicy(
            max_attempts=max_attempts if max_attempts is not None else self.max_attempts,
            max_total_s=max_total_s,
            base_s=self.base_s,
            max_backoff_s=self.max_backoff_s,
            max_retry_after_s=self.max_retry_after_s,
            clock=self._clock,
            sleep=self._sleep,
            rng=self._rng,
        )
        return policy

    def wait_s(self, failed_attempt: int, exc: BaseException) -> float:
        """Seconds to wait after attempt number ``failed_attempt`` (1-based) failed with ``exc``."""
        hint: float | None = exc.retry_after_s if isinstance(exc, RetryableAPIError) else None
        if hint is not None:
            return hint + self._rng.uniform(0.0, 0.1 * hint + 0.1)
        backoff = min(self.max_backoff_s, self.base_s * 2.0 ** (failed_attempt - 1))
        return backoff * (0.5 + 0.5 * self._rng.random())

    async def run(
        self, attempt: Callable[[int], Awaitable[T]], *, job_id: int | None = None
    ) -> Attempted[T]:
        """Call ``attempt(n)`` for n = 1, 2, ... until it succeeds, fails for good or runs out.

        API errors are returned in ``Attempted.error``; any other exception propagates.
        """
        started = self._clock.monotonic()
        count = 0

        async def one() -> T:
            nonlocal count
            count += 1
            return await attempt(count)

        def stop(state: RetryCallState) -> bool:
            exc = _exception(state)
            if state.attempt_number >= self.max_attempts:
                self._give_up(job_id, state, exc, "no attempts left")
                return True
            hint = exc.retry_after_s if isinstance(exc, RetryableAPIError) else None
            if hint is not None and hint > self.max_retry_after_s:
                self._give_up(job_id, state, exc, f"server asks to wait {hint:.1f}s")
                return True
            elapsed = self._clock.monotonic() - started
            if elapsed + state.upcoming_sleep > self.max_total_s:
                self._give_up(job_id, state, exc, f"time budget {self.max_total_s:.0f}s spent")
                return True
            return False

        def wait(state: RetryCallState) -> float:
            return self.wait_s(state.attempt_number, _exception(state))

        def before_sleep(state: RetryCallState) -> None:
            exc = _exception(state)
            request_id = exc.request_id if isinstance(exc, APIError) else None
            wait_s = state.upcoming_sleep
            cause = describe(exc)
            log.warning(
                "retry job=%s attempt=%d/%d wait_s=%.3f cause=%s request_id=%s",
                job_id,
                state.attempt_number,
                self.max_attempts,
                wait_s,
                cause,
                request_id,
                extra={
                    "job_id": job_id,
                    "attempt": state.attempt_number,
                    "wait_s": wait_s,
                    "cause": cause,
                    "request_id": request_id,
                },
            )

        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=stop,
            wait=wait,
            retry=retry_if_exception_type(RetryableAPIError),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            value: T = await retrying(one)
        except APIError as exc:
            return Attempted(value=None, error=exc, attempts=count)
        return Attempted(value=value, error=None, attempts=count)

    def _give_up(
        self, job_id: int | None, state: RetryCallState, exc: BaseException, why: str
    ) -> None:
        request_id = exc.request_id if isinstance(exc, APIError) else None
        log.warning(
            "giving up job=%s after attempt=%d (%s) cause=%s request_id=%s",
            job_id,
            state.attempt_number,
            why,
            describe(exc),
            request_id,
            extra={"job_id": job_id, "attempt": state.attempt_number, "request_id": request_id},
        )


def _exception(state: RetryCallState) -> BaseException:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    if exc is None:  # tenacity only asks about failed attempts
        raise RuntimeError("retry state without an exception")
    return exc
