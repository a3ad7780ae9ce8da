"""The limiter learns how the server counts tokens from ``x-ratelimit-remaining-tokens``.

A small discrete-time server below counts each request as ``factor`` x our estimate (with
per-request noise, as a character-based estimate has) plus nothing else, admits it at send
time, and answers one to three seconds later with its headers. The limiter must fill the
server's limit, not its own idea of it, with next to no 429s.
"""

from __future__ import annotations

import asyncio
import heapq
import random

import pytest

from pipeline.client.calibration import Calibration, Sends
from pipeline.client.clock import FakeClock
from pipeline.client.limiter import RateLimiter


class CountingServer:
    """The server's token bucket, counting ``factor`` x our estimate per request."""

    def __init__(self, tpm: int, factor: float, clock: FakeClock, seed: int = 7) -> None:
        self.tpm = tpm
        self.factor = factor
        self.level = float(tpm)
        self.clock = clock
        self.last = clock.monotonic()
        self.random = random.Random(seed)
        self.admitted = 0.0
        self.rejected = 0

    def admit(self, estimate: int) -> tuple[bool, dict[str, str]]:
        now = self.clock.monotonic()
        self.level = min(self.tpm, self.level + (now - self.last) * self.tpm / 60)
        self.last = now
        cost = estimate * self.factor * self.random.uniform(0.8, 1.2)
        ok = self.level >= cost
        if ok:
            self.level -= cost
            self.admitted += cost
        else:
            self.rejected += 1
        headers = {
            "x-ratelimit-limit-tokens": str(self.tpm),
            "x-ratelimit-remaining-tokens": str(max(0, int(self.level))),
        }
        return ok, headers


async def drive(
    factor: float, minutes: float = 6.0, *, configured: bool = True, concurrency: int = 64
) -> tuple[RateLimiter, CountingServer, float]:
    """A sender with ``concurrency`` requests in flight at most, through the limiter, for
    ``minutes``; returns the share of the limit used after the first minute (the learning and
    the initial full bucket left out). Not ``configured``: the limit is learnt from headers."""
    clock = FakeClock()
    tpm = 300_000
    server = CountingServer(tpm, factor, clock)
    limiter = RateLimiter(rpm=None, tpm=tpm if configured else None, clock=clock)
    answers: list[tuple[float, int, float, dict[str, str]]] = []
    sizes = [850, 3100, 1200, 4700, 990, 2300]
    start = clock.monotonic()
    counted_from = None
    admitted_at_mark = 0.0
    n = 0
    while clock.monotonic() - start < minutes * 60:
        if len(answers) >= concurrency:  # every connection busy: wait for the next answer
            clock.advance(max(0.0, answers[0][0] - clock.monotonic()))
        now = clock.monotonic()
        while answers and answers[0][0] <= now:
            _, _, sent_at, headers = heapq.heappop(answers)
            limiter.observe(headers, sent_at=sent_at)
        if counted_from is None and now - start >= 60:
            counted_from, admitted_at_mark = now, server.admitted
        estimate = sizes[n % len(sizes)]
        sent_at = await limiter.acquire(estimate)
        ok, headers = server.admit(estimate)
        if not ok:
            limiter.rejected(sent_at, estimate)
            limiter.penalize(1.0)
        latency = 1.0 + 2.0 * server.random.random()
        heapq.heappush(answers, (sent_at + latency, n, sent_at, headers))
        n += 1
        clock.advance(0.01)  # a request every 10 ms at most: the limit, not the loop, binds
    assert counted_from is not None
    used = (server.admitted - admitted_at_mark) / (tpm * (clock.monotonic() - counted_from) / 60)
    return limiter, server, used


@pytest.mark.parametrize("factor", [0.5, 1.0, 1.5])
async def test_fills_the_servers_limit_whatever_it_counts(factor: float) -> None:
    limiter, server, used = await drive(factor)
    assert limiter.token_factor == pytest.approx(factor, rel=0.1)
    assert 0.97 <= used <= 1.01
    assert server.rejected <= 5, f"{server.rejected} requests answered 429"


