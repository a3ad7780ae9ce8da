"""The local response cache: round trip, time to live, keys, scopes, bad entries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest

from pipeline.client.cache import LOCAL_SCOPE, CacheScope, NullCache, ResponseCache
from pipeline.client.result import APIResult
from pipeline.money.pricing import Usage
from pipeline.prompts.requests import CACHE_KEY_VERSION, response_cache_key

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
        value = raw.get(LOCAL_SCOPE.prefix + "k")
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
        raw.set(LOCAL_SCOPE.prefix + "bad", "{not json")
        raw.set(LOCAL_SCOPE.prefix + "old", '{"expires_at": null, "result": {"format": 0}}')
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


SIM = CacheScope.of("http://127.0.0.1:8000/v1", api_key="sk-sim")
OPENAI = CacheScope.of(None, api_key="sk-live")


def test_an_entry_is_served_only_in_its_scope(tmp_path: Path, wall: WallClock) -> None:
    """The same request stored by one scope is a miss for another scope of the same folder."""
    key = response_cache_key(BODY)
    with ResponseCache(tmp_path / "c", scope=SIM, now=wall) as rehearsal:
        rehearsal.put(key, RESULT, ttl_s=None)
        assert rehearsal.get(key) == RESULT
    with ResponseCache(tmp_path / "c", scope=OPENAI, now=wall) as production:
        assert production.get(key) is None
        assert len(production) == 1  # still there, for the simulator's scope
    with ResponseCache(tmp_path / "c", scope=SIM, now=wall) as rehearsal:
        assert rehearsal.get(key) == RESULT


def test_keys_are_stored_under_the_scope(tmp_path: Path, wall: WallClock) -> None:
    """A stored key reads endpoint | account hash | version tag and request hash."""
    key = response_cache_key(BODY)
    assert key.startswith(f"{CACHE_KEY_VERSION}:") and CACHE_KEY_VERSION == "v2"
    with ResponseCache(tmp_path / "c", scope=SIM, now=wall) as cache:
        cache.put(key, RESULT, ttl_s=None)
    with diskcache.Cache(str(tmp_path / "c")) as raw:
        assert list(raw.iterkeys()) == [f"http://127.0.0.1:8000/v1|{SIM.account}|{key}"]


def test_unscoped_v1_entries_read_as_misses(tmp_path: Path, wall: WallClock) -> None:
    """An answer stored by the old, unscoped key (v1: request hash only) is never served."""
    request_hash = response_cache_key(BODY).split(":", 1)[1]
    payload = json.dumps({"expires_at": None, "result": RESULT.to_json_dict()})
    with diskcache.Cache(str(tmp_path / "c")) as raw:
        raw.set(f"v1:{request_hash}", payload)
    for scope in (LOCAL_SCOPE, OPENAI):
        with ResponseCache(tmp_path / "c", scope=scope, now=wall) as cache:
            assert cache.get(response_cache_key(BODY)) is None
            assert cache.get(f"v1:{request_hash}") is None
