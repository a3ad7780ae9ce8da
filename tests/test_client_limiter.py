"""The client-side rate limiter: bucket math, fairness, header following, 429 pauses."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.client.clock import FakeClock
from pipeline.client.durations import parse_go_duration, retry_after_s
from pipeline.client.limiter import RateLimiter
from pipeline.errors import RequestTooLarge


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_buckets_start_full(clock: FakeClock) -> None:
    """A fresh limiter admits a whole minute's worth at once, like the server."""
    limiter = RateLimiter(rpm=100, tpm=6000, clock=clock)
    await limiter.acquire(4000)
    await limiter.acquire(2000)
    assert clock.sleeps == []
    stats = limiter.snapshot()
    assert stats.tokens_per_min == 6000
    assert stats.requests_per_min == 2
    assert stats.tokens_available == pytest.approx(0)


async def test_tokens_refill_continuously(clock: FakeClock) -> None:
    """An empty TPM bucket refills at limit/60 per second: 600 tokens of 6000 TPM take 6 s."""
    limiter = RateLimiter(rpm=None, tpm=6000, clock=clock)
    await limiter.acquire(6000)
    await limiter.acquire(600)
    assert sum(clock.sleeps) == pytest.approx(6.0)
    clock.advance(3)
    assert limiter.snapshot().tokens_available == pytest.approx(300)


async def test_refill_never_exceeds_capacity(clock: FakeClock) -> None:
    """Idle time does not bank more than one minute of tokens."""
    limiter = RateLimiter(rpm=None, tpm=6000, clock=clock)
    await limiter.acquire(1000)
    clock.advance(3600)
    assert limiter.snapshot().tokens_available == pytest.approx(6000)


async def test_requests_bucket_limits_rate(clock: FakeClock) -> None:
    """With 2 RPM the third request waits 30 s for one request's refill."""
    limiter = RateLimiter(rpm=2, tpm=None, clock=clock)
    for _ in range(3):
        await limiter.acquire(10)
    assert sum(clock.sleeps) == pytest.approx(30.0)


async def test_request_above_the_account_tpm_is_refused_at_once(clock: FakeClock) -> None:
    """A request the whole TPM cannot hold fails at once and leaves the bucket untouched (it
    used to wait for a full bucket and leave every later request behind its debt)."""
    limiter = RateLimiter(rpm=None, tpm=1000, clock=clock)
    await limiter.acquire(500)
    with pytest.raises(RequestTooLarge, match="larger than the account's 1,000 tokens per minute"):
        await limiter.acquire(1500)
    assert clock.sleeps == []
    assert limiter.snapshot().tokens_available == pytest.approx(500)
    await limiter.acquire(500)  # the next request goes at once
    assert clock.sleeps == []


async def test_request_above_its_share_waits_for_a_full_share_then_goes(clock: FakeClock) -> None:
    """With a quarter of the account, a request above the quarter but within the account's
    limit is not starved: it goes on a full share (and leaves a debt the share repays)."""
    limiter = RateLimiter(rpm=None, tpm=4000, clock=clock)
    limiter.set_share(0.25)
    await limiter.acquire(500)
    await limiter.acquire(1500)
    assert sum(clock.sleeps) == pytest.approx(30.0)
    assert limiter.snapshot().tokens_available == pytest.approx(-500)


async def test_fifo_big_request_is_not_starved(clock: FakeClock) -> None:
    """Waiters are admitted in arrival order; small late requests do not overtake a big one."""
    limiter = RateLimiter(rpm=None, tpm=6000, clock=clock)
    await limiter.acquire(6000)
    order: list[str] = []

    async def send(name: str, tokens: int) -> None:
        await limiter.acquire(tokens)
        order.append(name)

    tasks = [asyncio.create_task(send("big", 5000))]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(send(f"small{i}", 100)) for i in range(5)]
    await asyncio.gather(*tasks)
    assert order == ["big", "small0", "small1", "small2", "small3", "small4"]
    # the big one waited 50 s, then each small one 1 s
    assert sum(clock.sleeps) == pytest.approx(55.0)


