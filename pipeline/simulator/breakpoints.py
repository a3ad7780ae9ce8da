"""The GPT-5.6+ prompt cache: breakpoints, exact boundaries, paid writes (API-NOTES §1.5).

One cache per model family, no machines and no overflow: routing is automatic and
``prompt_cache_key`` is accounting only. An entry is the hash of ``ids[:position]`` for a
breakpoint position (see ``prompt`` for how positions are counted).

- Lookup (at arrival) walks the candidate positions: the first 2 and the latest 50 explicit
  breakpoints; in implicit mode also the implicit breakpoint (end of the latest user message),
  up to 20 message endings before it and the end of the initial developer block. The hit is
  the deepest candidate of at least ``min_prefix`` tokens whose entry is alive;
  ``cached_tokens`` is exactly that position (not floored to any grid).
- Writes: in implicit mode the implicit breakpoint takes one of the ``max_writes`` (4) slots,
  the remaining slots go to explicit breakpoints; explicit mode has no implicit breakpoint, so
  with no explicit breakpoint nothing is written. Only positions of at least ``min_prefix``,
  deeper than the hit and not cached are written. ``cache_write_tokens`` = deepest written
  position - ``cached_tokens``. Which explicit breakpoints get the slots: the **latest** ones,
  as the SDK's ``PromptCacheOptions.mode`` docstring says ("writes up to the latest three
  explicit breakpoints" in implicit mode, "the latest four" in explicit mode); API-NOTES §1.5
  gives only the count.
- An entry lives its lifetime (``prompt_cache_options.ttl``, or the breakpoint's own ``ttl``:
  30 min) after its last write or read; a hit refreshes it.

INFERENCES (not stated by API-NOTES §1.5): what is written is decided at arrival, from what
was cached then, and becomes visible only when the request finishes (as on the grid), so
concurrent cold requests all miss and each pays its writes; a hit also refreshes the cached
shallower candidates on the same prompt; an implicit breakpoint needs a user message (none:
no implicit breakpoint, and no earlier endings are looked up).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.simulator.cacheoptions import CacheRequest
from pipeline.simulator.clock import SimClock
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.prompt import RenderedPrompt, ids_bytes

FIRST_EXPLICIT = 2
LATEST_EXPLICIT = 50
EARLIER_ENDINGS = 20
_SWEEP_EVERY = 50_000


@dataclass
class Entry:
    """A cached prefix: when it was last written or read, and how long it lives idle."""

    last_used: float
    ttl_s: float

    def alive(self, now: float) -> bool:
        """True while the entry has not been idle longer than its lifetime."""
        return now - self.last_used <= self.ttl_s


@dataclass(frozen=True)
class PlannedWrite:
    """A prefix a request will write when it finishes: its position, hash and lifetime."""

    position: int
    digest: bytes
    ttl_s: float


@dataclass(frozen=True)
class BreakpointLookup:
    """What a lookup found and what the request will write."""

    cached_tokens: int
    writes: tuple[PlannedWrite, ...]

    @property
    def cache_write_tokens(self) -> int:
        """Tokens billed as cache writes: deepest write - cached tokens (0 without writes)."""
        if not self.writes:
            return 0
        return max(w.position for w in self.writes) - self.cached_tokens


def lookup_positions(prompt: RenderedPrompt, request: CacheRequest) -> set[int]:
    """Candidate positions a lookup checks (see the module docstring)."""
    explicit = sorted({position for position, _ in request.breakpoints})
    chosen = set(explicit[:FIRST_EXPLICIT]) | set(explicit[-LATEST_EXPLICIT:])
    if request.mode == "implicit":
        implicit = prompt.user_end
        if implicit is not None:
            chosen.add(implicit)
            earlier = sorted({m.position for m in prompt.messages if m.position < implicit})
            chosen.update(earlier[-EARLIER_ENDINGS:])
        developer = prompt.developer_end
        if developer is not None:
            chosen.add(developer)
    return chosen


def write_positions(prompt: RenderedPrompt, request: CacheRequest) -> dict[int, float]:
    """The breakpoints a request may write (position -> lifetime), at most ``max_writes``."""
    slots = request.policy.max_writes
    chosen: dict[int, float] = {}
    explicit: dict[int, float] = {}
    for position, ttl_s in request.breakpoints:
        explicit[position] = max(explicit.get(position, 0.0), ttl_s)
    implicit = prompt.user_end if request.mode == "implicit" else None
    if implicit is not None:
        chosen[implicit] = max(request.lifetime_s, explicit.pop(implicit, 0.0))
        slots -= 1
    latest = sorted(explicit)[-slots:] if slots > 0 else []
    chosen.update((position, explicit[position]) for position in latest)
    return chosen


def prefix_digests(ids: Sequence[int], positions: Iterable[int]) -> dict[int, bytes]:
    """Hash of ``ids[:p]`` for each position ``p``, in one pass over the prompt."""
    digest = hashlib.blake2b(digest_size=16)
    found: dict[int, bytes] = {}
    done = 0
    for position in sorted(set(positions)):
        digest.update(ids_bytes(ids[done:position]))
        done = position
        found[position] = digest.copy().digest()
    return found


class BreakpointCache:
    """Breakpoint entries per model family; all times from ``clock``."""

    def __init__(self, config: SimulatorConfig, clock: SimClock) -> None:
        self._config = config
        self._clock = clock
        self._store: dict[tuple[str, bytes], Entry] = {}
        self._writes = 0

    def reconfigure(self, config: SimulatorConfig) -> None:
        """Use new knobs (the entry cap)."""
        self._config = config

    def lookup(
        self, family: str, prompt: RenderedPrompt, request: CacheRequest
    ) -> BreakpointLookup:
        """Find the deepest live candidate and plan the writes (nothing is written yet)."""
        size, minimum = len(prompt.ids), request.policy.min_prefix
        reads = sorted(p for p in lookup_positions(prompt, request) if minimum <= p < size)
        targets = {
            p: ttl for p, ttl in write_positions(prompt, request).items() if minimum <= p < size
        }
        digests = prefix_digests(prompt.ids, [*reads, *targets])
        now = self._clock.now()
        hit, live = 0, []
        for position in reads:  # shallowest first: the last live one is the deepest
            entry = self._store.get((family, digests[position]))
            if entry is not None and entry.alive(now):
                live.append(entry)
                hit = position
        for entry in live:
            entry.last_used = now  # a read refreshes the entry (and the shallower ones)
        writes = tuple(
            PlannedWrite(position, digests[position], ttl_s)
            for position, ttl_s in sorted(targets.items())
            if position > hit and not self._alive(family, digests[position], now)
        )
        return BreakpointLookup(hit, writes)

    def _alive(self, family: str, digest: bytes, now: float) -> bool:
        entry = self._store.get((family, digest))
        return entry is not None and entry.alive(now)

    def write(self, family: str, writes: Sequence[PlannedWrite]) -> None:
        """Store planned writes (call when the request finished); existing entries refresh."""
        if not writes:
            return
        now = self._clock.now()
        for planned in writes:
            key = (family, planned.digest)
            entry = self._store.get(key)
            if entry is None or not entry.alive(now):
                self._store[key] = Entry(now, planned.ttl_s)
            else:
                entry.last_used = now
                entry.ttl_s = max(entry.ttl_s, planned.ttl_s)
        self._writes += len(writes)
        if self._writes >= _SWEEP_EVERY or len(self._store) > self._config.cache_max_blocks:
            self._writes = 0
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Drop expired entries; past ``cache_max_blocks``, also the least recently used quarter."""
        store = {k: e for k, e in self._store.items() if e.alive(now)}
        cap = self._config.cache_max_blocks
        if len(store) > cap:
            keep = sorted(store.items(), key=lambda item: item[1].last_used)[-(cap * 3 // 4) :]
            store = dict(keep)
        self._store = store

    def entries(self) -> int:
        """Cached breakpoint prefixes (expired ones included until swept)."""
        return len(self._store)
