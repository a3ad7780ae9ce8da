"""ResponsesClient: cache before the API, dedup of identical requests, JSON output checks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pipeline.client.api import HeadersCallback
from pipeline.client.cache import ResponseCache
from pipeline.client.clock import FakeClock
from pipeline.client.limiter import RateLimiter
from pipeline.client.responses import ResponsesClient
from pipeline.client.result import APIResult
from pipeline.client.retry import RetryPolicy
from pipeline.client.validation import validate_json_output
from pipeline.errors import PermanentAPIError
from pipeline.money.pricing import Usage

BODY: dict[str, Any] = {
    "model": "gpt-4.1-mini",
    "input": [{"role": "user", "content": "Summarise this."}],
    "max_output_tokens": 300,
    "store": False,
}


def result(status: str = "completed", text: str = "summary") -> APIResult:
    return APIResult(
        response_id="resp_1",
        model="gpt-4.1-mini",
        status=status,  # type: ignore[arg-type]
        output_text=text,
        usage=Usage(input_tokens=50, output_tokens=20),
    )


class GatedAPI:
    """Answers from a queue; each call waits for ``gate`` so tests can hold calls in flight."""

    def __init__(self, *answers: APIResult | BaseException) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.headers: Mapping[str, str] = {}

    async def call(
        self,
        body: Mapping[str, Any],
        *,
        stream: bool,
        timeout_s: float,
        on_headers: HeadersCallback | None = None,
    ) -> APIResult:
        self.calls += 1
        await self.gate.wait()
        if on_headers is not None and self.headers:
            on_headers(self.headers)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ResponseCache]:
    with ResponseCache(tmp_path / "cache") as c:
        yield c


def make(api: GatedAPI, cache: ResponseCache, clock: FakeClock) -> ResponsesClient:
    return ResponsesClient(
        api,
        cache=cache,
        limiter=RateLimiter(rpm=None, tpm=100_000, clock=clock),
        retry=RetryPolicy(clock=clock, rng=random.Random(0)),
        clock=clock,
    )


async def gen(
    client: ResponsesClient, body: Mapping[str, Any] = BODY, *, cache: bool = True, job_id: int = 1
) -> Any:
    return await client.generate(
        body,
        estimated_tokens=350,
        stream=False,
        cache_ttl_s=3600,
        cache_enabled=cache,
        job_id=job_id,
    )


async def test_second_identical_request_is_served_from_cache(
    cache: ResponseCache, clock: FakeClock
) -> None:
    """A re-run is never paid twice: the hit makes no call and no attempt, keeps the usage."""
    api = GatedAPI(result())
    client = make(api, cache, clock)
    first = await gen(client, {**BODY, "metadata": {"job_id": "1"}})
    second = await gen(client, {**BODY, "metadata": {"job_id": "2"}}, job_id=2)
    assert (first.from_cache, first.attempts) == (False, 1)
    assert (second.from_cache, second.attempts) == (True, 0)
    assert second.result == first.result
    assert second.result.usage.input_tokens == 50
    assert api.calls == 1
    assert client.limiter.snapshot().requests_total == 1


async def test_incomplete_results_are_cached(cache: ResponseCache, clock: FakeClock) -> None:
    """A truncated answer is a paid output: cached like a completed one."""
    api = GatedAPI(result(status="incomplete"))
    client = make(api, cache, clock)
    await gen(client)
    again = await gen(client)
    assert again.from_cache and again.result.status == "incomplete"


async def test_failures_are_not_cached(cache: ResponseCache, clock: FakeClock) -> None:
    """A failed request is tried again on the next run."""
    api = GatedAPI(PermanentAPIError("HTTP 400: bad", status=400), result())
    client = make(api, cache, clock)
    failed = await gen(client)
    assert failed.error is not None and failed.attempts == 1
    ok = await gen(client)
    assert ok.ok and not ok.from_cache
    assert api.calls == 2


async def test_cache_disabled_neither_reads_nor_writes(
    cache: ResponseCache, clock: FakeClock
) -> None:
    """With caching off every request goes to the API and nothing is stored."""
    api = GatedAPI(result(), result())
    client = make(api, cache, clock)
    await gen(client, cache=False)
    again = await gen(client, cache=False)
    assert not again.from_cache
    assert api.calls == 2
    assert len(cache) == 0


async def test_identical_requests_in_flight_are_sent_once(
    cache: ResponseCache, clock: FakeClock
) -> None:
    """Duplicates sent together wait for the first and are served like cache hits."""
    api = GatedAPI(result())
    api.gate.clear()
    client = make(api, cache, clock)
    tasks = [asyncio.create_task(gen(client, job_id=i)) for i in range(3)]
    await asyncio.sleep(0.01)
    api.gate.set()
    outcomes = await asyncio.gather(*tasks)
    assert api.calls == 1
    assert [o.from_cache for o in outcomes] == [False, True, True]
    assert [o.attempts for o in outcomes] == [1, 0, 0]


async def test_cancelled_leader_hands_over_to_a_duplicate(
    cache: ResponseCache, clock: FakeClock
) -> None:
    """If the first sender is cancelled, a waiting duplicate sends the request itself."""
    api = GatedAPI(result(), result())
    api.gate.clear()
    client = make(api, cache, clock)
    leader = asyncio.create_task(gen(client, job_id=1))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(gen(client, job_id=2))
    await asyncio.sleep(0.01)
    leader.cancel()
    await asyncio.sleep(0.01)
    api.gate.set()
    outcome = await follower
    assert outcome.ok and not outcome.from_cache and outcome.attempts == 1
    assert leader.cancelled()


async def test_headers_reach_the_limiter(cache: ResponseCache, clock: FakeClock) -> None:
    """Response headers go to the limiter, which follows the server's limits."""
    api = GatedAPI(result())
    api.headers = {"x-ratelimit-limit-tokens": "30000", "x-ratelimit-remaining-tokens": "100"}
    client = make(api, cache, clock)
    await gen(client)
    stats = client.limiter.snapshot()
    assert stats.tpm_limit == 30000
    assert stats.tokens_available == pytest.approx(100)


SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "points": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title", "points"],
    "additionalProperties": False,
}


def test_valid_json_output_is_parsed() -> None:
    """Matching output is returned parsed."""
    parsed, error = validate_json_output('{"title": "T", "points": ["a", "b"]}', SCHEMA)
    assert error is None
    assert parsed == {"title": "T", "points": ["a", "b"]}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"title": "T", "points": [', "not valid JSON"),
        ("", "not valid JSON"),
        ('{"title": "T"}', "'points' is a required property"),
        ('{"title": "T", "points": ["a", 3]}', "$.points[1]"),
        ('{"title": "T", "points": [], "extra": 1}', "Additional properties"),
    ],
)
def test_invalid_json_output_is_a_reason_not_a_crash(text: str, reason: str) -> None:
    """Bad output gives (None, reason) naming what is wrong and where."""
    parsed, error = validate_json_output(text, SCHEMA)
    assert parsed is None
    assert error is not None and reason in error


def test_invalid_schema_is_reported() -> None:
    """A broken schema is reported as such, not raised."""
    parsed, error = validate_json_output("{}", {"type": "no-such-type"})
    assert parsed is None and error is not None and "schema is invalid" in error