async def test_learns_the_limit_and_the_count_from_the_first_answers() -> None:
    """No limit configured: the first burst goes out at the connection limit, the first
    answer's headers give the limit and how the server counts, and the 429s stay few."""
    limiter, server, used = await drive(1.74, configured=False)
    assert limiter.tpm == 300_000
    assert limiter.token_factor == pytest.approx(1.74, rel=0.1)
    assert 0.97 <= used <= 1.01
    assert server.rejected <= 5, f"{server.rejected} requests answered 429"


def test_calibration_waits_for_enough_traffic_and_a_draining_bucket() -> None:
    sends = Sends()
    calibration = Calibration(sends)
    sends.add(1.0, 100, paced=True)
    calibration.observe(1.0, 5_000, capacity=60_000)
    sends.add(2.0, 100, paced=True)
    calibration.observe(2.0, 5_000, capacity=60_000)  # 100 tokens: too little to measure
    assert calibration.samples == 0
    for t in range(3, 13):
        sends.add(float(t), 1_000, paced=True)
    # From 1 s to 12 s the server refilled 11_000 and fell by 5_000 - 1_000: consumed 15_000
    # for our 10_100: a factor of ~1.49.
    calibration.observe(12.0, 1_000, capacity=60_000)
    assert calibration.samples == 1
    assert calibration.factor == pytest.approx(15_000 / 10_100, rel=1e-6)


def test_no_sample_while_the_servers_bucket_is_full() -> None:
    sends = Sends()
    calibration = Calibration(sends)
    calibration.observe(0.0, 60_000, capacity=60_000)
    for t in range(1, 11):
        sends.add(float(t), 1_000, paced=True)
    calibration.observe(10.0, 59_000, capacity=60_000)
    assert calibration.samples == 0
    assert calibration.factor == 1.0


def test_rejected_sends_are_not_counted() -> None:
    sends = Sends()
    for t in range(10):
        sends.add(float(t), 100)
    sends.reject(5.0, 100)
    assert sends.between(0.0, 9.0) == 800
    assert sends.between(5.0, 9.0) == 400
    assert sends.total == 1000


def test_requests_sent_together_are_not_measured_against_each_other() -> None:
    """Unpaced sends (a burst) reach the server in any order: no anchor, no sample."""
    sends = Sends()
    calibration = Calibration(sends)
    sends.add(0.0, 1_000)
    for t in range(1, 40):
        sends.add(10.0 + t / 1000, 1_000)  # a burst, long after the start window
    calibration.observe(10.001, 50_000, capacity=60_000)
    calibration.observe(10.039, 20_000, capacity=60_000)
    assert calibration.samples == 0 and calibration.factor == 1.0


def test_first_answers_only_raise_the_factor() -> None:
    """Soon after the start, a full bucket is assumed: the server's fall over what we sent
    raises the factor (never lowers it: the burst's order is unknown)."""
    sends = Sends()
    calibration = Calibration(sends)
    for t in range(10):
        sends.add(t / 100, 2_000)
    calibration.observe(0.09, 60_000 - 40_000, capacity=60_000)  # 40,000 for our 20,000
    assert calibration.factor == pytest.approx((40_000 + 90) / 20_000)
    assert calibration.samples == 0  # not a paced sample: the limiter stays careful
    later = Calibration(sends)
    later.observe(0.09, 60_000 - 10_000, capacity=60_000)  # would say 0.5: ignored
    assert later.factor == 1.0


class StepClock(FakeClock):
    """Fake time shared by many waiters: ``sleep`` waits until the driver's ``advance`` has
    moved time past its deadline (``FakeClock`` lets each sleeper jump ahead alone)."""

    def __init__(self) -> None:
        super().__init__()
        self._moved = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        deadline = self.now + max(0.0, seconds)
        while self.now < deadline:
            self._moved.clear()
            await self._moved.wait()

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        self._moved.set()


