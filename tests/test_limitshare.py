"""Runners on one account divide its rate limit by demand through the database they share."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.client.cache import LOCAL_SCOPE, CacheScope
from pipeline.db.models import LimiterMember
from pipeline.limits.share import LimitShare, Member, account_key, shares

T0 = dt.datetime(2026, 12, 4, 12, 0, 0)
ACCOUNT = "acct"
MODEL = "gpt-4.1-mini"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def member(worker: str, demand: float, age_s: float = 0.0, model: str = MODEL) -> Member:
    return Member(model=model, worker=worker, demand=demand, heartbeat_at=at(-age_s))


def rows(sessions: sessionmaker[Session]) -> list[tuple[str, str, str, float]]:
    m = LimiterMember
    with sessions() as session:
        found = session.execute(select(m.account, m.model, m.worker, m.demand)).all()
    return sorted((r.account, r.model, r.worker, r.demand) for r in found)


# --- pure logic -------------------------------------------------------------------------------


def test_alone_gets_the_whole_limit() -> None:
    """A worker with no other live member gets 1.0, whatever its own stored row says."""
    assert shares("a", {MODEL: 5.0}, [member("a", 99.0)], now=T0, ttl_s=10) == {MODEL: 1.0}
    assert shares("a", {MODEL: 5.0}, [], now=T0, ttl_s=10) == {MODEL: 1.0}


def test_share_is_demand_over_live_total() -> None:
    """Equal demands split evenly; 3:1 gives 0.75; other models and idle rows do not count."""
    others = [member("b", 1.0), member("c", 0.0), member("d", 7.0, model="gpt-5")]
    assert shares("a", {MODEL: 1.0}, others, now=T0, ttl_s=10) == {MODEL: 0.5}
    assert shares("a", {MODEL: 3.0}, others, now=T0, ttl_s=10) == {MODEL: 0.75}


def test_idle_worker_gets_nothing() -> None:
    """Demand 0 is a share of 0.0, and everything else of the model goes to the others."""
    assert shares("a", {MODEL: 0.0}, [member("b", 1.0)], now=T0, ttl_s=10) == {MODEL: 0.0}


def test_stale_member_is_ignored() -> None:
    """A member whose heartbeat is older than ttl_s no longer counts; one at exactly ttl_s does."""
    assert shares("a", {MODEL: 1.0}, [member("b", 1.0, age_s=10.5)], now=T0, ttl_s=10) == {
        MODEL: 1.0
    }
    assert shares("a", {MODEL: 1.0}, [member("b", 1.0, age_s=10)], now=T0, ttl_s=10) == {MODEL: 0.5}


@given(st.lists(st.floats(min_value=0.001, max_value=1e9), min_size=1, max_size=8))
def test_live_shares_add_up_to_one(demands: list[float]) -> None:
    """Whatever the demands, the live members' shares of a model add up to the whole limit."""
    table = [member(f"w{i}", d) for i, d in enumerate(demands)]
    total = sum(shares(m.worker, {MODEL: m.demand}, table, now=T0, ttl_s=10)[MODEL] for m in table)
    assert total == pytest.approx(1.0)


def test_account_key_names_endpoint_and_account() -> None:
    """Same endpoint and credentials: same key; another key or endpoint: another; no secret."""
    scope = CacheScope.of("https://api.openai.com/v1/", api_key="sk-secret")
    same = CacheScope.of("https://API.openai.com:443/v1", api_key="sk-secret")
    assert account_key(scope) == account_key(same)
    assert len(account_key(scope)) == 32
    assert "sk-secret" not in account_key(scope)
    assert account_key(scope) != account_key(CacheScope.of(None, api_key="sk-other"))
    assert account_key(scope) != account_key(
        CacheScope.of("http://127.0.0.1:8000/v1", api_key="sk-secret")
    )
    assert account_key(LOCAL_SCOPE) != account_key(scope)


def test_bad_demand_is_refused(sessions: sessionmaker[Session]) -> None:
    """A negative or non-finite demand is a programming error, refused before any write."""
    share = LimitShare(sessions, account=ACCOUNT, worker="a")
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="demand"):
            share.beat({MODEL: bad}, now=T0)
    assert rows(sessions) == []


# --- on the database ---------------------------------------------------------------------------


def test_worker_alone_gets_one(sessions: sessionmaker[Session]) -> None:
    """The first member of an account gets the whole limit and is stored with its demand."""
    share = LimitShare(sessions, account=ACCOUNT, worker="a")
    assert share.beat({MODEL: 4.0, "gpt-5": 1.0}, now=T0) == {MODEL: 1.0, "gpt-5": 1.0}
    assert rows(sessions) == [(ACCOUNT, MODEL, "a", 4.0), (ACCOUNT, "gpt-5", "a", 1.0)]


