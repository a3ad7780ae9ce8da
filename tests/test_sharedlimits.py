"""Two runs on one account keep their limiters at their shares while they work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from pipeline.client.clock import FakeClock
from pipeline.client.limiter import ModelLimiters
from pipeline.limits.share import LimitShare
from pipeline.limits.sync import SharedLimits

MODEL = "gpt-4.1-mini"


async def on_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def run_on(sessions: sessionmaker[Session], worker: str) -> tuple[SharedLimits, ModelLimiters]:
    limiters = ModelLimiters(rpm=600, tpm=60_000, clock=FakeClock())
    share = LimitShare(sessions, account="acct", worker=worker)
    return SharedLimits(share, limiters, on_thread, interval_s=0.05), limiters


async def test_two_runs_split_the_limit_and_one_leaving_frees_it(
    sessions: sessionmaker[Session],
) -> None:
    first, first_limits = run_on(sessions, "host:1")
    second, second_limits = run_on(sessions, "host:2")
    assert first.want([MODEL]) and second.want([MODEL])
    assert not first.want([MODEL])  # nothing new: no beat needed before sending
    await first.beat()
    await second.beat()
    await first.beat()
    for limits in (first_limits, second_limits):
        stats = limits.for_model(MODEL).snapshot()
        assert stats.share == 0.5
        assert stats.tokens_available == 30_000  # half the account's bucket
    await second.beat(active=False)  # only in-flight requests left: its share goes back
    await first.beat()
    assert first_limits.for_model(MODEL).snapshot().share == 1.0
    await second.leave()
    await first.beat()
    assert first.shares == {MODEL: 1.0}


async def test_a_run_alone_keeps_the_whole_limit(sessions: sessionmaker[Session]) -> None:
    alone, limits = run_on(sessions, "host:3")
    alone.want([MODEL, "gpt-5"])
    await alone.beat()
    assert alone.shares == {MODEL: 1.0, "gpt-5": 1.0}
    assert limits.for_model(MODEL).snapshot().tokens_available == 60_000


async def test_a_run_joining_others_waits_one_beat_before_sending(
    sessions: sessionmaker[Session],
) -> None:
    first, _ = run_on(sessions, "host:4")
    first.want([MODEL])
    await first.join()  # alone: no wait
    second, second_limits = run_on(sessions, "host:5")
    second.want([MODEL])
    started = asyncio.get_running_loop().time()
    await second.join()
    assert asyncio.get_running_loop().time() - started >= second.interval_s
    assert second.shares == {MODEL: 0.5}
    assert second_limits.for_model(MODEL).snapshot().share == 0.5


def test_a_shared_limiter_reads_the_accounts_level_as_everyones() -> None:
    """What the server says is left is the account's: a runner with a quarter of it takes a
    quarter, or four runners starting together would each send all of it."""
    from pipeline.client.limiter import RateLimiter

    clock = FakeClock()
    limiter = RateLimiter(rpm=None, tpm=None, clock=clock)
    limiter.set_share(0.25)
    limiter.observe(
        {"x-ratelimit-limit-tokens": "1000000", "x-ratelimit-remaining-tokens": "200000"},
        sent_at=clock.monotonic(),
    )
    stats = limiter.snapshot()
    assert stats.tpm_limit == 1_000_000
    assert stats.tokens_available == 50_000
