"""A run's limiters kept at their share of the account while the run works (``limitshare``).

Every ``interval_s`` (and before the first request of a model) the run tells the database
which models it has work for and scales each model's limiter to the share it gets back, so
several runners on one account fill its limit together instead of each drawing the whole of
it. A runner with only in-flight requests left has no demand: the others take the whole limit.
A runner joining others waits one interval before its first request, until they have made
room for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pipeline.client import ModelLimiters
from pipeline.errors import DatabaseError
from pipeline.limits.share import LimitShare

log = logging.getLogger("contentgen.limits")

BEAT_S = 2.0

DbCall = Callable[..., Awaitable[Any]]


class SharedLimits:
    """Beats ``share`` for the models this run sends to; see the module docstring."""

    def __init__(
        self,
        share: LimitShare,
        limiters: ModelLimiters,
        db_call: DbCall,
        *,
        interval_s: float = BEAT_S,
    ) -> None:
        self._share = share
        self._limiters = limiters
        self._db_call = db_call
        self.interval_s = interval_s
        self._models: set[str] = set()
        self._joining: set[str] = set()
        self.shares: dict[str, float] = {}

    def want(self, models: Iterable[str]) -> bool:
        """Note the models of newly planned work; True when one is new (``join`` before
        sending)."""
        new = set(models) - self._models
        self._models |= new
        self._joining |= new
        return bool(new)

    async def join(self) -> None:
        """Beat for the new models; where others already share one, wait one beat interval
        (and beat again) before sending: until they have beaten they still use the whole of
        it, and sending at once would overdraw the account."""
        joining, self._joining = self._joining, set()
        await self.beat()
        if any(self.shares.get(model, 1.0) < 1.0 for model in joining):
            await asyncio.sleep(self.interval_s)
            await self.beat()

    async def beat(self, active: bool = True) -> None:
        """Store this run's demand and apply the shares; a database error only logs (the run
        keeps the shares it had, and meets the outage in its own calls)."""
        demand = {model: 1.0 if active else 0.0 for model in sorted(self._models)}
        if not demand:
            return
        try:
            shares: dict[str, float] = await self._db_call(self._share.beat, demand)
        except DatabaseError as exc:  # the run meets the outage itself and says so once
            log.info("could not share the rate limit: %s", exc)
            return
        for model, share in shares.items():
            if share > 0:
                if share != self.shares.get(model):
                    log.info("rate limit of %s: this run uses %.0f%%", model, share * 100)
                self._limiters.for_model(model).set_share(share)
        self.shares = shares

    async def run(self, active: Callable[[], bool]) -> None:
        """Beat every ``interval_s`` until cancelled; ``active()`` says whether work is left."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self.beat(active())

    async def leave(self) -> None:
        """Give the share back at once (rows of a killed run expire on their own)."""
        try:
            await self._db_call(self._share.leave)
        except DatabaseError as exc:  # the run meets the outage itself and says so once
            log.info("could not give the rate limit share back: %s", exc)