async def drive_runners(
    runners: int, *, minutes: float = 4.0, concurrency: int = 32, beat_s: float = 2.0
) -> tuple[list[RateLimiter], CountingServer, float]:
    """``runners`` senders starting together on one server (counting x1.0) whose bucket
    someone else had drained (5% left): each believes itself alone until the first beat
    (``beat_s``), then takes its share. Returns the share of the limit used after the first
    minute, and counts only the 429s after it in ``server.rejected``."""
    clock = StepClock()
    tpm = 300_000
    server = CountingServer(tpm, 1.0, clock)
    server.level = 0.05 * tpm
    limiters = [RateLimiter(rpm=None, tpm=tpm, clock=clock) for _ in range(runners)]
    shared = False
    rejected_at_mark: int | None = None
    answers: list[tuple[float, int, int, float, dict[str, str]]] = []
    in_flight = [0] * runners
    sizes = [850, 3100, 1200, 4700, 990, 2300]
    start = clock.monotonic()
    counted_from, admitted_at_mark, n = None, 0.0, 0
    pending: dict[int, tuple[asyncio.Task[float], int]] = {}
    while clock.monotonic() - start < minutes * 60:
        now = clock.monotonic()
        while answers and answers[0][0] <= now:
            _, _, who, sent_at, headers = heapq.heappop(answers)
            limiters[who].observe(headers, sent_at=sent_at)
            in_flight[who] -= 1
        if counted_from is None and now - start >= 60:
            counted_from, admitted_at_mark = now, server.admitted
        if counted_from is not None and rejected_at_mark is None:
            rejected_at_mark = server.rejected
        if not shared and now - start >= beat_s:
            shared = True
            for limiter in limiters:
                limiter.set_share(1 / runners)
        for who, limiter in enumerate(limiters):
            if who not in pending and in_flight[who] < concurrency:
                estimate = sizes[n % len(sizes)]
                n += 1
                pending[who] = (asyncio.create_task(limiter.acquire(estimate)), estimate)
        for _ in range(3):
            await asyncio.sleep(0)
        for who, (task, estimate) in list(pending.items()):
            if not task.done():
                continue
            del pending[who]
            sent_at = task.result()
            ok, headers = server.admit(estimate)
            if not ok:
                limiters[who].rejected(sent_at, estimate)
                limiters[who].penalize(1.0)
            in_flight[who] += 1
            latency = 1.0 + 2.0 * server.random.random()
            heapq.heappush(answers, (sent_at + latency, n, who, sent_at, headers))
            n += 1
        clock.advance(0.01)
    for task, _ in pending.values():
        task.cancel()
    await asyncio.gather(*(t for t, _ in pending.values()), return_exceptions=True)
    assert counted_from is not None and rejected_at_mark is not None
    used = (server.admitted - admitted_at_mark) / (tpm * (clock.monotonic() - counted_from) / 60)
    server.rejected -= rejected_at_mark
    return limiters, server, used


@pytest.mark.parametrize(
    ("runners", "beat_s"),
    [(1, 2.0), (2, 2.0), (4, 2.0), (4, 6.0)],
    ids=["alone", "2-runners", "4-runners", "4-runners-slow-first-beat"],
)
async def test_first_answers_against_a_drained_bucket_do_not_run_away(
    runners: int, beat_s: float
) -> None:
    """Issue 23: a runner read its first answers against a bucket others had drained, learnt
    x10 and crawled for 14 minutes. Now such a guess comes down when it makes the runner wait
    while the server's bucket is half full (alone), or is dropped once the runner finds it
    shares the account, also when runners that started together measured each other's sends
    as theirs before their first beat: after the first minute the limit is used, and no
    factor is left far from the server's count."""
    limiters, server, used = await drive_runners(runners, beat_s=beat_s)
    factors = [limiter.token_factor for limiter in limiters]
    assert all(0.8 <= f <= 1.3 for f in factors), factors
    assert used >= 0.95, used
    assert server.rejected <= 5, f"{server.rejected} requests answered 429 after the start"


def test_a_wait_for_another_bucket_is_no_evidence_against_the_token_factor() -> None:
    """Only a wait for the token bucket itself says the factor is too high: a request that
    waited for the request bucket (RPM) may meet a full token bucket, and nothing changes."""
    sends = Sends()
    calibration = Calibration(sends)
    sends.add(70.0, 1_000, paced=True, bound=False)
    calibration.observe(70.0, 59_000, capacity=60_000)
    assert calibration.factor == 1.0 and calibration.corrections == 0
    sends.add(71.0, 1_000, paced=True, bound=True)
    calibration.observe(71.0, 59_000, capacity=60_000)
    assert calibration.factor == pytest.approx(0.85) and calibration.corrections == 1