def test_two_workers_with_equal_demand_get_half(sessions: sessionmaker[Session]) -> None:
    """Two members of one account with equal demand get 0.5 each; demand moves with beats."""
    a = LimitShare(sessions, account=ACCOUNT, worker="a")
    b = LimitShare(sessions, account=ACCOUNT, worker="b")
    a.beat({MODEL: 2.0}, now=at(0))
    assert b.beat({MODEL: 2.0}, now=at(1)) == {MODEL: 0.5}
    assert a.beat({MODEL: 2.0}, now=at(2)) == {MODEL: 0.5}
    assert a.beat({MODEL: 6.0}, now=at(3)) == {MODEL: 0.75}
    assert b.beat({MODEL: 2.0}, now=at(4)) == {MODEL: 0.25}


def test_idle_worker_gives_its_share_back(sessions: sessionmaker[Session]) -> None:
    """A member that beats demand 0 gets 0.0, loses its row, and the other gets 1.0."""
    a = LimitShare(sessions, account=ACCOUNT, worker="a")
    b = LimitShare(sessions, account=ACCOUNT, worker="b")
    a.beat({MODEL: 1.0}, now=at(0))
    b.beat({MODEL: 1.0}, now=at(0))
    assert b.beat({MODEL: 0.0}, now=at(1)) == {MODEL: 0.0}
    assert rows(sessions) == [(ACCOUNT, MODEL, "a", 1.0)]
    assert a.beat({MODEL: 1.0}, now=at(2)) == {MODEL: 1.0}


def test_stale_member_is_ignored_then_pruned(sessions: sessionmaker[Session]) -> None:
    """A killed member (no more beats) counts until ttl_s, then is ignored and deleted."""
    a = LimitShare(sessions, account=ACCOUNT, worker="a", ttl_s=10)
    killed = LimitShare(sessions, account=ACCOUNT, worker="killed", ttl_s=10)
    killed.beat({MODEL: 1.0}, now=at(0))
    assert a.beat({MODEL: 1.0}, now=at(9)) == {MODEL: 0.5}
    assert a.beat({MODEL: 1.0}, now=at(11)) == {MODEL: 1.0}
    assert rows(sessions) == [(ACCOUNT, MODEL, "a", 1.0)]


def test_leave_frees_the_share(sessions: sessionmaker[Session]) -> None:
    """A member that leaves deletes its rows at once; the other gets the whole limit."""
    a = LimitShare(sessions, account=ACCOUNT, worker="a")
    b = LimitShare(sessions, account=ACCOUNT, worker="b")
    a.beat({MODEL: 1.0, "gpt-5": 1.0}, now=at(0))
    assert b.beat({MODEL: 1.0}, now=at(0)) == {MODEL: 0.5}
    a.leave()
    assert rows(sessions) == [(ACCOUNT, MODEL, "b", 1.0)]
    assert b.beat({MODEL: 1.0}, now=at(1)) == {MODEL: 1.0}


def test_accounts_do_not_share(sessions: sessionmaker[Session]) -> None:
    """Members of another account, with the same model and worker id, are not counted."""
    LimitShare(sessions, account="other", worker="b").beat({MODEL: 1.0}, now=T0)
    LimitShare(sessions, account="other", worker="a").beat({MODEL: 1.0}, now=T0)
    assert LimitShare(sessions, account=ACCOUNT, worker="a").beat({MODEL: 1.0}, now=T0) == {
        MODEL: 1.0
    }


def test_concurrent_beats_do_not_fail(sessions: sessionmaker[Session]) -> None:
    """Workers beating, going idle, expiring and leaving from threads at once never error."""
    workers = 6
    beats = 15
    start = threading.Barrier(workers)
    errors: list[BaseException] = []
    last: dict[str, float] = {}

    def run(index: int) -> None:
        share = LimitShare(sessions, account=ACCOUNT, worker=f"w{index}", ttl_s=10)
        try:
            start.wait()
            for step in range(beats):
                # Every third worker beats late now and then, so others see it stale and prune.
                when = at(step * (3 if index % 3 == 0 and step % 5 == 4 else 1))
                demand = {MODEL: 1.0 + index, "gpt-5": 0.0 if step % 4 == 3 else 1.0}
                got = share.beat(demand, now=when)
                assert set(got) == {MODEL, "gpt-5"}
                assert all(0.0 <= v <= 1.0 for v in got.values())
            if index % 2:
                share.leave()
            else:
                last[share.worker] = share.beat({MODEL: 1.0 + index}, now=at(beats))[MODEL]
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    with sessions() as session:
        left = session.scalar(
            select(func.count()).select_from(LimiterMember).where(LimiterMember.worker == "w1")
        )
    assert left == 0
    assert len(last) == workers // 2