async def test_waiting_count_in_stats(clock: FakeClock) -> None:
    """Stats count the requests queued in the limiter."""
    limiter = RateLimiter(rpm=None, tpm=60, clock=clock)
    await limiter.acquire(60)
    task = asyncio.create_task(limiter.acquire(30))
    await asyncio.sleep(0)
    assert limiter.snapshot().waiting == 1
    await task
    assert limiter.snapshot().waiting == 0


async def test_stats_window_forgets_after_a_minute(clock: FakeClock) -> None:
    """Tokens per minute used counts the last 60 s; totals count everything."""
    limiter = RateLimiter(rpm=None, tpm=100_000, clock=clock)
    await limiter.acquire(1000)
    clock.advance(30)
    await limiter.acquire(2000)
    assert limiter.snapshot().tokens_per_min == 3000
    clock.advance(45)
    stats = limiter.snapshot()
    assert stats.tokens_per_min == 2000
    assert stats.tokens_total == 3000
    assert stats.requests_total == 2
    assert stats.tpm_utilisation == pytest.approx(0.02)


HEADERS = {
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-limit-tokens": "6000",
    "x-ratelimit-remaining-requests": "59",
    "x-ratelimit-remaining-tokens": "1200",
    "x-ratelimit-reset-requests": "1s",
    "x-ratelimit-reset-tokens": "48s",
}


async def test_headers_switch_on_unconfigured_limits(clock: FakeClock) -> None:
    """A limiter started without limits takes them (and the server's remaining) from headers."""
    limiter = RateLimiter(rpm=None, tpm=None, clock=clock)
    limiter.observe(HEADERS)
    stats = limiter.snapshot()
    assert (stats.rpm_limit, stats.tpm_limit) == (60, 6000)
    assert stats.tokens_available == pytest.approx(1200)
    assert stats.requests_available == pytest.approx(59)
    assert stats.server_reset_tokens_s == pytest.approx(48.0)
    await limiter.acquire(2200)
    assert sum(clock.sleeps) == pytest.approx(10.0)


async def test_remaining_clamps_down_never_up(clock: FakeClock) -> None:
    """remaining-* lowers the local level when the server knows less is left, never raises it."""
    limiter = RateLimiter(rpm=None, tpm=6000, clock=clock)
    limiter.observe({"x-ratelimit-remaining-tokens": "500"})
    assert limiter.snapshot().tokens_available == pytest.approx(500)
    await limiter.acquire(400)
    limiter.observe({"x-ratelimit-remaining-tokens": "5999"})
    assert limiter.snapshot().tokens_available == pytest.approx(100)


async def test_limit_header_changes_capacity_and_rate(clock: FakeClock) -> None:
    """A new limit-tokens value sets capacity and refill rate (limit/60 per second)."""
    limiter = RateLimiter(rpm=None, tpm=6000, clock=clock)
    limiter.observe({"X-RateLimit-Limit-Tokens": "60000", "X-RateLimit-Remaining-Tokens": "0"})
    await limiter.acquire(1000)
    assert sum(clock.sleeps) == pytest.approx(1.0)
    assert limiter.snapshot().tpm_limit == 60000


def test_malformed_headers_are_ignored(clock: FakeClock) -> None:
    """Garbage in rate-limit headers changes nothing."""
    limiter = RateLimiter(rpm=10, tpm=6000, clock=clock)
    limiter.observe(
        {
            "x-ratelimit-limit-tokens": "lots",
            "x-ratelimit-remaining-tokens": "-5",
            "x-ratelimit-reset-tokens": "soon",
            "content-type": "application/json",
        }
    )
    stats = limiter.snapshot()
    assert stats.tpm_limit == 6000
    assert stats.tokens_available == pytest.approx(6000)
    assert stats.server_reset_tokens_s is None


async def test_penalize_blocks_until_retry_after(clock: FakeClock) -> None:
    """After a 429 nothing is sent until the hint has passed, even with tokens in the bucket."""
    limiter = RateLimiter(rpm=None, tpm=6000, clock=clock)
    limiter.penalize(2.5)
    assert limiter.snapshot().blocked_for_s == pytest.approx(2.5)
    await limiter.acquire(10)
    assert sum(clock.sleeps) == pytest.approx(2.5)
    assert limiter.snapshot().penalties == 1


