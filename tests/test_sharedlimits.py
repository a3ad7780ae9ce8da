"""Two runs on one account keep their limiters at their shares while they work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from pipeline.client.clock import FakeClock
from pipeline.client.limiter import ModelLimiters
from pipeline.limitshare import LimitShare
from pipeline.sharedlimits import SharedLimits

MODEL = "gpt-4.1-mini"


async def on_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def run_on(sessions: sessionmaker[Session], worker: str) -> tuple[SharedLimits, ModelLimiters]:
    limiters = ModelLimiters(rpm=600, tpm=60_000, clock=FakeClock())
    share = LimitShare(sessions, account="acct", worker=worker)
    return SharedLimits(share, limiters, on_thread), limiters


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
