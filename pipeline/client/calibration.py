"""Learning how the server counts: our estimate of a request against what its bucket lost.

The limiter reserves ``prompt tokens (o200k) + max_output_tokens`` per request, but a server
counts its own way: OpenAI estimates from characters, an emulator may use another tokenizer.
A limiter that trusts its own count either leaves the limit half used (the server counts
less) or provokes 429 storms (it counts more). ``x-ratelimit-remaining-*`` tells us the
server's bucket level at the moment it admitted a request, so between two answered requests
sent at ``t0`` and ``t1`` the server consumed

    consumed = remaining(t0) + rate * (t1 - t0) - remaining(t1)

for exactly the requests we sent in ``(t0, t1]`` (alone on the account, with the bucket below
capacity all the while so no refill was lost). Only requests the limiter *paced* (it had to
wait for them) serve as ``t0`` and ``t1``: requests sent together (the first burst, say) reach
the server in any order, so their snapshots say nothing about what was sent before them.
``consumed / sum(our estimates)`` is one sample of the factor; the factor is their running,
amount-weighted mean over about one bucket's worth of traffic, clamped to a sane range.
Answers come back out of order, so every sample is anchored on its request's *send* time,
which the limiter hands out at admission. Before the first paced sample, the first answers
are read against the bucket being full at the start, which can only raise the factor.

A factor cannot run away (issue 23: one runner of four read its first answers against a bucket
the others had drained, learnt x10 and crawled at 11.6 requests/min): whenever a request that
waited for the token bucket is answered, alone on the account, with the server's bucket half
full or more, we count more than the server does, and the factor comes down
(``RUNAWAY_STEP``). Shared, where a full bucket may be another runner's underuse and nothing
can be measured, a factor not measured alone over half a bucket's traffic is dropped
(``shared``): the first answers' guess, and the samples of runners that started together and
each counted the others' sends as theirs before their first beat.

``Sends`` is the history of what we admitted (time, cumulative amount) that makes the sums
over any interval O(log n); it also gives the limiter "what we sent since the server's
snapshot", so a header's ``remaining`` can be brought up to now.
"""

from __future__ import annotations

import bisect
import math

# Samples need enough traffic to be more than jitter: at least this share of the bucket.
MIN_SAMPLE_SHARE = 0.04
# The server's bucket must stay this far below capacity over a sample (no refill lost).
FULL_SHARE = 0.95
# The factor's memory, in buckets' worth of estimated traffic.
MEMORY_BUCKETS = 1.0
FACTOR_RANGE = (0.1, 10.0)
# The first answers are measured against a full bucket only this soon after the first send,
# and weigh at most this share of the bucket against the paced samples that follow.
FIRST_WINDOW_S = 5.0
FIRST_WEIGHT_SHARE = 0.1
# A factor cannot run away: an answer to a request that waited for the token bucket, with the
# server's bucket at least this full, shows we count too much; the factor comes down by
# RUNAWAY_STEP each time.
RUNAWAY_SHARE = 0.5
RUNAWAY_STEP = 0.85
RUNAWAY_INTERVAL_S = 1.0  # at most one step per second of sends: x10 is undone in ~15 s
# A factor is kept when the account turns out shared only if measured alone over this share of
# a bucket's traffic (half a minute at the limit): early samples may have counted others' sends.
TRUSTED_SHARE = 0.5
HISTORY_S = 180.0


class Sends:
    """What was admitted and when: cumulative amounts by (monotonic) admission time."""

    def __init__(self) -> None:
        self._times: list[float] = []
        self._cumulative: list[float] = []
        self._paced: list[bool] = []
        self._bound: list[bool] = []
        self._base = 0.0  # cumulative amount before the oldest entry kept
        self._total = 0.0
        self._rejected: list[tuple[float, float]] = []  # rare: a sorted list is enough

    def add(self, at: float, amount: float, paced: bool = False, bound: bool = False) -> None:
        """Record ``amount`` admitted at ``at`` (times never go backwards); ``paced``: the
        limiter had to wait for it; ``bound``: it waited for this very bucket."""
        self._total += amount
        self._times.append(at)
        self._cumulative.append(self._total)
        self._paced.append(paced)
        self._bound.append(bound)
        if len(self._times) > 4096 and self._times[0] < at - HISTORY_S:
            cut = bisect.bisect_left(self._times, at - HISTORY_S)
            self._base = self._cumulative[cut - 1]
            del self._times[:cut]
            del self._cumulative[:cut]
            del self._paced[:cut]
            del self._bound[:cut]

    def bound(self, at: float) -> bool:
        """Whether what was admitted at ``at`` had to wait for this bucket to refill."""
        i = bisect.bisect_left(self._times, at)
        while i < len(self._times) and self._times[i] == at:
            if self._bound[i]:
                return True
            i += 1
        return False

    def paced(self, at: float) -> bool:
        """Whether what was admitted at ``at`` had to wait for the limiter."""
        i = bisect.bisect_left(self._times, at)
        while i < len(self._times) and self._times[i] == at:
            if self._paced[i]:
                return True
            i += 1
        return False

    def upto(self, at: float) -> float:
        """Cumulative amount admitted at or before ``at``."""
        i = bisect.bisect_right(self._times, at)
        return self._base if i == 0 else self._cumulative[i - 1]

    def between(self, start: float, end: float) -> float:
        """Amount admitted in ``(start, end]``, less what the server turned away (429)."""
        taken = self.upto(end) - self.upto(start)
        if self._rejected:
            lo = bisect.bisect_right(self._rejected, (start, float("inf")))
            hi = bisect.bisect_right(self._rejected, (end, float("inf")))
            taken -= sum(amount for _, amount in self._rejected[lo:hi])
        return taken

    def reject_larger_than(self, limit: float) -> int:
        """Mark every kept send larger than ``limit`` as turned away (a request above the
        whole limit is never admitted, so the server counted none of it); how many."""
        previous = self._base
        found = 0
        for at, cumulative in zip(self._times, self._cumulative, strict=True):
            amount = cumulative - previous
            previous = cumulative
            if amount > limit and (at, amount) not in self._rejected:
                self.reject(at, amount)
                found += 1
        return found

    def reject(self, at: float, amount: float) -> None:
        """What was admitted at ``at`` was answered 429: the server did not count it."""
        bisect.insort(self._rejected, (at, amount))
        if len(self._rejected) > 1024:
            del self._rejected[:512]

    @property
    def first_at(self) -> float | None:
        """When the first send still in the history was admitted (None before any)."""
        return self._times[0] if self._times else None

    @property
    def total(self) -> float:
        """Everything admitted so far."""
        return self._total


