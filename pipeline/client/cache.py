"""The local response cache: a request already paid for is never paid for again.

Entries live in a ``diskcache.Cache`` directory, keyed by ``pipeline.requests.
response_cache_key(body)`` (a version tag plus the hash of the canonical request, which leaves
out ``metadata``, ``prompt_cache_key`` and other fields that do not change the answer). A value
is the JSON text of ``APIResult.to_json_dict()`` plus an expiry time: data, not pickled SDK
objects, so entries survive SDK upgrades and can be inspected.

Expiry is checked against the injected wall clock (cache entries outlive processes, so a
monotonic clock will not do); diskcache's own ``expire`` is set too, to evict old entries.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import diskcache

from pipeline.client.result import APIResult

log = logging.getLogger("contentgen.cache")


class ResultCache(Protocol):
    """What ``ResponsesClient`` needs from a response cache."""

    def get(self, key: str) -> APIResult | None:
        """The stored result for ``key``, or None."""
        ...

    def put(self, key: str, result: APIResult, ttl_s: float | None) -> None:
        """Store ``result`` under ``key`` for ``ttl_s`` seconds (None: no expiry)."""
        ...


class ResponseCache:
    """``APIResult``s on disk, with per-entry time to live. Close it (or use ``with``) when done."""

    def __init__(self, directory: Path | str, *, now: Callable[[], float] | None = None) -> None:
        # cull_limit=0: diskcache would otherwise measure the cache's size on every set
        # (a query per write on the hot path); expired entries are dropped once at open.
        self._cache = diskcache.Cache(str(directory), cull_limit=0)
        self._cache.expire()
        self._now = now if now is not None else time.time

    def get(self, key: str) -> APIResult | None:
        """The stored result for ``key``; expired or unreadable entries read as misses."""
        raw = self._cache.get(key)
        if raw is None:
            return None
        try:
            stored: Any = json.loads(raw) if isinstance(raw, str) else None
            if not isinstance(stored, dict):
                raise ValueError("not a JSON object")
            expires_at = stored.get("expires_at")
            if isinstance(expires_at, (int, float)) and expires_at <= self._now():
                self._cache.delete(key)
                return None
            return APIResult.from_json_dict(stored["result"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("dropping unreadable response-cache entry %s: %s", key, exc)
            self._cache.delete(key)
            return None

    def put(self, key: str, result: APIResult, ttl_s: float | None) -> None:
        """Store ``result`` under ``key``; ``ttl_s`` None keeps it until evicted."""
        if ttl_s is not None and (not math.isfinite(ttl_s) or ttl_s <= 0):
            return
        expires_at = None if ttl_s is None else self._now() + ttl_s
        payload = json.dumps(
            {"expires_at": expires_at, "result": result.to_json_dict()}, ensure_ascii=False
        )
        self._cache.set(key, payload, expire=ttl_s)

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        """Remove every entry."""
        self._cache.clear()

    def close(self) -> None:
        """Close the underlying database files."""
        self._cache.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class NullCache:
    """A cache that stores nothing, for profiles with caching off."""

    def get(self, key: str) -> APIResult | None:
        """Always a miss."""
        return None

    def put(self, key: str, result: APIResult, ttl_s: float | None) -> None:
        """Drop ``result``."""

    def close(self) -> None:
        """Nothing to close."""
