"""The prompt-cache model: machines, routing, overflow, 128-token blocks and idle expiry.

Rules (API-NOTES §1.1, §9.2):

- A request is routed to one of ``cache_machines`` machines by a hash of the model, the first
  ``routing_prefix_tokens`` (256) prompt tokens and ``prompt_cache_key``. When one such
  prefix+key pair has carried more than ``overflow_rpm`` (15) requests in the trailing 60 s, the
  extra ones go to another machine picked by the seeded RNG. Each machine has its own cache.
- A prompt is cut into 128-token blocks, each identified by a chain hash (hash of the previous
  block's hash and this block's ids), so a lookup is a walk over the prompt's blocks. A hit is
  the longest cached chain on the chosen machine, at least ``cache_min_tokens`` (1024) long and
  leaving at least one uncached token, reported as a multiple of 128.
- The prompt's blocks are written to the machine only after the request finishes (``write``),
  so simultaneous cold requests all miss.
- Entries expire after ``cache_ttl_s`` of idleness (``cache_extended_ttl_s`` when written with
  ``prompt_cache_retention: "24h"``); a hit refreshes them. Entries are per model family.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from dataclasses import dataclass, field

from pipeline.pricing import base_model_name
from pipeline.simulator.clock import SimClock
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.prompt import ids_bytes

_WINDOW_S = 60.0
_SWEEP_EVERY = 50_000


@dataclass
class CacheLookup:
    """Where a request went and what it found; pass it back to ``write`` when it finishes."""

    model: str
    machine: int
    cached_tokens: int
    overflowed: bool
    ttl_s: float
    blocks: list[bytes] = field(default_factory=list)


@dataclass
class _Entry:
    last_used: float
    ttl_s: float


class PromptCache:
    """Per-machine prefix caches with routing and overflow; all times from ``clock``."""

    def __init__(self, config: SimulatorConfig, clock: SimClock) -> None:
        self._config = config
        self._clock = clock
        self._rng = random.Random(f"overflow-{config.seed}")
        self._machines: list[dict[tuple[str, bytes], _Entry]] = [
            {} for _ in range(config.cache_machines)
        ]
        self._recent: dict[bytes, deque[float]] = {}
        self._writes = 0

    def reconfigure(self, config: SimulatorConfig) -> None:
        """Use new knobs (TTLs, overflow rate); the machine count is fixed at creation."""
        self._config = config

    def chain(self, ids: list[int]) -> list[bytes]:
        """Chain hashes of the prompt's full 128-token blocks, oldest first."""
        size = self._config.cache_block_tokens
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
        now = self._clock.now()
        window = self._recent.setdefault(route, deque())
        while window and window[0] <= now - _WINDOW_S:
            window.popleft()
        window.append(now)
        if len(self._recent) > 100_000:
            self._recent = {k: v for k, v in self._recent.items() if v and v[-1] > now - _WINDOW_S}
        if len(window) <= self._config.overflow_rpm:
            return home, False
        other = self._rng.randrange(machines - 1)
        return (other if other < home else other + 1), True

    def lookup(
        self,
        model: str,
        ids: list[int],
        key: str | None = None,
        retention: str | None = None,
        *,
        overflow: bool = True,
    ) -> CacheLookup:
        """Route the prompt and find its longest cached prefix (no write yet)."""
        family = base_model_name(model)
        extended = retention == "24h"
        ttl = self._config.cache_extended_ttl_s if extended else self._config.cache_ttl_s
        if len(ids) < self._config.cache_min_tokens:
            return CacheLookup(family, -1, 0, False, ttl)
        machine, overflowed = self._route(family, ids, key, overflow)
        blocks = self.chain(ids)
        size = self._config.cache_block_tokens
        usable = min(len(blocks), (len(ids) - 1) // size)
        minimum = -(-self._config.cache_min_tokens // size)
        store = self._machines[machine]
        now = self._clock.now()
        hit = 0
        for count in range(usable, minimum - 1, -1):
            entry = store.get((family, blocks[count - 1]))
            if entry is not None and now - entry.last_used <= entry.ttl_s:
                hit = count
                break
        for block in blocks[:hit]:
            entry = store.get((family, block))
            if entry is not None:
                entry.last_used = now
        return CacheLookup(family, machine, hit * size, overflowed, ttl, blocks)

    def write(self, lookup: CacheLookup) -> None:
        """Store the request's prefix blocks on its machine (call when the request finished)."""
        if lookup.machine < 0 or not lookup.blocks:
            return
        store = self._machines[lookup.machine]
        now = self._clock.now()
        for block in lookup.blocks:
            key = (lookup.model, block)
            entry = store.get(key)
            if entry is None:
                store[key] = _Entry(now, lookup.ttl_s)
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
        store = {k: e for k, e in self._machines[index].items() if now - e.last_used <= e.ttl_s}
        cap = self._config.cache_max_blocks
        if len(store) > cap:
            keep = sorted(store.items(), key=lambda item: item[1].last_used)[-(cap * 3 // 4) :]
            store = dict(keep)
        self._machines[index] = store

    def entries(self) -> int:
        """Cached blocks over all machines (expired ones included until swept)."""
        return sum(len(store) for store in self._machines)