class Calibration:
    """The learnt ratio of the server's count to our estimate, for one bucket.

    ``observe(sent_at, remaining, capacity)`` feeds one answered request's header;
    ``factor`` starts at 1.0 and ``samples`` counts how often it was updated.
    """

    def __init__(self, sends: Sends) -> None:
        self.factor = 1.0
        self.samples = 0
        self.corrections = 0  # times a factor found too high came down (``RUNAWAY_STEP``)
        self._corrected_at = -math.inf
        # The last header contradicted the factor: the server's level is the better guide.
        self.contradicted = False
        self._sends = sends
        self._weight = 0.0
        self._anchor: tuple[float, float] | None = None

    def observe(
        self, sent_at: float, remaining: float, capacity: float, share: float = 1.0
    ) -> None:
        """One header: the server's level right after admitting what we sent at ``sent_at``.

        ``share`` is the part of the account this process uses (``limitshare``). Below 1, other
        runners draw on the same bucket at rates we do not know (a share is an upper bound,
        not what they use), so nothing is measured: the factor learnt alone is kept.
        """
        if share < 1.0:
            self._anchor = None  # a span with others in it measures nothing of ours
            return
        if self._sends.bound(sent_at) and remaining >= RUNAWAY_SHARE * capacity:
            # We waited for this bucket, alone on the account, yet the server's was half full
            # or more: we count more than it does (the first answers read against a bucket
            # someone had drawn down, say). Come down step by step until that ends.
            if sent_at - self._corrected_at >= RUNAWAY_INTERVAL_S:  # let each step show
                self.factor = max(FACTOR_RANGE[0], self.factor * RUNAWAY_STEP)
                self.corrections += 1
                self._corrected_at = sent_at
            self.contradicted = True
            self._anchor = None
            return
        self.contradicted = False
        if not self.samples:  # no paced sample yet
            self._first(sent_at, remaining, capacity)
        if not self._sends.paced(sent_at):
            return
        anchor = self._anchor
        if anchor is None:
            self._anchor = (sent_at, remaining)
            return
        if sent_at < anchor[0]:
            return  # an older request answered late: its snapshot is already behind us
        t0, r0 = anchor
        ours = self._sends.between(t0, sent_at)
        if ours < MIN_SAMPLE_SHARE * capacity / max(self.factor, 1e-9):
            return  # keep accumulating from the same anchor
        rate = capacity / 60.0
        topped = r0 + rate * (sent_at - t0)
        self._anchor = (sent_at, remaining)
        if topped >= FULL_SHARE * capacity or remaining >= FULL_SHARE * capacity:
            return  # the server's bucket (nearly) filled: refill was lost, no measure
        consumed = topped - remaining
        sample = min(max(consumed / ours, FACTOR_RANGE[0]), FACTOR_RANGE[1])
        memory = MEMORY_BUCKETS * capacity
        weight = min(self._weight, memory)
        self.factor = (self.factor * weight + sample * ours) / (weight + ours)
        self._weight = weight + ours
        self.samples += 1

    def shared(self, capacity: float) -> bool:
        """Others now draw on the same bucket: drop a factor not measured over at least
        ``TRUSTED_SHARE`` of a bucket's traffic alone (the first answers' guess assumed a full
        bucket at the start, and runners that started together each measured the others'
        sends as theirs before their first beat showed them each other; nothing can be
        measured while shared). True when the factor changed."""
        trusted = self.samples > 0 and self._weight >= TRUSTED_SHARE * capacity
        changed = not trusted and self.factor != 1.0
        if not trusted:
            self.factor = 1.0
            self.samples = 0
            self._weight = 0.0
            self._anchor = None
        return changed

    def _first(self, sent_at: float, remaining: float, capacity: float) -> None:
        """Headers before the first paced sample: taking the server's bucket as full when we
        started (the usual case for a run alone on its account), it lost ``capacity -
        remaining`` plus at most the refill since, for everything we sent up to ``sent_at``.
        Only ever raises the factor: the first requests go out together and the server may
        have admitted this one before others we sent earlier, which would make its count look
        too small. Too high errs towards sending less, which soon paces the sends, and the
        paced samples that follow correct it."""
        ours = self._sends.upto(sent_at)
        first = self._sends.first_at
        if first is None or sent_at - first > FIRST_WINDOW_S:
            return  # long after the start: the bucket need not have been full then
        if ours < MIN_SAMPLE_SHARE * capacity or remaining >= FULL_SHARE * capacity:
            return
        consumed = capacity - remaining + capacity / 60.0 * (sent_at - first)
        self.factor = min(max(consumed / ours, self.factor), FACTOR_RANGE[1])
        # Light: a bucket that was not full after all must not hold the factor up for long.
        self._weight = min(ours, FIRST_WEIGHT_SHARE * capacity)
