"""Pacing a run to its deadline: the rate, and a pacer that spaces sends evenly."""

from __future__ import annotations

import pytest

from pipeline.limits.pacing import KEY_RPM, Pacer, paced_rpm
from pipeline.planning import plan
from tests.test_planning import newsroom


def test_paced_rate_finishes_in_time_in_whole_keys() -> None:
    """400 jobs within 0.25 h need 26.7/min: rounded up to 3 keys' worth (36/min)."""
    assert paced_rpm(400, 0.25) == 3 * KEY_RPM
    assert paced_rpm(5, 8.0) == KEY_RPM  # never below one key
    assert paced_rpm(100_000, 8.0) >= 100_000 / (8 * 60)
    with pytest.raises(ValueError):
        paced_rpm(10, 0)


def test_paced_plan_needs_fewer_keys() -> None:
    """At the paced rate a group needs one bucket per 12 requests/min, not per dozen requests."""
    requests = newsroom(100)
    burst = plan(requests, planned_rpm=1800)
    paced = plan(requests, planned_rpm=paced_rpm(200, 0.25))
    assert sum(g.buckets for g in paced.groups) < sum(g.buckets for g in burst.groups)
    assert max(g.buckets for g in paced.groups) <= 3


async def test_pacer_spaces_sends_evenly_in_arrival_order() -> None:
    """At 60/min callers go through one a second; the first at once."""
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    pacer = Pacer(60, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        await pacer.wait()
    assert slept == [1.0, 2.0, 3.0]
    now[0] = 200.0  # after a pause, the next caller goes at once
    await pacer.wait()
    assert slept == [1.0, 2.0, 3.0]
