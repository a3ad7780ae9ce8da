"""The local response cache: round trip, time to live, keys, bad entries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest

from pipeline.client.cache import NullCache, ResponseCache
from pipeline.client.result import APIResult
from pipeline.pricing import Usage
from pipeline.requests import response_cache_key

RESULT = APIResult(
    response_id="resp_1",
    model="gpt-4.1-mini-2025-04-14",
    status="incomplete",
    output_text='{"title": "Ünïcode – ok"}',
    usage=Usage(input_tokens=2048, cached_tokens=1920, output_tokens=87, reasoning_tokens=5),
    incomplete_reason="max_output_tokens",
    reasoning_summary="thought about it",
    service_tier="default",
    latency_s=1.25,
    ttft_s=0.2,
    request_id="req_1",
)
BODY: dict[str, Any] = {
    "model": "gpt-4.1-mini",
    "input": [{"role": "user", "content": "Summarise this."}],
    "max_output_tokens": 300,
    "store": False,
}


class WallClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall() -> WallClock:
    return WallClock()


@pytest.fixture
def cache(tmp_path: Path, wall: WallClock) -> Iterator[ResponseCache]:
    with ResponseCache(tmp_path / "responses", now=wall) as c:
        yield c


def test_round_trip(cache: ResponseCache) -> None:
    """What goes in comes out equal, field for field."""
    cache.put("k", RESULT, ttl_s=None)
    assert cache.get("k") == RESULT
    assert cache.get("other") is None


def test_stored_as_json_not_pickle(tmp_path: Path, wall: WallClock) -> None:
    """Entries are JSON text (data), readable without our classes or the SDK."""
    with ResponseCache(tmp_path / "c", now=wall) as cache:
        cache.put("k", RESULT, ttl_s=None)
    with diskcache.Cache(str(tmp_path / "c")) as raw:
        value = raw.get("k")
    assert isinstance(value, str) and '"output_text"' in value


def test_survives_reopening(tmp_path: Path, wall: WallClock) -> None:
    """A later run (a new process) still hits."""
    with ResponseCache(tmp_path / "c", now=wall) as cache:
        cache.put("k", RESULT, ttl_s=3600)
    with ResponseCache(tmp_path / "c", now=wall) as cache:
        assert cache.get("k") == RESULT


def test_ttl_expires(cache: ResponseCache, wall: WallClock) -> None:
    """An entry is served until its time to live has passed, then it is a miss."""
    cache.put("k", RESULT, ttl_s=60)
    wall.now += 59
    assert cache.get("k") == RESULT
    wall.now += 2
    assert cache.get("k") is None


def test_no_ttl_keeps(cache: ResponseCache, wall: WallClock) -> None:
    """ttl None keeps the entry (until evicted)."""
    cache.put("k", RESULT, ttl_s=None)
    wall.now += 10 * 365 * 86400
    assert cache.get("k") == RESULT


def test_zero_ttl_stores_nothing(cache: ResponseCache) -> None:
    """A non-positive ttl means "do not cache"."""
    cache.put("k", RESULT, ttl_s=0)
    assert cache.get("k") is None


def test_unreadable_entry_is_a_miss(tmp_path: Path, wall: WallClock) -> None:
    """A corrupt or old-format entry reads as a miss and is dropped."""
    with diskcache.Cache(str(tmp_path / "c")) as raw:
        raw.set("bad", "{not json")
        raw.set("old", '{"expires_at": null, "result": {"format": 0}}')
    with ResponseCache(tmp_path / "c", now=wall) as cache:
        assert cache.get("bad") is None
        assert cache.get("old") is None
        assert len(cache) == 0


def test_key_ignores_metadata_and_prompt_cache_key(cache: ResponseCache) -> None:
    """A duplicate request with other metadata / prompt_cache_key / tier hits the same entry."""
    first = {**BODY, "metadata": {"job_id": "1"}, "prompt_cache_key": "grp-a-0"}
    second = {
        **BODY,
        "metadata": {"job_id": "2"},
        "prompt_cache_key": "grp-a-3",
        "service_tier": "flex",
        "stream": True,
    }
    assert response_cache_key(first) == response_cache_key(second)
    cache.put(response_cache_key(first), RESULT, ttl_s=None)
    assert cache.get(response_cache_key(second)) == RESULT


def test_key_changes_with_the_prompt_or_settings() -> None:
    """Anything that changes the answer changes the key."""
    base = response_cache_key(BODY)
    assert response_cache_key({**BODY, "max_output_tokens": 301}) != base
    assert response_cache_key({**BODY, "temperature": 0.2}) != base
    other_input = [{"role": "user", "content": "Summarise that."}]
    assert response_cache_key({**BODY, "input": other_input}) != base


def test_null_cache_stores_nothing() -> None:
    """NullCache never hits."""
    cache = NullCache()
    cache.put("k", RESULT, ttl_s=None)
    assert cache.get("k") is None
