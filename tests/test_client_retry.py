"""The retry layer: what is retried, how long it waits, when it stops, what it logs."""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Mapping
from typing import Any

import pytest

from pipeline.client.api import HeadersCallback
from pipeline.client.cache import NullCache
from pipeline.client.clock import FakeClock
from pipeline.client.limiter import RateLimiter
from pipeline.client.responses import ResponsesClient
from pipeline.client.result import APIResult
from pipeline.client.retry import RetryPolicy
from pipeline.errors import PermanentAPIError, RateLimited, RetryableAPIError
from pipeline.money.pricing import Usage

BODY: dict[str, Any] = {"model": "gpt-4.1-mini", "input": [{"role": "user", "content": "hi"}]}


def ok(text: str = "hi", **usage: int) -> APIResult:
    return APIResult(
        response_id="resp_1",
        model="gpt-4.1-mini",
        status="completed",
        output_text=text,
        usage=Usage(**usage),
        request_id="req_ok",
    )


class FakeAPI:
    """Answers calls from a queue of results and errors, recording each call."""

    def __init__(self, *answers: APIResult | BaseException) -> None:
        self.answers: deque[APIResult | BaseException] = deque(answers)
        self.calls: list[dict[str, Any]] = []

    async def call(
        self,
        body: Mapping[str, Any],
        *,
        stream: bool,
        timeout_s: float,
        on_headers: HeadersCallback | None = None,
    ) -> APIResult:
        self.calls.append({"body": dict(body), "stream": stream, "timeout_s": timeout_s})
        answer = self.answers.popleft()
        if isinstance(answer, BaseException):
            raise answer
        return answer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(
    api: FakeAPI, clock: FakeClock, **policy: Any
) -> tuple[ResponsesClient, RateLimiter]:
    limiter = RateLimiter(rpm=None, tpm=None, clock=clock)
    retry = RetryPolicy(clock=clock, rng=random.Random(7), **policy)
    client = ResponsesClient(api, cache=NullCache(), limiter=limiter, retry=retry, clock=clock)
    return client, limiter


async def generate(client: ResponsesClient, job_id: int = 42) -> Any:
    return await client.generate(
        BODY,
        estimated_tokens=100,
        stream=False,
        cache_ttl_s=None,
        cache_enabled=False,
        job_id=job_id,
    )


async def test_rate_limit_is_retried_after_the_servers_hint(clock: FakeClock) -> None:
    """A 429 with a 2.5 s hint is retried after 2.5 s plus a little jitter; the limiter pauses."""
    api = FakeAPI(RateLimited("slow down", status=429, retry_after_s=2.5), ok())
    client, limiter = make_client(api, clock)
    outcome = await generate(client)
    assert outcome.ok and outcome.attempts == 2
    assert len(api.calls) == 2
    [wait] = clock.sleeps
    assert 2.5 <= wait <= 2.5 + 0.35
    assert limiter.snapshot().penalties == 1


async def test_rate_limit_without_hint_pauses_briefly_and_backs_off(clock: FakeClock) -> None:
    """A 429 without a hint pauses the limiter 1 s; the retry still waits its own backoff."""
    api = FakeAPI(RateLimited("slow down", status=429), ok())
    client, limiter = make_client(api, clock, base_s=0.5)
    outcome = await generate(client)
    assert outcome.attempts == 2
    assert limiter.snapshot().penalties == 1
    assert clock.slept_s == pytest.approx(1.0)  # backoff <= 0.5 s, then the limiter's rest


async def test_server_errors_are_retried_with_exponential_backoff(clock: FakeClock) -> None:
    """5xx answers are retried; waits grow 0.5 s, 1 s, 2 s (each jittered to 50-100%)."""
    api = FakeAPI(*(RetryableAPIError("HTTP 500", status=500) for _ in range(3)), ok())
    client, _ = make_client(api, clock, base_s=0.5)
    outcome = await generate(client)
    assert outcome.ok and outcome.attempts == 4
    for wait, full in zip(clock.sleeps, [0.5, 1.0, 2.0], strict=True):
        assert full / 2 <= wait <= full


