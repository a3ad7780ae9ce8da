"""One account's rate limit shared by every runner on it, through the database they share.

OpenAI meters an account with one RPM and one TPM bucket per model, but each runner (a
``contentgen run`` process, a Prefect flow run) has its own client-side limiter that starts
with a full bucket: two runners on one account each plan for the whole limit and draw 429s.
So each runner keeps a row per model in ``limiter_members`` (account, model, worker, demand,
heartbeat) and, on its database thread, beats every few seconds: it stores its demand and reads
its share, ``its demand / the sum of the live members' demands``, by which its limiter scales
the account's limits.

Why by demand and not an equal split: a runner that is nearly done (a few requests left) or
waiting (for a primer, a budget, a batch) needs little of the limit, and an equal split would
strand its part while the others throttle themselves. Demand is the runner's own estimate of
what it could use (e.g. tokens per minute of work ready to send); demand 0 means idle for that
model: its row is deleted and the others divide the whole limit. Together the members still
fill the limit, since shares add up to 1.

A runner that ends calls ``leave`` and its rows go at once. A runner that is killed (kill -9,
a lost machine) cannot: its rows stop being refreshed, are ignored once their heartbeat is
older than ``ttl_s`` and are deleted by the next member that notices, so the others take its
share after at most ``ttl_s`` plus one beat. Heartbeats use each host's clock (like job leases),
so hosts' clocks must agree to well within ``ttl_s``.

The account is an opaque key (``account_key``): a hash of the endpoint and of the account the
response cache uses (organization and project when set, else the API key), never the key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable, Mapping

from sqlalchemy.orm import Session, sessionmaker

from pipeline.client import CacheScope
from pipeline.db import (
    Member,
    delete_members,
    prune_members,
    read_members,
    upsert_members,
    utcnow,
)

__all__ = ["LimitShare", "Member", "account_key", "is_live", "shares"]

# Salt of the account key, so it equals no other hash of the same scope.
_ACCOUNT_SALT = b"contentgen limit-share account\x00"


def account_key(scope: CacheScope) -> str:
    """The key naming the rate limit requests of ``scope`` draw on (32 hex digits).

    The same endpoint and account as the response cache's scope (``pipeline.client.wiring.
    cache_scope(sdk)``): runners sending to one server with one organization/project (or one
    API key when neither is set) share a limit; a simulator and OpenAI never do.
    """
    material = f"{scope.endpoint}\n{scope.account}".encode()
    return hashlib.sha256(_ACCOUNT_SALT + material).hexdigest()[:32]


def is_live(member: Member, *, now: dt.datetime, ttl_s: float) -> bool:
    """True when ``member`` beat within ``ttl_s`` of ``now``."""
    return member.heartbeat_at >= now - dt.timedelta(seconds=ttl_s)


def shares(
    worker: str,
    demand: Mapping[str, float],
    members: Iterable[Member],
    *,
    now: dt.datetime,
    ttl_s: float,
) -> dict[str, float]:
    """``worker``'s share of each model in ``demand``: its demand over the live total.

    ``members`` are the stored rows (stale ones, older than ``ttl_s``, are ignored);
    ``worker``'s own demand is taken from ``demand``, not from its row. Alone it gets 1.0;
    with demand 0 it gets 0.0.
    """
    others: dict[str, float] = {}
    for member in members:
        if member.worker == worker or member.demand <= 0:
            continue
        if is_live(member, now=now, ttl_s=ttl_s):
            others[member.model] = others.get(member.model, 0.0) + member.demand
    result: dict[str, float] = {}
    for model, mine in demand.items():
        result[model] = mine / (mine + others.get(model, 0.0)) if mine > 0 else 0.0
    return result


def _checked(demand: Mapping[str, float]) -> dict[str, float]:
    for model, value in demand.items():
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"demand for {model!r} must be a finite number >= 0, got {value!r}")
    return dict(demand)


class LimitShare:
    """This worker's membership in an account's shared rate limit (see the module docstring).

    Synchronous: meant for the runner's database thread. ``beat`` costs two statements (an
    upsert and a read) in one transaction, plus a delete when a model went idle and a short
    prune when a stale row was seen.

    Parameters:
        sessions: the run's session factory.
        account: ``account_key`` of the endpoint and credentials the runner sends with.
        worker: this runner's id (unique among live runners, e.g. the lease owner).
        ttl_s: a member whose last beat is older than this is ignored and pruned; beat
            several times per ``ttl_s``.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        account: str,
        worker: str,
        ttl_s: float = 10.0,
    ) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")
        self._sessions = sessions
        self.account = account
        self.worker = worker
        self.ttl_s = ttl_s
        self._stored: set[str] = set()  # models this worker may have a row for

    def beat(self, demand: Mapping[str, float], now: dt.datetime | None = None) -> dict[str, float]:
        """Store this worker's demand per model, refresh its heartbeat, return its shares.

        ``demand`` maps models to a weight >= 0 (0: idle, the row is deleted); models left
        out are not touched (their rows expire after ``ttl_s`` unless beaten again). Returns
        the share (0.0-1.0) of every model in ``demand``. ``now`` is naive UTC (default: the
        host's clock).
        """
        wanted = _checked(demand)
        now = now or utcnow()
        busy = {model: d for model, d in wanted.items() if d > 0}
        idle = {model for model, d in wanted.items() if d <= 0} & self._stored
        self._stored |= busy.keys()  # kept if the transaction fails half-way
        with self._sessions.begin() as session:
            upsert_members(session, account=self.account, worker=self.worker, demand=busy, now=now)
            if idle:
                delete_members(session, account=self.account, worker=self.worker, models=idle)
            members = read_members(session, account=self.account, models=busy.keys())
        self._stored -= idle
        if any(not is_live(m, now=now, ttl_s=self.ttl_s) for m in members):
            # Its own transaction, after this worker's rows are committed: holding them while
            # pruning would make this worker's rows wait on its prune (and others' beats on it).
            with self._sessions.begin() as session:
                before = now - dt.timedelta(seconds=self.ttl_s)
                prune_members(session, account=self.account, before=before)
        return shares(self.worker, wanted, members, now=now, ttl_s=self.ttl_s)

    def leave(self) -> None:
        """Delete this worker's rows (at run end): the others take the whole limit."""
        with self._sessions.begin() as session:
            delete_members(session, account=self.account, worker=self.worker)
        self._stored.clear()
