"""Cache keys sized by the rate each key will really carry, and corrected by what answers show.

Before GPT-5.6 a ``prompt_cache_key`` routes to one cache machine, which takes about 15
requests a minute **counted over all the prefixes the key carries** (API-NOTES §1.5); past
that, requests spill onto cold machines. Every key also costs one cold primer. So a group
wants as few keys as it can have without any key carrying more than it takes in any minute.

``KeyBook`` deals a run's articles to keys with that rule. It follows the run's send schedule
(``SendSchedule``: the limiter starts with a full minute's allowance, so the first minute
carries up to twice the steady rate, then the steady rate), gives each article the time its
requests will go out, and puts all of an article's requests in the group (an article-first
key carries every task of its article) on the key that carries the fewest requests in the
trailing minute at that time; a new key opens only when that one would pass its rate. Keys
stay open for the whole run, so later chunks reuse the warm ones, and sends an earlier run made
on the same keys within the last minute (``recent``) count too: a run that follows another
(a flow's next chunk) does not pile onto keys the last one filled.

The rate a key takes is not published exactly and differs by server, so it is learnt:
``KeyBook.observe`` takes each answer's cached tokens. A request on a warm key (one the plan
expected to read from) that reads less than planned either spilled (its key carried a lot in
the last minute: the rate was too high) or found its prefix evicted (the key was quiet). A
spill lowers the model's key rate to below what the key carried; a chunk's worth of answers
on keys loaded near their rate without a spill raises it a step, up to the published figure.
The learnt rate is kept per account and model (``pipeline.db``) for the next run.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

WINDOW_S = 60.0
# A bucket is planned to carry this share of what one key can take before it overflows.
KEY_RATE_MARGIN = 0.8
# A read below this share of the planned read (in the server's tokens) counts as a spill.
SPILL_SHARE = 0.9
# A key that carried at least this share of its rate in the minute before a short read
# spilled; a quieter key lost its prefix to eviction (the rate is not to blame).
BUSY_SHARE = 0.5
# After a spill, the key rate goes to this share of what the spilling key carried.
BACKOFF = 0.9
# Answers on keys loaded near their rate, without a spill, before the rate goes up a step;
# learning never goes past this share of the published rate (a minute's send times jitter).
CLEAN_ANSWERS = 48
LEARN_CEILING = 0.9
RAISE_STEP = 1.0
MIN_RATE = 2.0


@dataclass(frozen=True)
class SendSchedule:
    """When the ``n``-th request of a run goes out, as the limiter will send it.

    The limiter starts with full buckets: the first ``burst`` requests may go at once, then
    ``steady_rpm`` a minute. A paced run has no burst.
    """

    steady_rpm: float
    burst: float = 0.0

    def __post_init__(self) -> None:
        if self.steady_rpm <= 0 or self.burst < 0:
            raise ValueError(f"bad schedule: {self.steady_rpm=}, {self.burst=}")

    def at(self, n: float) -> float:
        """Seconds after the start when request ``n`` (0-based) is sent."""
        return max(0.0, n - self.burst) / self.steady_rpm * 60.0

    @property
    def first_minute(self) -> float:
        """Requests the first minute carries (the busiest minute of the run)."""
        return self.burst + self.steady_rpm


@dataclass
class KeyRate:
    """What is learnt about one model's keys: the rate one key takes, and the evidence."""

    rpm: float
    ceiling: float
    requests: int = 0
    spills: int = 0
    evictions: int = 0
    clean: int = 0
    learnt: bool = False

    def as_dict(self) -> dict[str, float | int]:
        """Plain values for the run summary."""
        return {
            "rpm": round(self.rpm, 2),
            "requests": self.requests,
            "spills": self.spills,
            "evictions": self.evictions,
        }


@dataclass
class _Key:
    """One key of a group: its planned sends as (seconds, requests)."""

    sends: deque[tuple[float, int]] = field(default_factory=deque)
    in_window: int = 0

    def load(self, at: float) -> int:
        while self.sends and self.sends[0][0] <= at - WINDOW_S + 1e-6:
            self.in_window -= self.sends.popleft()[1]
        return self.in_window

    def add(self, at: float, count: int) -> None:
        self.sends.append((at, count))
        self.in_window += count


