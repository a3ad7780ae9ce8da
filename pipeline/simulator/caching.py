"""The prompt-cache model of the three regimes in API-NOTES §1.5, chosen per model.

The regime and its numbers come from the model's ``PromptCachePolicy`` in the price table
(``config/pricing.toml`` ``[models]``); a model without one behaves as a lenient grid model
(``cache_min_tokens`` / ``cache_block_tokens`` from the config, retention ``in_memory`` or
``24h``).

Grid regime (models before GPT-5.6; API-NOTES §1.1, §9.2), handled here:

- A request is routed to one of ``cache_machines`` machines by a hash of the model, the first
  ``routing_prefix_tokens`` (256) prompt tokens and ``prompt_cache_key``. Overflow: when a
  ``prompt_cache_key`` has carried more than ``overflow_rpm`` (15) requests in the trailing
  60 s, counted **across all its prefixes** (§1.5), the extra ones go to another machine picked
  by the seeded RNG; without a key the count is per prefix head. ``overflow_per = "prefix"``
  counts per (prefix head, key) instead (the Dec 2025 wording). Each machine has its own cache.
- A prompt is cut into ``step``-token blocks (128; gpt-5.5: 2,048), each identified by a chain
  hash (hash of the previous block's hash and this block's ids), so a lookup is a walk over the
  prompt's blocks. A hit is the longest cached chain on the chosen machine, at least
  ``min_prefix`` (1,024; gpt-5.5: 2,048) long and leaving at least one uncached token, reported
  as a multiple of ``step``. Writes are free (``cache_write_tokens`` is 0).
- The prompt's blocks are written to the machine only after the request finishes (``write``),
  so simultaneous cold requests all miss.
- Entries expire after ``cache_ttl_s`` of idleness (``cache_extended_ttl_s`` with
  ``prompt_cache_retention: "24h"``, and by default on a model whose only accepted retention is
  ``24h``, i.e. gpt-5.5); a hit refreshes them. Entries are per model family.

Breakpoints regime (GPT-5.6 and later): ``breakpoints.BreakpointCache``, see its docstring.
The checks on the request fields of each regime are in ``cacheoptions``.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from dataclasses import dataclass, field

from pipeline.money import PriceTable, PromptCachePolicy, base_model_name
from pipeline.simulator.breakpoints import BreakpointCache, Entry, PlannedWrite
from pipeline.simulator.cacheoptions import CacheRequest, policy_for
from pipeline.simulator.clock import SimClock
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.prompt import RenderedPrompt, ids_bytes

_WINDOW_S = 60.0
_SWEEP_EVERY = 50_000


@dataclass
class CacheLookup:
    """Where a request went and what it found; pass it back to ``write`` when it finishes.

    Grid: ``machine`` (-1 when the prompt is too short) and the prompt's ``blocks``.
    Breakpoints: ``machine`` is -1, ``writes`` are the planned entries and
    ``cache_write_tokens`` what they bill.
    """

    model: str
    machine: int
    cached_tokens: int
    overflowed: bool
    ttl_s: float
    blocks: list[bytes] = field(default_factory=list)
    regime: str = "grid"
    writes: tuple[PlannedWrite, ...] = ()
    cache_write_tokens: int = 0


class PromptCache:
    """Per-machine grid caches with routing and overflow, and the breakpoint cache.

    ``prices`` gives each model's policy (None: every model is a lenient grid model).
    """

    def __init__(
        self, config: SimulatorConfig, clock: SimClock, prices: PriceTable | None = None
    ) -> None:
        self._config = config
        self._clock = clock
        self._prices = prices
        self._rng = random.Random(f"overflow-{config.seed}")
        self._machines: list[dict[tuple[str, bytes], Entry]] = [
            {} for _ in range(config.cache_machines)
        ]
        self._recent: dict[bytes, deque[float]] = {}
        self._writes = 0
        self.breakpoints = BreakpointCache(config, clock)

    def reconfigure(self, config: SimulatorConfig) -> None:
        """Use new knobs (TTLs, overflow rate); the machine count is fixed at creation."""
        self._config = config
        self.breakpoints.reconfigure(config)

    def policy(self, model: str) -> PromptCachePolicy:
        """The cache policy of ``model`` (the config's grid for a model without one)."""
        cfg = self._config
        return policy_for(
            self._prices, model, min_prefix=cfg.cache_min_tokens, step=cfg.cache_block_tokens
        )

    def chain(self, ids: list[int], size: int | None = None) -> list[bytes]:
        """Chain hashes of the prompt's full ``size``-token blocks (default: the config's)."""
        size = size or self._config.cache_block_tokens
        hashes: list[bytes] = []
        previous = b""
        for start in range(0, len(ids) - size + 1, size):
            previous = hashlib.blake2b(
                previous + ids_bytes(ids[start : start + size]), digest_size=16
            ).digest()
            hashes.append(previous)
        return hashes

    def _route(
        self, model: str, ids: list[int], key: str | None, overflow: bool
    ) -> tuple[int, bool]:
        head = ids_bytes(ids[: self._config.routing_prefix_tokens])
        route = hashlib.blake2b(
            model.encode() + b"\0" + (key or "").encode() + b"\0" + head, digest_size=16
        ).digest()
        machines = len(self._machines)
        home = int.from_bytes(route[:8], "big") % machines
        if not overflow or machines == 1:
            return home, False
        # ~15 requests/min per prompt_cache_key across all its prefixes; per prefix without one.
        counted = route
        if key and self._config.overflow_per == "key":
            counted = hashlib.blake2b(
                b"key\0" + model.encode() + b"\0" + key.encode(), digest_size=16
            ).digest()
        now = self._clock.now()
        window = self._recent.setdefault(counted, deque())
        while window and window[0] <= now - _WINDOW_S:
            window.popleft()
        window.append(now)
        if len(self._recent) > 100_000:
            self._recent = {k: v for k, v in self._recent.items() if v and v[-1] > now - _WINDOW_S}
        if len(window) <= self._config.overflow_rpm:
            return home, False
        other = self._rng.randrange(machines - 1)
        return (other if other < home else other + 1), True

    def _ttl(self, policy: PromptCachePolicy, retention: str | None) -> float:
        if retention is None:
            retention = "24h" if policy.retention == ("24h",) else "in_memory"
        cfg = self._config
        return cfg.cache_extended_ttl_s if retention == "24h" else cfg.cache_ttl_s

    def lookup(
        self,
        model: str,
        ids: list[int],
        key: str | None = None,
        retention: str | None = None,
        *,
        overflow: bool = True,
    ) -> CacheLookup:
        """Grid regime: route the prompt and find its longest cached prefix (no write yet)."""
        family = base_model_name(model)
        policy = self.policy(model)
        ttl = self._ttl(policy, retention)
        if len(ids) < policy.min_prefix:
            return CacheLookup(family, -1, 0, False, ttl)
        routing_key = key if policy.key_routes else None
        machine, overflowed = self._route(family, ids, routing_key, overflow)
        size = policy.step
        blocks = self.chain(ids, size)
        usable = min(len(blocks), (len(ids) - 1) // size)
        minimum = -(-policy.min_prefix // size)
        store = self._machines[machine]
        now = self._clock.now()
        hit = 0
        for count in range(usable, minimum - 1, -1):
            entry = store.get((family, blocks[count - 1]))
            if entry is not None and entry.alive(now):
                hit = count
                break
        for block in blocks[:hit]:
            entry = store.get((family, block))
            if entry is not None:
                entry.last_used = now
        return CacheLookup(family, machine, hit * size, overflowed, ttl, blocks)

    def lookup_breakpoints(
        self, model: str, prompt: RenderedPrompt, request: CacheRequest
    ) -> CacheLookup:
        """Breakpoints regime: the deepest cached candidate and the planned writes."""
        family = base_model_name(model)
        found = self.breakpoints.lookup(family, prompt, request)
        return CacheLookup(
            family,
            -1,
            found.cached_tokens,
            False,
            request.lifetime_s,
            regime="breakpoints",
            writes=found.writes,
            cache_write_tokens=found.cache_write_tokens,
        )

    def write(self, lookup: CacheLookup) -> None:
        """Store the request's prefix (call when the request finished)."""
        if lookup.regime == "breakpoints":
            self.breakpoints.write(lookup.model, lookup.writes)
            return
        if lookup.machine < 0 or not lookup.blocks:
            return
        store = self._machines[lookup.machine]
        now = self._clock.now()
        for block in lookup.blocks:
            key = (lookup.model, block)
            entry = store.get(key)
            if entry is None:
                store[key] = Entry(now, lookup.ttl_s)
            else:
                entry.last_used = now
                entry.ttl_s = max(entry.ttl_s, lookup.ttl_s)
        self._writes += len(lookup.blocks)
        if self._writes >= _SWEEP_EVERY:
            self._writes = 0
            for index in range(len(self._machines)):
                self._sweep(index, now)
        if len(store) > self._config.cache_max_blocks:
            self._sweep(lookup.machine, now)

    def _sweep(self, index: int, now: float) -> None:
        """Drop expired blocks; past ``cache_max_blocks``, also the least recently used quarter."""
        store = {k: e for k, e in self._machines[index].items() if e.alive(now)}
        cap = self._config.cache_max_blocks
        if len(store) > cap:
            keep = sorted(store.items(), key=lambda item: item[1].last_used)[-(cap * 3 // 4) :]
            store = dict(keep)
        self._machines[index] = store

    def entries(self) -> int:
        """Cached grid blocks over all machines plus breakpoint entries (expired ones included
        until swept)."""
        return sum(len(store) for store in self._machines) + self.breakpoints.entries()