def test_backoff_is_capped(clock: FakeClock) -> None:
    """Backoff never exceeds max_backoff_s."""
    policy = RetryPolicy(base_s=1, max_backoff_s=30, clock=clock, rng=random.Random(1))
    assert all(policy.wait_s(n, RetryableAPIError("x")) <= 30 for n in range(1, 40))


async def test_bad_request_is_not_retried(clock: FakeClock) -> None:
    """A 400 fails at once with the API's message; nothing waits."""
    error = PermanentAPIError("HTTP 400 model_not_found: no such model", status=400)
    api = FakeAPI(error, ok())
    client, _ = make_client(api, clock)
    outcome = await generate(client)
    assert outcome.result is None
    assert outcome.error is error
    assert outcome.attempts == 1
    assert clock.sleeps == []


async def test_attempts_are_bounded(clock: FakeClock) -> None:
    """After max_attempts failures the last error is returned with the count."""
    api = FakeAPI(*(RetryableAPIError(f"HTTP 503 #{i}", status=503) for i in range(10)))
    client, _ = make_client(api, clock, max_attempts=3)
    outcome = await generate(client)
    assert outcome.attempts == 3
    assert len(api.calls) == 3
    assert outcome.error is not None and "#2" in str(outcome.error)


async def test_total_time_is_bounded(clock: FakeClock) -> None:
    """A retry whose wait would overrun max_total_s is not taken."""
    api = FakeAPI(*(RetryableAPIError("HTTP 502", status=502) for _ in range(20)))
    client, _ = make_client(api, clock, max_attempts=20, max_total_s=10, base_s=2)
    start = clock.monotonic()
    outcome = await generate(client)
    assert outcome.error is not None
    assert 1 < outcome.attempts < 20
    assert clock.monotonic() - start <= 10


async def test_a_very_long_hint_ends_the_retries(clock: FakeClock) -> None:
    """A hint beyond max_retry_after_s means "not soon": give up instead of hammering."""
    api = FakeAPI(RateLimited("quota", status=429, retry_after_s=3600), ok())
    client, _ = make_client(api, clock, max_retry_after_s=120)
    outcome = await generate(client)
    assert outcome.attempts == 1
    assert isinstance(outcome.error, RateLimited)
    assert clock.sleeps == [] or max(clock.sleeps) < 120


async def test_other_exceptions_propagate(clock: FakeClock) -> None:
    """Bugs are not swallowed as API failures."""
    policy = RetryPolicy(clock=clock)

    async def broken(attempt: int) -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await policy.run(broken, job_id=1)


async def test_each_retry_is_logged_once_with_its_facts(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """One log event per retry with job id, attempt, wait, cause and request id; no API key."""
    key = "sk-proj-abcdefghijklmnop0123456789"
    api = FakeAPI(
        RetryableAPIError(f"HTTP 500: boom for {key}", status=500, request_id="req_abc"),
        RateLimited("HTTP 429: slow down", status=429, request_id="req_def", retry_after_s=1.0),
        ok(),
    )
    client, _ = make_client(api, clock)
    with caplog.at_level(logging.INFO, logger="contentgen.retry"):
        outcome = await generate(client, job_id=4711)
    assert outcome.attempts == 3
    records = [r for r in caplog.records if r.name == "contentgen.retry"]
    assert len(records) == 2
    first, second = (r.getMessage() for r in records)
    assert "job=4711" in first and "attempt=1/6" in first and "request_id=req_abc" in first
    assert "wait_s=" in first and "RetryableAPIError: HTTP 500: boom" in first
    assert "attempt=2/6" in second and "RateLimited" in second and "req_def" in second
    assert records[1].__dict__["wait_s"] >= 1.0
    assert records[0].__dict__["job_id"] == 4711
    assert key not in caplog.text
    assert "abcdefghijklmnop" not in caplog.text


async def test_giving_up_is_logged(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """Running out of attempts leaves one "giving up" event naming the job."""
    api = FakeAPI(*(RetryableAPIError("HTTP 500", status=500) for _ in range(2)))
    client, _ = make_client(api, clock, max_attempts=2)
    with caplog.at_level(logging.WARNING, logger="contentgen.retry"):
        await generate(client, job_id=9)
    messages = [r.getMessage() for r in caplog.records if r.name == "contentgen.retry"]
    assert len(messages) == 2
    assert messages[-1].startswith("giving up job=9 after attempt=2")
