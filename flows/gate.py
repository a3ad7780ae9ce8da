"""The account's token rate limit, shared by all workers via a Prefect global concurrency limit.

The limit is configured as a rate limit (``slot_decay_per_second``) where one slot is
``TOKENS_PER_SLOT`` tokens, for example for a 2,000,000 tokens/min account::

    prefect gcl create contentgen-openai-tokens --limit 2000 --slot-decay-per-second 33.3

Flows take it in blocks (a chunk's estimated tokens, see ``flows.chunks``), never per request:
a ``rate_limit()`` call costs 0.1-0.6 s. A block larger than the whole limit is taken in
limit-sized pieces so it cannot wait forever. Without such a limit on the server the gate is off.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound

TOKENS_PER_SLOT = 1_000
DEFAULT_TOKEN_LIMIT = "contentgen-openai-tokens"

log = logging.getLogger("contentgen.flows")


@dataclass(frozen=True)
class PrefectTokenGate:
    """Takes blocks of tokens from the global concurrency limit ``name`` of ``slots`` slots."""

    name: str
    slots: int
    tokens_per_slot: int = TOKENS_PER_SLOT

    def slots_for(self, tokens: int) -> list[int]:
        """The ``occupy`` values of the ``rate_limit`` calls that take ``tokens``."""
        needed = math.ceil(max(tokens, 0) / self.tokens_per_slot)
        pieces = []
        while needed > 0:
            piece = min(needed, self.slots)
            pieces.append(piece)
            needed -= piece
        return pieces

    def take(self, tokens: int) -> None:
        """Block until ``tokens`` fit under the shared rate limit, then take them."""
        for occupy in self.slots_for(tokens):
            rate_limit(self.name, occupy=occupy, strict=True)


def open_token_gate(name: str | None) -> PrefectTokenGate | None:
    """The gate for the global concurrency limit ``name``, or None when there is none to use.

    Raises ``ValueError`` when the limit exists but is not a rate limit (no slot decay): it
    would then never give slots back and every run would wait forever.
    """
    if not name:
        return None
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            log.info("no global concurrency limit %r on the Prefect server: token gate off", name)
            return None
    if not limit.active or limit.limit <= 0:
        log.info("global concurrency limit %r is inactive: token gate off", name)
        return None
    if not limit.slot_decay_per_second:
        raise ValueError(
            f"global concurrency limit {name!r} has no slot decay, so it is not a rate limit: "
            f"recreate it with --slot-decay-per-second (slots per second = tokens per minute / "
            f"{TOKENS_PER_SLOT} / 60)"
        )
    return PrefectTokenGate(name, slots=limit.limit)
