"""Translating the openai SDK's exceptions into ``pipeline.errors`` at the boundary.

Code above ``client/`` never sees ``openai.*``. The API's own message and code are kept; the
translated error chains the SDK exception as its cause. Every message we produce is scrubbed
of API keys (``sk-...`` patterns and the configured key), and so is the cause's message.

Decisions beyond "429/408/409/5xx retry, other 4xx don't":

- a 429 whose code is ``insufficient_quota`` or whose message says "Request too large" is
  permanent: waiting does not add credit or shrink the request;
- 401, 403, ``insufficient_quota`` and an unknown model are ``FatalAPIError``: no other
  request of the run can succeed, so the run stops (``_fatal``);
- ``x-should-retry: true|false`` overrides the status, as in the SDK;
- a streamed ``response.failed``/``error`` is retryable unless its code names a problem with
  the prompt itself (``PERMANENT_RESPONSE_CODES``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import openai

from pipeline.client.durations import retry_after_s
from pipeline.errors import (
    APIError,
    FatalAPIError,
    PermanentAPIError,
    RateLimited,
    RequestTooLarge,
    RetryableAPIError,
)

_KEY_PATTERN = re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-*]{6,}")
_REDACTED = "sk-***"

# ``Response.error.code`` values that retrying the same request cannot fix.
PERMANENT_RESPONSE_CODES = frozenset(
    {"invalid_prompt", "bio_policy", "data_residency_mismatch", "invalid_base64_image"}
)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every ``sk-...`` pattern and each of ``secrets`` replaced by a mask."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    return _KEY_PATTERN.sub(_REDACTED, text)


def _api_message(exc: openai.APIError) -> str:
    body: Any = exc.body
    if isinstance(body, Mapping):
        nested = body.get("error")
        inner: Mapping[str, Any] = nested if isinstance(nested, Mapping) else body
        message = inner.get("message")
        if isinstance(message, str) and message:
            return message
    return exc.message


def _should_retry_header(headers: Mapping[str, str]) -> bool | None:
    value = headers.get("x-should-retry")
    if value is None:
        return None
    return value.strip().lower() == "true"


def translate(exc: openai.OpenAIError, *, secrets: Iterable[str] = ()) -> APIError:
    """The ``pipeline.errors`` equivalent of an SDK exception (raise it ``from exc``).

    Also scrubs ``exc``'s own message in place, since it travels along as the cause.
    """
    secrets = tuple(secrets)
    _scrub_exception(exc, secrets)
    if isinstance(exc, openai.APIStatusError):
        return _from_status(exc, secrets)
    if isinstance(exc, openai.APITimeoutError):
        if isinstance(exc.__cause__, httpx.ConnectTimeout | httpx.PoolTimeout):
            return RetryableAPIError("connection timed out")
        return RetryableAPIError(
            "request timed out: the server took it and sent no answer", maybe_billed=True
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        detail = f": {type(cause).__name__}" if cause is not None else ""
        # Refused before a byte went out: never billed. Anything later may have been.
        billed = not isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout)
        return RetryableAPIError(scrub(f"connection failed{detail}", secrets), maybe_billed=billed)
    if isinstance(exc, openai.APIError):
        # An error raised mid-stream (an SSE payload with a top-level "error"), or a body the
        # SDK could not validate: the server had trouble, so it is worth another try.
        return RetryableAPIError(scrub(_api_message(exc), secrets), code=exc.code)
    return PermanentAPIError(scrub(f"{type(exc).__name__}: {exc}", secrets))


def _from_status(exc: openai.APIStatusError, secrets: tuple[str, ...]) -> APIError:
    status = exc.status_code
    headers: Mapping[str, str] = exc.response.headers
    api_message = _api_message(exc)
    message = scrub(
        f"HTTP {status}" + (f" {exc.code}" if exc.code else "") + f": {api_message}", secrets
    )
    request_id = scrub(exc.request_id, secrets) if exc.request_id else None
    common: dict[str, Any] = {"status": status, "code": exc.code, "request_id": request_id}
    hint = retry_after_s(headers, api_message if status == 429 else None)

    retryable = status in (408, 409, 429) or status >= 500
    if status == 429 and (
        exc.code == "insufficient_quota" or "request too large" in api_message.lower()
    ):
        retryable = False
    override = _should_retry_header(headers)
    if override is not None:
        retryable = override

    fatal = _fatal(status, exc.code, api_message)
    if fatal is not None:
        kind, advice = fatal
        return FatalAPIError(message, kind=kind, advice=advice, **common)
    if not retryable:
        if status == 429 and "request too large" in api_message.lower():
            return RequestTooLarge(message, **common)
        return PermanentAPIError(message, **common)
    if status == 429:
        return RateLimited(message, retry_after_s=hint, **common)
    return RetryableAPIError(message, retry_after_s=hint, **common)


def _fatal(status: int, code: str | None, message: str) -> tuple[str, str] | None:
    """(kind, advice) when an answer is about the account or endpoint, not one request."""
    if status == 401:
        return "auth", "the API key was refused: check OPENAI_API_KEY (and OPENAI_BASE_URL)"
    if status == 403:
        return "permission", "the key may not use this model or endpoint: check its project"
    if code == "insufficient_quota":
        return "quota", "the account is out of quota: add credit or raise its limit"
    if code == "model_not_found" or (status == 404 and "model" in message.lower()):
        return "model", "the API does not know this model: fix `model` in profiles.toml"
    return None


def response_error(
    code: str | None,
    message: str | None,
    *,
    request_id: str | None,
    secrets: Iterable[str] = (),
    event: str,
) -> APIError:
    """The error for a ``response.failed``/``error`` stream event or a failed response body."""
    text = scrub(
        f"{event}" + (f" {code}" if code else "") + f": {message or 'no message'}", secrets
    )
    request_id = scrub(request_id, secrets) if request_id else None
    if code in PERMANENT_RESPONSE_CODES:
        return PermanentAPIError(text, code=code, request_id=request_id)
    if code == "rate_limit_exceeded":
        hint = retry_after_s(None, message)
        return RateLimited(text, code=code, request_id=request_id, retry_after_s=hint)
    return RetryableAPIError(text, code=code, request_id=request_id)


def _scrub_exception(exc: BaseException, secrets: tuple[str, ...]) -> None:
    exc.args = tuple(scrub(a, secrets) if isinstance(a, str) else a for a in exc.args)
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        exc.message = scrub(message, secrets)  # type: ignore[attr-defined]
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        body["message"] = scrub(body["message"], secrets)