class KeyBook:
    """The keys of one run: which exist per group, what each carries, the learnt key rates.

    ``rates`` gives a starting per-key rate (requests/min) per model, e.g. learnt by an
    earlier run; ``ceilings`` the published rate per model (the policy's ``key_rpm``), which
    learning never passes. A model in neither starts at ``KEY_RATE_MARGIN x default_rpm``.
    """

    def __init__(
        self,
        schedule: SendSchedule,
        *,
        ceilings: Mapping[str, float] | None = None,
        rates: Mapping[str, float] | None = None,
        default_rpm: float = 15.0,
        recent: Mapping[str, Sequence[float]] | None = None,
        now: float = 0.0,
    ) -> None:
        self.schedule = schedule
        self.sent = 0
        self._ceilings = dict(ceilings or {})
        self._start = dict(rates or {})
        self._default = default_rpm
        self._groups: dict[str, list[_Key]] = {}
        self.rates: dict[str, KeyRate] = {}
        # Actual sends per key (monotonic seconds), for what a key carried before a spill;
        # keys that have had an answer (their machine has seen the group's prefix).
        self._actual: dict[str, deque[float]] = {}
        self._answered: set[str] = set()
        for key, ages in (recent or {}).items():
            self._preload(key, ages, now)

    def _preload(self, key: str, ages: Sequence[float], now: float) -> None:
        """Sends an earlier run made on ``key`` (``<group>-<bucket>``) ``ages`` seconds ago:
        they still count in the minute this run starts in."""
        group, _, bucket = key.rpartition("-")
        if not group or not bucket.isdigit():
            return
        keys = self._groups.setdefault(group, [])
        while len(keys) <= int(bucket):
            keys.append(_Key())
        for age in sorted(ages, reverse=True):
            keys[int(bucket)].add(-age, 1)
        self._actual[key] = deque(sorted(now - age for age in ages))

    # -- dealing -------------------------------------------------------------------------

    def rate(self, model: str) -> KeyRate:
        """The per-key rate of ``model`` (created from the start values on first use)."""
        found = self.rates.get(model)
        if found is None:
            ceiling = LEARN_CEILING * self._ceilings.get(model, self._default)
            start = self._start.get(model)
            learnt = start is not None
            published = ceiling / LEARN_CEILING
            rpm = min(start, ceiling) if start is not None else KEY_RATE_MARGIN * published
            found = self.rates[model] = KeyRate(rpm=max(MIN_RATE, rpm), ceiling=ceiling)
            found.learnt = learnt
        return found

    def keys(self, group: str) -> int:
        """Keys opened so far for ``group``."""
        return len(self._groups.get(group, ()))

    def assign(self, group: str, model: str, position: int, count: int) -> int:
        """The key (bucket number) for an article whose ``count`` requests in ``group`` go out
        from the run's request ``self.sent + position`` on."""
        at = self.schedule.at(self.sent + position)
        cap = self.rate(model).rpm
        keys = self._groups.setdefault(group, [])
        best = -1
        best_load = math.inf
        for number, key in enumerate(keys):
            load = key.load(at)
            if load < best_load:
                best, best_load = number, load
        if best < 0 or (best_load + count > cap and best_load > 0):
            keys.append(_Key())
            best = len(keys) - 1
        keys[best].add(at, count)
        return best

    def advance(self, requests: int) -> None:
        """A chunk of ``requests`` was planned: the next chunk's requests go out after them."""
        self.sent += requests

    # -- learning ------------------------------------------------------------------------

    def sent_on(self, key: str, now: float) -> int:
        """Record a send on ``key`` at ``now`` (monotonic s); returns its sends in the last
        minute, this one included."""
        sends = self._actual.setdefault(key, deque())
        while sends and sends[0] <= now - WINDOW_S:
            sends.popleft()
        sends.append(now)
        return len(sends)

    def warm(self, key: str) -> bool:
        """True once ``key`` has had an answer: a later request on it should find the prefix
        on the key's machine (a first request may have counted on another key's machine)."""
        return key in self._answered

    def observe(
        self,
        model: str,
        *,
        expected: int,
        cached: int,
        billed_per_token: float,
        carried: int,
        key: str | None = None,
        warm: bool = True,
    ) -> str | None:
        """Judge one answer; returns ``"spill"``, ``"eviction"`` or None.

        ``expected`` is the read the plan counted on (our tokens), ``cached`` what the server
        reported (its tokens), ``billed_per_token`` its input count over ours for this request
        (another tokenizer bills another count), ``carried`` the key's sends in the minute
        before the answer's request (``sent_on``). Only a request sent on a ``warm`` key is
        judged (the plan may count on a machine a cold key does not reach); ``key`` is marked
        warm by the answer.
        """
        rate = self.rate(model)
        rate.requests += 1
        if key is not None:
            self._answered.add(key)
        if not warm or expected <= 0 or cached >= SPILL_SHARE * expected * billed_per_token:
            if carried >= 0.9 * rate.rpm:
                rate.clean += 1
                if rate.clean >= CLEAN_ANSWERS and rate.rpm < rate.ceiling:
                    rate.rpm = min(rate.ceiling, rate.rpm + RAISE_STEP)
                    rate.clean = 0
                    rate.learnt = True
            return None
        if carried < BUSY_SHARE * rate.rpm:
            rate.evictions += 1
            return "eviction"
        rate.spills += 1
        rate.clean = 0
        rate.rpm = max(MIN_RATE, min(rate.rpm, (carried - 1) * BACKOFF))
        rate.learnt = True
        return "spill"

    def learnt(self) -> dict[str, KeyRate]:
        """The models whose key rate was used, with what was learnt."""
        return dict(self.rates)
