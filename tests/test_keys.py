"""Cache keys sized by the rate each carries, learnt from answers (pure logic, no I/O)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from pipeline.planning import KeyBook, SendSchedule, plan
from pipeline.planning.keys import CLEAN_ANSWERS, KEY_RATE_MARGIN, WINDOW_S
from tests.test_planning import newsroom


def _peak_per_minute(times: list[float]) -> int:
    """The most sends any 60-second window holds."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - WINDOW_S + 1e-6:
            start += 1
        best = max(best, end - start + 1)
    return best


def _deal(book: KeyBook, articles: int, per_article: int) -> dict[int, list[float]]:
    """Deal ``articles`` of ``per_article`` requests each; the planned send times per key."""
    sends: dict[int, list[float]] = defaultdict(list)
    for a in range(articles):
        position = a * per_article
        key = book.assign("g", "m", position, per_article)
        at = book.schedule.at(book.sent + position)
        sends[key].extend([at] * per_article)
    book.advance(articles * per_article)
    return sends


def test_schedule_bursts_the_first_minute_then_holds_the_steady_rate() -> None:
    """The first ``burst`` requests go at once, then ``steady_rpm`` a minute; paced: no burst."""
    full = SendSchedule(600, 600)
    assert full.at(0) == full.at(600) == 0.0
    assert full.at(1200) == pytest.approx(60.0)
    assert full.first_minute == 1200
    assert SendSchedule(60).at(30) == pytest.approx(30.0)
    with pytest.raises(ValueError):
        SendSchedule(0)


def test_no_key_carries_more_than_its_rate_in_any_minute() -> None:
    """Over two chunks of a run, every key's busiest minute stays within its rate, and the
    keys are no more than the busiest minute needs (the burst counted, not a fixed factor)."""
    book = KeyBook(SendSchedule(120, 120), ceilings={"m": 15})
    rate = book.rate("m").rpm
    assert rate == KEY_RATE_MARGIN * 15
    sends = _deal(book, 150, 2)
    for key, times in _deal(book, 150, 2).items():
        sends[key].extend(times)
    assert max(_peak_per_minute(t) for t in sends.values()) <= rate
    # The first minute carries 240 requests: 20 keys at 12; the run reuses them afterwards.
    assert book.keys("g") == 20
    assert sum(len(t) for t in sends.values()) == 600


def test_a_paced_run_needs_fewer_keys_and_an_article_stays_on_one_key() -> None:
    """At 24 requests/min without a burst two keys suffice; 4 tasks of an article go together."""
    book = KeyBook(SendSchedule(24), ceilings={"m": 15})
    sends = _deal(book, 60, 4)
    assert book.keys("g") == 2
    assert all(len(t) % 4 == 0 for t in sends.values())
    assert max(_peak_per_minute(t) for t in sends.values()) <= book.rate("m").rpm


def test_plan_with_a_book_deals_each_article_to_one_key_within_the_rate() -> None:
    """``plan(book=...)``: all tasks of an article-first article share a key; keys stay within
    their rate over the chunk, and the book moves past the chunk."""
    requests = newsroom(40, ("a", "b", "c", "d"), sections=1)
    book = KeyBook(SendSchedule(60, 60), ceilings={"gpt-4.1-mini": 15})
    chunk = plan(requests, planned_rpm=60, book=book)
    assert book.sent == len(requests)
    by_article: dict[int, set[str | None]] = defaultdict(set)
    first: dict[int, int] = {}
    for p in chunk.requests:
        by_article[p.request.article_id].add(p.cache_key)
        first.setdefault(p.request.article_id, p.index)
    assert all(len(keys) == 1 for keys in by_article.values())
    per_key: dict[str | None, list[float]] = defaultdict(list)
    for p in chunk.requests:
        per_key[p.cache_key].append(book.schedule.at(first[p.request.article_id]))
    assert max(_peak_per_minute(t) for t in per_key.values()) <= 12
    # The first minute (a burst of 60, then 60 a minute) carries 120 requests: 10 keys.
    assert len(per_key) == 10


def test_a_spill_lowers_the_rate_below_what_the_key_carried() -> None:
    """A short read on a busy key is a spill: the rate drops below what the key carried."""
    book = KeyBook(SendSchedule(600, 600), ceilings={"m": 15})
    verdict = book.observe("m", expected=2048, cached=0, billed_per_token=1.0, carried=10)
    assert verdict == "spill"
    assert book.rate("m").rpm < 9
    assert book.rate("m").spills == 1


def test_a_short_read_on_a_quiet_key_is_an_eviction_and_a_full_one_nothing() -> None:
    """A quiet key's miss is an eviction (rate unchanged); a read in the server's own tokens
    (another tokenizer: billed_per_token) is no spill."""
    book = KeyBook(SendSchedule(600, 600), ceilings={"m": 15})
    before = book.rate("m").rpm
    assert book.observe("m", expected=2048, cached=0, billed_per_token=1.0, carried=2) == (
        "eviction"
    )
    assert book.observe("m", expected=2048, cached=1100, billed_per_token=0.53, carried=12) is None
    assert book.rate("m").rpm == before
    assert book.rate("m").evictions == 1


def test_keys_that_never_spill_carry_more_up_to_the_published_rate() -> None:
    """Answers on keys loaded near their rate without a spill raise it a step at a time, never
    past the ceiling; a rate learnt by an earlier run is where the next one starts."""
    book = KeyBook(SendSchedule(600, 600), ceilings={"m": 15})
    for _ in range(CLEAN_ANSWERS * 10):
        book.observe("m", expected=2048, cached=2048, billed_per_token=1.0, carried=15)
    assert book.rate("m").rpm == 13.5  # 0.9 x the published 15: never past it
    assert KeyBook(SendSchedule(600), ceilings={"m": 15}, rates={"m": 7.5}).rate("m").rpm == 7.5