async def test_penalize_extends_never_shortens(clock: FakeClock) -> None:
    """A shorter second hint does not cut a longer pause short."""
    limiter = RateLimiter(rpm=None, tpm=None, clock=clock)
    limiter.penalize(5)
    limiter.penalize(1)
    await limiter.acquire(1)
    assert sum(clock.sleeps) == pytest.approx(5.0)


async def test_keeps_the_pipe_full_at_97_percent_of_tpm(clock: FakeClock) -> None:
    """Over ten busy minutes the limiter admits >= 97% (and at most 100%) of the TPM limit."""
    tpm = 200_000
    limiter = RateLimiter(rpm=5000, tpm=tpm, clock=clock)
    await limiter.acquire(tpm)  # use the initial full bucket up, measure the steady state
    start = clock.monotonic()
    admitted = 0
    sizes = [850, 3100, 1200, 4700, 990, 2300]
    i = 0
    while clock.monotonic() - start < 600:
        tokens = sizes[i % len(sizes)]
        await limiter.acquire(tokens)
        admitted += tokens
        i += 1
    minutes = (clock.monotonic() - start) / 60
    assert 0.97 <= admitted / (tpm * minutes) <= 1.0 + max(sizes) / (tpm * minutes)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("6ms", 0.006),
        ("3.114s", 3.114),
        ("1m30.5s", 90.5),
        ("0s", 0.0),
        ("0", 0.0),
        ("1h2m3s", 3723.0),
        ("500us", 0.0005),
        ("250µs", 0.00025),
        ("20ns", 2e-8),
        (".5s", 0.5),
        ("-1.5s", -1.5),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    """Reset headers are parsed as Go durations."""
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "s", "1x", "1.5.5s", "1s 2s", "ms", "+"])
def test_bad_go_durations_raise(text: str) -> None:
    """Malformed durations raise ValueError."""
    with pytest.raises(ValueError):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("headers", "message", "expected"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9"}, None, 1.5),
        ({"Retry-After": "7"}, None, 7.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, None, 30.0),
        ({}, "Limit 30000, Used 29937, Requested 385. Please try again in 644ms. Visit", 0.644),
        ({}, "Please try again in 3.89s.", 3.89),
        ({}, "Please try again in 1m2s.", 62.0),
        ({"retry-after": "-3"}, None, 0.0),
        ({"retry-after": "whenever"}, None, None),
        ({}, "slow down", None),
    ],
)
def test_retry_after_hints(
    headers: dict[str, str], message: str | None, expected: float | None
) -> None:
    """retry-after-ms wins over retry-after (seconds or date); 429 text is the last resort."""
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    got = retry_after_s(headers, message, now=now)
    assert got == (None if expected is None else pytest.approx(expected))


def test_one_limiter_serves_successive_event_loops(clock: FakeClock) -> None:
    """A limiter shared by chunks that each run their own event loop keeps working."""
    limiter = RateLimiter(rpm=None, tpm=60, clock=clock)

    async def burst() -> None:
        await asyncio.gather(*(limiter.acquire(30) for _ in range(3)))

    asyncio.run(burst())
    asyncio.run(burst())
    assert limiter.snapshot().tokens_total == 180
    assert sum(clock.sleeps) == pytest.approx(120.0)


async def test_stats_dict_for_progress_display(clock: FakeClock) -> None:
    """stats() is a plain dict with tokens/min used, limits and utilisation."""
    limiter = RateLimiter(rpm=100, tpm=10_000, clock=clock)
    await limiter.acquire(2500)
    stats = limiter.stats()
    assert stats["tokens_per_min"] == 2500
    assert stats["requests_per_min"] == 1
    assert stats["tpm_utilisation"] == pytest.approx(0.25)
    assert (limiter.rpm, limiter.tpm) == (100, 10_000)
    limiter.observe({"x-ratelimit-limit-tokens": "20000"})
    assert limiter.tpm == 20_000
