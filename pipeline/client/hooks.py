"""What a caller learns about each attempt of a request, and how it can hold one back.

``ResponsesClient.generate`` takes an ``AttemptHooks`` so the run can see an attempt the
moment it happens without the client knowing why: the run journals "sending job 17" before
the request goes out and "answering" when its answer arrives (so a worker killed by one
request can be told from its bystanders, ``pipeline.run.journal``), and keeps the budget
honest for attempts the server may bill although no answer came back (``retrying``).

``AttemptTally`` counts, per request, the attempts abandoned after they may have reached the
server (a read timeout, a connection lost after sending): their cost is unknown, at most the
request's worst case each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pipeline.client.breaker import RunStopping


class AttemptHooks(Protocol):
    """Callbacks around each attempt of one request (all on the event loop)."""

    async def sending(self) -> None:
        """The request is about to go on the wire (the limiter admitted it); may wait a
        moment first (to keep a suspect request's send apart from the others)."""

    def answering(self) -> None:
        """An answer's headers arrived; its body is being read."""

    def ended(self) -> None:
        """The attempt is over, whatever came of it."""

    async def retrying(self) -> bool:
        """Before an attempt that follows one abandoned after sending: may it go? False ends
        the request unsent (``BudgetRefused``)."""


class BudgetRefused(RunStopping):
    """A request's next attempt was refused by the run's budget: the request ends unsent and
    its job goes back to the queue (the abandoned attempts stay counted at their worst case)."""


@dataclass
class AttemptTally:
    """What one request's attempts came to so far, for its ``Outcome``."""

    hooks: AttemptHooks | None = None
    abandoned: int = 0  # attempts that may have been billed and brought no answer
    owed: int = 0  # abandoned attempts whose next attempt has not been cleared yet

    def abandon(self) -> None:
        """An attempt that may have reached the server ended without an answer."""
        self.abandoned += 1
        self.owed += 1

    async def clear(self) -> None:
        """Clear the next attempt with ``hooks.retrying`` if one was abandoned before it."""
        if self.owed and self.hooks is not None:
            self.owed = 0
            if not await self.hooks.retrying():
                raise BudgetRefused("the budget has no room for another attempt")
        self.owed = 0
