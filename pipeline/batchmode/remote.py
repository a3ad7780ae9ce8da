"""The Files and Batches API, where SDK objects and errors enter batch mode.

``OpenAIBatchAPI`` wraps ``openai.AsyncOpenAI``: each call goes through the one retry policy
(``client/retry.py``), SDK exceptions are translated into ``pipeline.errors`` like in
``client/`` (nothing above this module sees ``openai.*``), and batches come back as plain
``RemoteBatch`` values. Creating a batch is the one call that must not happen twice: before
retrying it, the API is asked whether the first attempt created the batch after all.

``BatchAPI`` is the protocol batch mode uses; tests pass the real class pointed at the
simulator, or a subclass that fails on purpose (a crash between two steps).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import openai

from pipeline.batchmode.files import ENDPOINT
from pipeline.client import RetryPolicy, field_of, translate
from pipeline.errors import APIError, RetryableAPIError

T = TypeVar("T")
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# How far back a lookup by ref searches (a crash and restart is expected within hours).
_LOOKBACK_S = 6 * 3600
_MAX_SCANNED = 2000


@dataclass(frozen=True)
class RemoteBatch:
    """What the API says about a batch."""

    id: str
    status: str
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors: tuple[tuple[str | None, str | None], ...] = ()
    created_at: int | None = None
    expires_at: int | None = None
    metadata: Mapping[str, str] | None = None

    @property
    def terminal(self) -> bool:
        """True once the batch will not change any more."""
        return self.status in TERMINAL

    @property
    def error_codes(self) -> set[str]:
        """The codes of the batch-level errors (``token_limit_exceeded``...)."""
        return {code for code, _ in self.errors if code}

    @property
    def error_text(self) -> str | None:
        """The batch-level errors as one line (None without errors)."""
        if not self.errors:
            return None
        return "; ".join(
            f"{code or 'error'}: {message or ''}".strip() for code, message in self.errors
        )


def remote_batch(obj: Any) -> RemoteBatch:
    """A ``RemoteBatch`` from the SDK's ``Batch`` (or its JSON)."""
    counts = field_of(obj, "request_counts")
    errors = field_of(field_of(obj, "errors"), "data") or ()
    metadata = field_of(obj, "metadata")
    return RemoteBatch(
        id=str(field_of(obj, "id")),
        status=str(field_of(obj, "status")),
        input_file_id=field_of(obj, "input_file_id"),
        output_file_id=field_of(obj, "output_file_id"),
        error_file_id=field_of(obj, "error_file_id"),
        total=int(field_of(counts, "total") or 0),
        completed=int(field_of(counts, "completed") or 0),
        failed=int(field_of(counts, "failed") or 0),
        errors=tuple((field_of(e, "code"), field_of(e, "message")) for e in errors),
        created_at=field_of(obj, "created_at"),
        expires_at=field_of(obj, "expires_at"),
        metadata=dict(metadata) if isinstance(metadata, Mapping) else None,
    )


class BatchAPI(Protocol):
    """What batch mode needs from the Files and Batches API."""

    async def upload(self, filename: str, data: bytes) -> str:
        """Upload a batch input file; its id."""
        ...

    async def find_file(self, filename: str, *, since: int) -> str | None:
        """The id of a batch input file named ``filename`` uploaded after ``since``, if any."""
        ...

    async def create(self, input_file_id: str, metadata: Mapping[str, str]) -> RemoteBatch:
        """Create a ``/v1/responses`` batch with a 24 h window."""
        ...

    async def find_batch(self, ref: str, *, since: int) -> RemoteBatch | None:
        """The batch whose metadata carries ``contentgen_ref == ref``, if any."""
        ...

    async def get(self, batch_id: str) -> RemoteBatch:
        """The batch's current state."""
        ...

    async def cancel(self, batch_id: str) -> RemoteBatch:
        """Ask to cancel the batch."""
        ...

    async def content(self, file_id: str) -> bytes:
        """A file's bytes (output and error files)."""
        ...


class OpenAIBatchAPI:
    """``BatchAPI`` over ``openai.AsyncOpenAI`` (built with ``max_retries=0``)."""

    def __init__(
        self,
        sdk: openai.AsyncOpenAI,
        *,
        retry: RetryPolicy | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self._sdk = sdk
        self._retry = retry or RetryPolicy()
        key = getattr(sdk, "api_key", None)
        self._secrets = tuple(s for s in (*secrets, key) if isinstance(s, str) and s)

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        async def attempt(_number: int) -> T:
            try:
                return await fn()
            except openai.OpenAIError as exc:
                raise translate(exc, secrets=self._secrets) from exc

        attempted = await self._retry.run(attempt)
        if attempted.error is not None:
            raise attempted.error
        return cast(T, attempted.value)  # None is a value here (nothing found)

    async def upload(self, filename: str, data: bytes) -> str:
        """Upload ``data`` as ``filename`` with purpose ``batch``."""
        created = await self._call(
            lambda: self._sdk.files.create(file=(filename, data), purpose="batch")
        )
        return str(created.id)

    async def find_file(self, filename: str, *, since: int) -> str | None:
        """Search the newest batch files for ``filename``."""

        async def scan() -> str | None:
            seen = 0
            async for f in self._sdk.files.list(purpose="batch", order="desc"):
                seen += 1
                if f.filename == filename:
                    return str(f.id)
                if (f.created_at or 0) < since - _LOOKBACK_S or seen >= _MAX_SCANNED:
                    break
            return None

        return await self._call(scan)

    async def create(self, input_file_id: str, metadata: Mapping[str, str]) -> RemoteBatch:
        """Create the batch; a retry first checks whether the failed attempt created it."""
        ref = metadata.get("contentgen_ref")
        tried = False

        async def attempt() -> RemoteBatch:
            nonlocal tried
            if tried and ref is not None:
                found = await self._find(ref, since=0)
                if found is not None:
                    return found
            tried = True
            batch = await self._sdk.batches.create(
                input_file_id=input_file_id,
                endpoint=ENDPOINT,
                completion_window="24h",
                metadata=dict(metadata),
            )
            return remote_batch(batch)

        return await self._call(attempt)

    async def _find(self, ref: str, *, since: int) -> RemoteBatch | None:
        seen = 0
        async for batch in self._sdk.batches.list(limit=100):
            seen += 1
            if (batch.metadata or {}).get("contentgen_ref") == ref:
                return remote_batch(batch)
            if (since and batch.created_at < since - _LOOKBACK_S) or seen >= _MAX_SCANNED:
                break
        return None

    async def find_batch(self, ref: str, *, since: int) -> RemoteBatch | None:
        """Search the newest batches for one created with ``ref`` in its metadata."""
        return await self._call(lambda: self._find(ref, since=since))

    async def get(self, batch_id: str) -> RemoteBatch:
        """Retrieve the batch."""
        return remote_batch(await self._call(lambda: self._sdk.batches.retrieve(batch_id)))

    async def cancel(self, batch_id: str) -> RemoteBatch:
        """Cancel the batch (it goes through ``cancelling`` to ``cancelled``)."""
        return remote_batch(await self._call(lambda: self._sdk.batches.cancel(batch_id)))

    async def content(self, file_id: str) -> bytes:
        """Download a file."""

        async def download() -> bytes:
            response = await self._sdk.files.content(file_id)
            return bytes(response.content)

        return await self._call(download)


__all__ = [
    "TERMINAL",
    "APIError",
    "BatchAPI",
    "OpenAIBatchAPI",
    "RemoteBatch",
    "RetryableAPIError",
    "remote_batch",
]
