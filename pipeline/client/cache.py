"""The local response cache: a request already paid for is never paid for again.

Entries live in a ``diskcache.Cache`` directory (by default the user's cache folder, see
``Settings.cache_dir``), keyed by the request's scope plus ``pipeline.prompts.requests.
response_cache_key(body)`` (a version tag plus the hash of the canonical request, which leaves
out ``metadata``, ``prompt_cache_key`` and other fields that do not change the answer). A value
is the JSON text of ``APIResult.to_json_dict()`` plus an expiry time: data, not pickled SDK
objects, so entries survive SDK upgrades and can be inspected.

The scope (``CacheScope``) is the endpoint the answer came from and the account it was paid
by: a rehearsal against the simulator is never served to a run against OpenAI, nor one
account's answers to another. It is computed once per client stack (``pipeline.client.wiring``) and
each key is that prefix plus the request's key: ``{endpoint}|{account}|{request key}``, e.g.
``https://api.openai.com/v1|3f9a...|v2:5be1...``. The account is a salted SHA-256 of the
organization and project when either is set (a rotated key keeps its answers), else of the
API key; the key itself is never stored, logged or shown (``fingerprint`` is 8 hex digits).

Expiry is checked against the injected wall clock (cache entries outlive processes, so a
monotonic clock will not do); diskcache's own ``expire`` is set too, to evict old entries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit

import diskcache

from pipeline.client.result import APIResult
from pipeline.errors import ConfigError

log = logging.getLogger("contentgen.cache")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Salt of the account hash, so it matches no other hash of the same key.
_ACCOUNT_SALT = b"contentgen response-cache account\x00"
_SEP = "|"


def normalize_endpoint(base_url: str | None) -> str:
    """``base_url`` (None: OpenAI's) as ``scheme://host[:port]/path``, without a trailing slash.

    Scheme and host are lower-cased and a default port dropped; user, password, query and
    fragment are left out (they do not name another server, and a password must not be stored).
    """
    parts = urlsplit((base_url or DEFAULT_BASE_URL).strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"OPENAI_BASE_URL has an invalid port: {exc}") from None
    if scheme not in _DEFAULT_PORTS or not host:
        raise ConfigError("OPENAI_BASE_URL must be an http(s) URL with a host")
    if ":" in host:
        host = f"[{host}]"  # IPv6
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def account_hash(
    api_key: str | None, *, organization: str | None = None, project: str | None = None
) -> str:
    """A one-way hash naming the account requests are paid by (32 hex digits).

    The organization and project when either is set (every key of a project gets the same
    answers, and a rotated key keeps them), else the API key.
    """
    if organization or project:
        material = f"org={organization or ''}\nproject={project or ''}"
    else:
        material = f"key={api_key or ''}"
    return hashlib.sha256(_ACCOUNT_SALT + material.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheScope:
    """Where an answer came from (normalised base URL) and who paid for it (account hash).

    An entry is served only to a cache of the same scope.
    """

    endpoint: str
    account: str

    @classmethod
    def of(
        cls,
        base_url: str | None,
        *,
        api_key: str | None,
        organization: str | None = None,
        project: str | None = None,
    ) -> CacheScope:
        """The scope of requests sent to ``base_url`` with these credentials."""
        return cls(
            normalize_endpoint(base_url),
            account_hash(api_key, organization=organization, project=project),
        )

    @property
    def prefix(self) -> str:
        """What every key of this scope starts with."""
        return f"{self.endpoint}{_SEP}{self.account}{_SEP}"

    @property
    def host(self) -> str:
        """The endpoint's host (and port), for display."""
        return urlsplit(self.endpoint).netloc or self.endpoint

    @property
    def fingerprint(self) -> str:
        """A short form of the account hash, for display."""
        return self.account[:8]


# The scope of a cache built without one (tests with fake APIs, tools): never a real server's.
LOCAL_SCOPE = CacheScope(endpoint="local", account="-")


def scope_of_key(key: str) -> CacheScope | None:
    """The scope a stored key belongs to; None for keys stored before keys had one."""
    parts = key.rsplit(_SEP, 2)
    if len(parts) != 3:
        return None
    return CacheScope(endpoint=parts[0], account=parts[1])


class ResultCache(Protocol):
    """What ``ResponsesClient`` needs from a response cache."""

    def get(self, key: str) -> APIResult | None:
        """The stored result for ``key``, or None."""
        ...

    def put(self, key: str, result: APIResult, ttl_s: float | None) -> None:
        """Store ``result`` under ``key`` for ``ttl_s`` seconds (None: no expiry)."""
        ...


class ResponseCache:
    """``APIResult``s on disk, with per-entry time to live. Close it (or use ``with``) when done.

    ``scope`` is where the answers come from and who pays for them (``CacheScope``): ``get``
    and ``put`` see only the entries of this scope. ``LOCAL_SCOPE`` when left out. ``origin``
    names the ledger (``settings.ledger_id``) whose run paid for what ``put`` stores; ``get``
    returns it as ``APIResult.paid_by``, so a run can tell its own unrecorded payments from
    answers another database already accounts for.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        scope: CacheScope = LOCAL_SCOPE,
        now: Callable[[], float] | None = None,
        origin: str | None = None,
    ) -> None:
        # cull_limit=0: diskcache would otherwise measure the cache's size on every set
        # (a query per write on the hot path); expired entries are dropped once at open.
        try:
            self._cache = diskcache.Cache(str(directory), cull_limit=0)
            self._cache.expire()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"CONTENTGEN_CACHE_DIR: cannot use {directory} for the response cache "
                f"({_reason(exc)}); point it at a writable folder"
            ) from None
        self._now = now if now is not None else time.time
        self._scope = scope
        self._prefix = scope.prefix  # once: each request then costs one concatenation
        self._write_failed = False
        self.origin = origin

    @property
    def scope(self) -> CacheScope:
        """The scope this cache reads and writes."""
        return self._scope

    def get(self, key: str) -> APIResult | None:
        """The stored result for ``key``; expired or unreadable entries read as misses."""
        key = self._prefix + key
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
            result = APIResult.from_json_dict(stored["result"])
            origin = stored.get("origin")
            return replace(result, paid_by=origin) if isinstance(origin, str) else result
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("dropping unreadable response-cache entry %s: %s", key, exc)
            self._cache.delete(key)
            return None

    def put(self, key: str, result: APIResult, ttl_s: float | None) -> None:
        """Store ``result`` under ``key``; ``ttl_s`` None keeps it until evicted."""
        if ttl_s is not None and (not math.isfinite(ttl_s) or ttl_s <= 0):
            return
        expires_at = None if ttl_s is None else self._now() + ttl_s
        stored: dict[str, Any] = {"expires_at": expires_at, "result": result.to_json_dict()}
        if self.origin is not None:
            stored["origin"] = self.origin
        payload = json.dumps(stored, ensure_ascii=False)
        try:
            self._cache.set(self._prefix + key, payload, expire=ttl_s)
        except (OSError, sqlite3.Error) as exc:
            # A full disk costs the cache, never the run: the answer is recorded either way.
            if not self._write_failed:
                log.warning("response cache not written (%s): answers are not cached", exc)
            self._write_failed = True

    def __len__(self) -> int:
        """Entries in the directory, of every scope."""
        return len(self._cache)

    def clear(self) -> None:
        """Remove every entry, of every scope."""
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


# -- looking at the directory (`contentgen cache stats|clear`) -------------------------------


@dataclass(frozen=True)
class ScopeEntries:
    """How many entries one scope has; ``scope`` None for entries stored before scopes (v1)."""

    scope: CacheScope | None
    entries: int

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON: endpoint, host, account fingerprint, entries."""
        s = self.scope
        return {
            "endpoint": s.endpoint if s else None,
            "host": s.host if s else None,
            "account": s.fingerprint if s else None,
            "entries": self.entries,
        }


@dataclass(frozen=True)
class CacheStats:
    """What a response-cache directory holds."""

    directory: Path
    exists: bool
    entries: int
    size_bytes: int
    scopes: tuple[ScopeEntries, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "directory": str(self.directory),
            "exists": self.exists,
            "entries": self.entries,
            "size_bytes": self.size_bytes,
            "scopes": [s.as_dict() for s in self.scopes],
        }


def _size_on_disk(directory: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            with suppress(OSError):  # removed while we walked
                total += (Path(root) / name).stat().st_size
    return total


def _reason(exc: BaseException) -> str:
    """An OS or SQLite error in a few words (``Not a directory``), without a traceback."""
    inner = exc.__context__  # diskcache re-raises the OS error with its own message
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@contextmanager
def _existing(directory: Path) -> Iterator[diskcache.Cache | None]:
    """The cache in ``directory``, or None when there is none (nothing is created then)."""
    if not (directory / diskcache.core.DBNAME).is_file():
        yield None
        return
    with diskcache.Cache(str(directory), cull_limit=0) as cache:
        yield cache


def _count_by_scope(keys: Iterator[Any]) -> tuple[ScopeEntries, ...]:
    counts: Counter[CacheScope | None] = Counter(
        scope_of_key(k) if isinstance(k, str) else None for k in keys
    )
    ordered = sorted(
        counts.items(), key=lambda kv: (kv[0] is None, kv[0].endpoint if kv[0] else "", -kv[1])
    )
    return tuple(ScopeEntries(scope, n) for scope, n in ordered)


def cache_stats(directory: Path) -> CacheStats:
    """Entries (per scope) and bytes on disk of the response cache in ``directory``.

    A directory that does not exist yet holds 0 entries (and is not created).
    """
    with _existing(directory) as cache:
        if cache is None:
            scopes: tuple[ScopeEntries, ...] = ()
        else:
            scopes = _count_by_scope(cache.iterkeys())
    return CacheStats(
        directory=directory,
        exists=directory.is_dir(),
        entries=sum(s.entries for s in scopes),
        size_bytes=_size_on_disk(directory) if directory.is_dir() else 0,
        scopes=scopes,
    )


def clear_cache(
    directory: Path, *, endpoint: str | None = None, scope: CacheScope | None = None
) -> tuple[ScopeEntries, ...]:
    """Remove entries from the response cache in ``directory``; what was removed, per scope.

    Every entry by default; with ``endpoint`` only those of that base URL (any account); with
    ``scope`` only those of that scope. Both given: entries matching both.
    """
    wanted = normalize_endpoint(endpoint) if endpoint is not None else None
    selective = wanted is not None or scope is not None

    def chosen(key: Any) -> bool:
        found = scope_of_key(key) if isinstance(key, str) else None
        if found is None:
            return not selective
        return (wanted is None or found.endpoint == wanted) and (scope is None or found == scope)

    with _existing(directory) as cache:
        if cache is None:
            return ()
        keys = [k for k in cache.iterkeys() if chosen(k)]
        if not selective:
            cache.clear()
        else:
            with cache.transact():
                for key in keys:
                    cache.delete(key)
    return _count_by_scope(iter(keys))
