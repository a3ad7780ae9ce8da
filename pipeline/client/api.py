"""``ResponsesAPI``: one attempt at ``POST /v1/responses`` through the openai SDK.

It performs exactly one HTTP call (the ``AsyncOpenAI`` it wraps is built with
``max_retries=0``; retrying is ``retry.py``'s job), hands the response headers to a callback
(the rate limiter follows them), and returns an ``APIResult`` or raises a ``pipeline.errors``
exception. Both plain and streamed calls go through ``with_raw_response`` so the headers are
seen either way (the SDK returns the raw response before the stream body is read).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import openai
from openai.resources.responses import AsyncResponses

from pipeline.client.clock import SYSTEM_CLOCK, Clock
from pipeline.client.errors import response_error, scrub, translate
from pipeline.client.result import APIResult, field_of, result_of
from pipeline.errors import APIError, RetryableAPIError

try:  # the HTTP library the installed SDK is built on (openai 3.50+: httpx2)
    from httpx2 import Response as HTTPResponse
except ImportError:  # pragma: no cover - older SDKs on httpx (importing both costs start-up CPU)
    from httpx import Response as HTTPResponse  # type: ignore[assignment]

__all__ = ["APIResult", "HeadersCallback", "ResponsesAPI", "ResponsesCaller"]

HeadersCallback = Callable[[Mapping[str, str]], None]

# Parameters ``responses.create`` takes by name; anything else in a body goes in ``extra_body``
# so a field newer than the installed SDK still reaches the server.
_CREATE_PARAMS = frozenset(
    name
    for name in inspect.signature(AsyncResponses.create).parameters
    if name not in {"self", "extra_headers", "extra_query", "extra_body", "timeout", "stream"}
)


class ResponsesCaller(Protocol):
    """What ``ResponsesClient`` needs from the API layer (``ResponsesAPI`` or a test fake)."""

    async def call(
        self,
        body: Mapping[str, Any],
        *,
        stream: bool,
        timeout_s: float,
        on_headers: HeadersCallback | None = None,
    ) -> APIResult:
        """One attempt: the result, or a ``pipeline.errors.APIError``."""
        ...


class ResponsesAPI:
    """One-attempt calls to the Responses API over an ``openai.AsyncOpenAI`` client.

    ``secrets`` are scrubbed from every message along with the client's own API key.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        clock: Clock = SYSTEM_CLOCK,
        secrets: Iterable[str] = (),
    ) -> None:
        self._client = client
        self._clock = clock
        key = getattr(client, "api_key", None)
        self._secrets = tuple(s for s in (*secrets, key) if isinstance(s, str) and s)

    async def call(
        self,
        body: Mapping[str, Any],
        *,
        stream: bool,
        timeout_s: float,
        on_headers: HeadersCallback | None = None,
    ) -> APIResult:
        """Send ``body`` once; stream it when ``stream`` is true (then ``ttft_s`` is measured).

        Raises ``RateLimited``/``RetryableAPIError``/``PermanentAPIError``; headers of error
        responses are passed to ``on_headers`` too.
        """
        kwargs = self._kwargs(body, timeout_s)
        started = self._clock.monotonic()
        request_id: str | None = None
        try:
            if stream:
                return await self._streamed(kwargs, started, on_headers)
            # The documented custom-request form of the SDK (auth, base URL, error mapping and
            # timeouts are the SDK's) without its per-call parameter transform and model
            # construction, which cost more client CPU than everything else we do per request.
            payload = {k: v for k, v in body.items() if k != "stream"}
            raw: HTTPResponse = await self._client.post(
                "/responses", cast_to=HTTPResponse, body=payload, options={"timeout": timeout_s}
            )
            request_id = self._scrubbed(raw.headers.get("x-request-id"))
            if on_headers is not None:
                on_headers(raw.headers)
            response = raw.json()
        except openai.OpenAIError as exc:
            raise self._translated(exc, on_headers) from exc
        except ValueError as exc:  # a 200 whose body is not JSON (a proxy's page, a cut body)
            raise RetryableAPIError(
                f"unreadable response body: {type(exc).__name__}",
                request_id=request_id,
                maybe_billed=True,
            ) from exc
        return self._finished(response, started=started, ttft_s=None, request_id=request_id)

    async def _streamed(
        self, kwargs: dict[str, Any], started: float, on_headers: HeadersCallback | None
    ) -> APIResult:
        raw: Any = await self._client.responses.with_raw_response.create(**kwargs, stream=True)
        request_id = self._scrubbed(raw.request_id)
        if on_headers is not None:
            on_headers(raw.headers)
        events = raw.parse()
        ttft_s: float | None = None
        deltas: list[str] = []
        final: Any = None
        try:
            async for event in events:
                kind = field_of(event, "type")
                if kind == "response.output_text.delta":
                    if ttft_s is None:
                        ttft_s = self._clock.monotonic() - started
                    deltas.append(str(field_of(event, "delta") or ""))
                elif kind in ("response.completed", "response.incomplete"):
                    final = field_of(event, "response")
                    break
                elif kind == "response.failed":
                    error = field_of(field_of(event, "response"), "error")
                    raise self._response_error(error, request_id, "response.failed")
                elif kind == "error":
                    raise self._response_error(event, request_id, "error")
        finally:
            await events.close()
        if final is None:
            raise RetryableAPIError(
                "stream ended without response.completed",
                request_id=request_id,
                maybe_billed=True,
            )
        return self._finished(
            final, started=started, ttft_s=ttft_s, request_id=request_id, text="".join(deltas)
        )

    def _finished(
        self,
        response: Any,
        *,
        started: float,
        ttft_s: float | None,
        request_id: str | None,
        text: str = "",
    ) -> APIResult:
        status = field_of(response, "status")
        if status == "failed":
            raise self._response_error(field_of(response, "error"), request_id, "response failed")
        if status not in ("completed", "incomplete"):
            raise RetryableAPIError(f"response ended with status {status!r}", request_id=request_id)
        return result_of(
            response,
            latency_s=self._clock.monotonic() - started,
            ttft_s=ttft_s,
            request_id=request_id,
            fallback_text=text,
        )

    def _scrubbed(self, request_id: str | None) -> str | None:
        """A server-sent request id as it may be printed: a server that echoes the key in
        ``x-request-id`` must not get it into logs."""
        return None if request_id is None else scrub(request_id, self._secrets)

    def _response_error(self, error: Any, request_id: str | None, event: str) -> APIError:
        code = field_of(error, "code")
        message = field_of(error, "message")
        return response_error(
            code if isinstance(code, str) else None,
            message if isinstance(message, str) else None,
            request_id=request_id,
            secrets=self._secrets,
            event=event,
        )

    def _translated(self, exc: openai.OpenAIError, on_headers: HeadersCallback | None) -> APIError:
        if on_headers is not None and isinstance(exc, openai.APIStatusError):
            on_headers(exc.response.headers)
        return translate(exc, secrets=self._secrets)

    @staticmethod
    def _kwargs(body: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"timeout": timeout_s}
        extra: dict[str, Any] = {}
        for key, value in body.items():
            if key == "stream":
                continue
            (kwargs if key in _CREATE_PARAMS else extra)[key] = value
        if extra:
            kwargs["extra_body"] = extra
        return kwargs
