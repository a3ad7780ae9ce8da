"""ResponsesAPI through the real openai SDK against an httpx MockTransport (no network).

Bodies and streams copy the shapes of API-NOTES §2.3 (response object), §3.3 (a recorded
stream) and §5 (error bodies, rate-limit headers).
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import httpx
import openai
import pytest

from pipeline.client.api import ResponsesAPI
from pipeline.client.cache import NullCache
from pipeline.client.clock import FakeClock
from pipeline.client.limiter import RateLimiter
from pipeline.client.responses import ResponsesClient
from pipeline.client.retry import RetryPolicy
from pipeline.errors import PermanentAPIError, RateLimited, RetryableAPIError

API_KEY = "sk-test-0123456789abcdefghij"
BODY: dict[str, Any] = {
    "model": "gpt-5.1",
    "input": [
        {"role": "developer", "content": "Summarise."},
        {"role": "user", "content": "An article."},
    ],
    "max_output_tokens": 500,
    "store": False,
    "metadata": {"job_id": "7"},
}
RATE_HEADERS = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-limit-tokens": "50000000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-remaining-tokens": "49999975",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "0s",
    "x-request-id": "req_d1266ca570484342b5fd1b897dde95c3",
    "openai-processing-ms": "759",
}

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def response_json(**overrides: Any) -> dict[str, Any]:
    """A completed response in the official example's shape (API-NOTES §2.3)."""
    body: dict[str, Any] = {
        "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        "object": "response",
        "created_at": 1741476542,
        "status": "completed",
        "completed_at": 1741476543,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": 500,
        "model": "gpt-5.1-2025-11-13",
        "output": [
            {
                "type": "message",
                "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "In a peaceful grove", "annotations": []},
                    {"type": "output_text", "text": " beneath a moon.", "annotations": []},
                ],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 2048,
            "input_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 0},
            "output_tokens": 87,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 2135,
        },
        "user": None,
        "metadata": {},
    }
    body.update(overrides)
    return body


def error_json(message: str, type_: str, code: str | None, param: str | None = None) -> Any:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def sse(*events: Mapping[str, Any]) -> Iterator[bytes]:
    for seq, event in enumerate(events):
        data = json.dumps({**event, "sequence_number": seq}, separators=(",", ":"))
        yield f"event: {event['type']}\ndata: {data}\n\n".encode()


def stream_events(final_type: str = "response.completed", **final: Any) -> list[dict[str, Any]]:
    """The event order of a plain text answer (API-NOTES §3.2/§3.3)."""
    msg_id = "msg_084003240a4a517f006a5eb795d4c88198ab88e83435fcc948"
    started = response_json(status="in_progress", output=[], usage=None, service_tier="auto")
    item = {
        "id": msg_id,
        "type": "message",
        "status": "in_progress",
        "content": [],
        "role": "assistant",
    }
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    common = {"item_id": msg_id, "output_index": 0, "content_index": 0}
    done = response_json(**final)
    return [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {"type": "response.output_item.added", "item": item, "output_index": 0},
        {"type": "response.content_part.added", "part": part, **common},
        {
            "type": "response.output_text.delta",
            "delta": "In a peaceful grove",
            "logprobs": [],
            "obfuscation": "iR0b",
            **common,
        },
        {
            "type": "response.output_text.delta",
            "delta": " beneath a moon.",
            "logprobs": [],
            **common,
        },
        {
            "type": "response.output_text.done",
            "text": "In a peaceful grove beneath a moon.",
            "logprobs": [],
            **common,
        },
        {"type": final_type, "response": done},
    ]


class Server:
    """A scripted MockTransport handler that records the requests it saw."""

    def __init__(self, *answers: Handler | httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, httpx.Response):
            return answer
        return await answer(request)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_api(clock: FakeClock) -> AsyncIterator[Callable[[Server], ResponsesAPI]]:
    opened: list[tuple[openai.AsyncOpenAI, httpx.AsyncClient]] = []

    def make(server: Server) -> ResponsesAPI:
        http = httpx.AsyncClient(transport=httpx.MockTransport(server))
        sdk = openai.AsyncOpenAI(
            api_key=API_KEY, base_url="http://sim.test/v1", http_client=http, max_retries=0
        )
        opened.append((sdk, http))
        return ResponsesAPI(sdk, clock=clock)

    yield make
    for sdk, http in opened:
        await sdk.close()
        await http.aclose()


def json_response(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json=body, headers=dict(headers or {}))


def sse_response(chunks: Any, headers: Mapping[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"content-type": "text/event-stream; charset=utf-8", **(headers or {})},
        content=chunks,
    )


# --- non-streaming -------------------------------------------------------------------------


async def test_completed_response_is_parsed_with_usage_details(make_api: Any) -> None:
    """Text, usage (incl. cached and reasoning tokens), model, tier and request id come back."""
    server = Server(json_response(200, response_json(), RATE_HEADERS))
    result = await make_api(server).call(BODY, stream=False, timeout_s=30)
    assert result.status == "completed"
    assert result.output_text == "In a peaceful grove beneath a moon."
    assert result.model == "gpt-5.1-2025-11-13"
    assert result.response_id.startswith("resp_")
    assert (result.usage.input_tokens, result.usage.cached_tokens) == (2048, 1920)
    assert (result.usage.output_tokens, result.usage.reasoning_tokens) == (87, 0)
    assert result.service_tier == "default"
    assert result.request_id == "req_d1266ca570484342b5fd1b897dde95c3"
    assert result.ttft_s is None
    assert result.reasoning_summary is None


async def test_request_body_reaches_the_server_unchanged(make_api: Any) -> None:
    """The body is sent as given (unknown fields too, via extra_body); no stream flag is added."""
    server = Server(json_response(200, response_json()))
    await make_api(server).call({**BODY, "future_field": {"x": 1}}, stream=False, timeout_s=30)
    [sent] = server.bodies()
    assert sent == {**BODY, "future_field": {"x": 1}}
    assert server.requests[0].headers["x-stainless-retry-count"] == "0"


async def test_headers_are_observed(make_api: Any) -> None:
    """Every response's headers go to the callback, so the limiter can follow them."""
    seen: list[dict[str, str]] = []
    server = Server(json_response(200, response_json(), RATE_HEADERS))
    await make_api(server).call(
        BODY, stream=False, timeout_s=30, on_headers=lambda h: seen.append(dict(h))
    )
    [headers] = seen
    for name, value in RATE_HEADERS.items():
        assert headers[name] == value


async def test_reasoning_response_has_summary_and_reasoning_tokens(make_api: Any) -> None:
    """Reasoning items' summary_text parts are joined; reasoning tokens come from details."""
    output = [
        {
            "id": "rs_1",
            "type": "reasoning",
            "summary": [
                {"type": "summary_text", "text": "Read the article."},
                {"type": "summary_text", "text": "Kept it short."},
            ],
        },
        response_json()["output"][0],
    ]
    usage = {
        "input_tokens": 81,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 1035,
        "output_tokens_details": {"reasoning_tokens": 832},
        "total_tokens": 1116,
    }
    server = Server(json_response(200, response_json(output=output, usage=usage)))
    result = await make_api(server).call(BODY, stream=False, timeout_s=30)
    assert result.reasoning_summary == "Read the article.\n\nKept it short."
    assert result.usage.reasoning_tokens == 832
    assert result.usage.output_tokens == 1035
    assert result.output_text == "In a peaceful grove beneath a moon."


async def test_missing_usage_details_count_as_zero(make_api: Any) -> None:
    """A usage without details (or no usage at all) parses to zeros, not a crash."""
    server = Server(
        json_response(200, response_json(usage={"input_tokens": 12, "output_tokens": 3})),
        json_response(200, response_json(usage=None, service_tier=None)),
    )
    api = make_api(server)
    first = await api.call(BODY, stream=False, timeout_s=30)
    assert (first.usage.input_tokens, first.usage.cached_tokens) == (12, 0)
    assert (first.usage.output_tokens, first.usage.reasoning_tokens) == (3, 0)
    second = await api.call(BODY, stream=False, timeout_s=30)
    assert second.usage.input_tokens == 0 and second.service_tier is None


async def test_incomplete_response_is_a_result(make_api: Any) -> None:
    """status incomplete at max_output_tokens comes back as an incomplete result with reason."""
    body = response_json(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    server = Server(json_response(200, body))
    result = await make_api(server).call(BODY, stream=False, timeout_s=30)
    assert result.status == "incomplete"
    assert result.incomplete_reason == "max_output_tokens"


async def test_failed_response_body_is_retryable(make_api: Any) -> None:
    """A 200 whose response failed with a server_error raises RetryableAPIError."""
    body = response_json(
        status="failed",
        output=[],
        usage=None,
        error={"code": "server_error", "message": "The model failed."},
    )
    server = Server(json_response(200, body, {"x-request-id": "req_f"}))
    with pytest.raises(RetryableAPIError, match="The model failed") as info:
        await make_api(server).call(BODY, stream=False, timeout_s=30)
    assert info.value.request_id == "req_f"


async def test_non_json_body_is_retryable(make_api: Any) -> None:
    """A 200 that is not JSON (a proxy page) is retryable, not a crash."""
    server = Server(
        httpx.Response(
            200, content=b"<html>oops</html>", headers={"content-type": "application/json"}
        )
    )
    with pytest.raises(RetryableAPIError):
        await make_api(server).call(BODY, stream=False, timeout_s=30)


# --- errors ------------------------------------------------------------------------------


async def test_429_is_rate_limited_with_retry_after_ms(make_api: Any) -> None:
    """A 429 becomes RateLimited carrying retry-after-ms as seconds; its headers are observed."""
    body = error_json(
        "Rate limit reached for gpt-4.1 in organization org-XXXX on tokens per min (TPM): "
        "Limit 30000, Used 28039, Requested 3906. Please try again in 3.89s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        "tokens",
        "rate_limit_exceeded",
    )
    headers = {
        "retry-after-ms": "1250",
        "retry-after": "2",
        "x-request-id": "req_429",
        "x-ratelimit-remaining-tokens": "0",
    }
    seen: list[dict[str, str]] = []
    server = Server(json_response(429, body, headers))
    with pytest.raises(RateLimited) as info:
        await make_api(server).call(
            BODY, stream=False, timeout_s=30, on_headers=lambda h: seen.append(dict(h))
        )
    err = info.value
    assert err.retry_after_s == pytest.approx(1.25)
    assert (err.status, err.code, err.request_id) == (429, "rate_limit_exceeded", "req_429")
    assert "Rate limit reached for gpt-4.1" in str(err)
    assert seen and seen[0]["x-ratelimit-remaining-tokens"] == "0"


async def test_429_without_headers_takes_the_hint_from_the_message(make_api: Any) -> None:
    """With no retry-after header, "Please try again in 644ms" is the hint."""
    body = error_json(
        "Rate limit reached ... Please try again in 644ms. Visit ...",
        "tokens",
        "rate_limit_exceeded",
    )
    server = Server(json_response(429, body))
    with pytest.raises(RateLimited) as info:
        await make_api(server).call(BODY, stream=False, timeout_s=30)
    assert info.value.retry_after_s == pytest.approx(0.644)


async def test_insufficient_quota_is_permanent(make_api: Any) -> None:
    """A 429 for an exhausted quota is not worth retrying."""
    body = error_json(
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    )
    server = Server(json_response(429, body))
    with pytest.raises(PermanentAPIError, match="exceeded your current quota") as info:
        await make_api(server).call(BODY, stream=False, timeout_s=30)
    assert info.value.status == 429


async def test_400_is_permanent_with_the_apis_message(make_api: Any) -> None:
    """A 400 is PermanentAPIError keeping the API's message, code and request id."""
    body = error_json(
        "The requested model 'does-not-exist-nr-test' does not exist.",
        "invalid_request_error",
        "model_not_found",
        "model",
    )
    server = Server(json_response(400, body, {"x-request-id": "req_400"}))
    with pytest.raises(PermanentAPIError) as info:
        await make_api(server).call(BODY, stream=False, timeout_s=30)
    err = info.value
    assert "The requested model 'does-not-exist-nr-test' does not exist." in str(err)
    assert (err.status, err.code, err.request_id) == (400, "model_not_found", "req_400")
    assert isinstance(err.__cause__, openai.BadRequestError)


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503])
async def test_retryable_statuses(make_api: Any, status: int) -> None:
    """408, 409 and 5xx are retryable."""
    server = Server(
        json_response(status, error_json("The server had an error", "server_error", None))
    )
    with pytest.raises(RetryableAPIError) as info:
        await make_api(server).call(BODY, stream=False, timeout_s=30)
    assert info.value.status == status
    assert not isinstance(info.value, RateLimited)


async def test_x_should_retry_false_overrides_status(make_api: Any) -> None:
    """The server's x-should-retry: false makes a 503 permanent, as in the SDK."""
    server = Server(
        json_response(503, error_json("nope", "server_error", None), {"x-should-retry": "false"})
    )
    with pytest.raises(PermanentAPIError):
        await make_api(server).call(BODY, stream=False, timeout_s=30)


async def test_api_key_never_appears_in_errors(make_api: Any) -> None:
    """The configured key is scrubbed from our message and from the chained SDK error."""
    body = error_json(
        f"Incorrect API key provided: {API_KEY}.", "invalid_request_error", "invalid_api_key"
    )
    server = Server(json_response(401, body))
    with pytest.raises(PermanentAPIError) as info:
        await make_api(server).call(BODY, stream=False, timeout_s=30)
    assert API_KEY not in str(info.value)
    assert API_KEY not in str(info.value.__cause__)
    assert "Incorrect API key provided" in str(info.value)


async def test_connection_error_is_retryable(make_api: Any) -> None:
    """A refused connection is RetryableAPIError."""

    async def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RetryableAPIError, match="connection failed"):
        await make_api(Server(refuse)).call(BODY, stream=False, timeout_s=30)


async def test_timeout_is_retryable(make_api: Any) -> None:
    """A read timeout is RetryableAPIError."""

    async def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(RetryableAPIError, match="timed out"):
        await make_api(Server(slow)).call(BODY, stream=False, timeout_s=30)


# --- streaming ---------------------------------------------------------------------------


async def test_stream_with_deltas_measures_time_to_first_token(
    make_api: Any, clock: FakeClock
) -> None:
    """The stream's text and usage come from response.completed; ttft is the first delta."""

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in sse(*stream_events()):
            if b"output_text.delta" in chunk.split(b"\n", 1)[0]:
                clock.advance(0.25)
            yield chunk
        clock.advance(0.5)

    seen: list[dict[str, str]] = []
    server = Server(sse_response(chunks(), RATE_HEADERS))
    result = await make_api(server).call(
        BODY, stream=True, timeout_s=30, on_headers=lambda h: seen.append(dict(h))
    )
    assert server.bodies()[0]["stream"] is True
    assert result.output_text == "In a peaceful grove beneath a moon."
    assert result.ttft_s == pytest.approx(0.25)
    assert result.latency_s == pytest.approx(0.5)
    assert result.usage.cached_tokens == 1920
    assert result.service_tier == "default"
    assert result.request_id == RATE_HEADERS["x-request-id"]
    assert seen and seen[0]["x-ratelimit-limit-tokens"] == "50000000"


async def test_stream_text_falls_back_to_deltas(make_api: Any) -> None:
    """When the completed event's response has no output, the streamed deltas are the text."""
    server = Server(sse_response(b"".join(sse(*stream_events(output=[])))))
    result = await make_api(server).call(BODY, stream=True, timeout_s=30)
    assert result.output_text == "In a peaceful grove beneath a moon."


async def test_stream_incomplete(make_api: Any) -> None:
    """response.incomplete ends the stream with an incomplete result."""
    events = stream_events(
        "response.incomplete",
        status="incomplete",
        incomplete_details={"reason": "max_output_tokens"},
    )
    server = Server(sse_response(b"".join(sse(*events))))
    result = await make_api(server).call(BODY, stream=True, timeout_s=30)
    assert (result.status, result.incomplete_reason) == ("incomplete", "max_output_tokens")


async def test_stream_failed_event_is_retryable(make_api: Any) -> None:
    """response.failed raises RetryableAPIError with the response's error message."""
    failed = response_json(
        status="failed",
        output=[],
        usage=None,
        error={"code": "server_error", "message": "The model failed to generate a response."},
    )
    events = [*stream_events()[:3], {"type": "response.failed", "response": failed}]
    server = Server(sse_response(b"".join(sse(*events)), {"x-request-id": "req_sf"}))
    with pytest.raises(RetryableAPIError, match="The model failed to generate") as info:
        await make_api(server).call(BODY, stream=True, timeout_s=30)
    assert info.value.code == "server_error"
    assert info.value.request_id == "req_sf"


async def test_stream_failed_with_a_prompt_problem_is_permanent(make_api: Any) -> None:
    """A failure the prompt itself causes (invalid_prompt) is not retried."""
    failed = response_json(
        status="failed",
        output=[],
        usage=None,
        error={"code": "invalid_prompt", "message": "Invalid prompt."},
    )
    server = Server(sse_response(b"".join(sse({"type": "response.failed", "response": failed}))))
    with pytest.raises(PermanentAPIError, match="Invalid prompt"):
        await make_api(server).call(BODY, stream=True, timeout_s=30)


async def test_stream_error_event_is_retryable(make_api: Any) -> None:
    """An error event raises RetryableAPIError with its message and code."""
    events = [
        *stream_events()[:2],
        {
            "type": "error",
            "code": "ERR_SOMETHING",
            "message": "Something went wrong",
            "param": None,
        },
    ]
    server = Server(sse_response(b"".join(sse(*events))))
    with pytest.raises(RetryableAPIError, match="Something went wrong") as info:
        await make_api(server).call(BODY, stream=True, timeout_s=30)
    assert info.value.code == "ERR_SOMETHING"


async def test_stream_rate_limit_error_event_is_rate_limited(make_api: Any) -> None:
    """An error event with rate_limit_exceeded (seen on Azure) is RateLimited with its hint."""
    event = {
        "type": "error",
        "code": "rate_limit_exceeded",
        "param": None,
        "message": "Rate limit reached. Please try again in 2s.",
    }
    server = Server(sse_response(b"".join(sse(stream_events()[0], event))))
    with pytest.raises(RateLimited) as info:
        await make_api(server).call(BODY, stream=True, timeout_s=30)
    assert info.value.retry_after_s == pytest.approx(2.0)


async def test_stream_without_terminal_event_is_retryable(make_api: Any) -> None:
    """A stream that ends before response.completed is RetryableAPIError."""
    server = Server(sse_response(b"".join(sse(*stream_events()[:-1]))))
    with pytest.raises(RetryableAPIError, match=r"without response\.completed"):
        await make_api(server).call(BODY, stream=True, timeout_s=30)


async def test_stream_dropped_mid_way_is_retryable(make_api: Any) -> None:
    """A connection lost mid-stream is RetryableAPIError."""

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in list(sse(*stream_events()))[:4]:
            yield chunk
        raise httpx.ReadError("connection reset")

    with pytest.raises(RetryableAPIError):
        await make_api(Server(sse_response(chunks()))).call(BODY, stream=True, timeout_s=30)


async def test_stream_http_error_before_body_is_translated(make_api: Any) -> None:
    """An error status on a streamed request is a normal JSON error (here a 400)."""
    body = error_json(
        "Unsupported parameter: 'temperature' is not supported with this model.",
        "invalid_request_error",
        "unsupported_parameter",
        "temperature",
    )
    with pytest.raises(PermanentAPIError, match="Unsupported parameter"):
        await make_api(Server(json_response(400, body))).call(BODY, stream=True, timeout_s=30)


# --- through the whole client ------------------------------------------------------------


async def test_client_retries_a_429_then_succeeds_through_the_sdk(
    make_api: Any, clock: FakeClock
) -> None:
    """A real-SDK 429 with retry-after-ms is honoured, and the limiter follows the headers."""
    limit_429 = error_json(
        "Rate limit reached ... Please try again in 3.89s.", "tokens", "rate_limit_exceeded"
    )
    server = Server(
        json_response(
            429, limit_429, {"retry-after-ms": "1500", "x-ratelimit-remaining-tokens": "0"}
        ),
        json_response(200, response_json(), RATE_HEADERS),
    )
    limiter = RateLimiter(rpm=None, tpm=None, clock=clock)
    client = ResponsesClient(
        make_api(server),
        cache=NullCache(),
        limiter=limiter,
        retry=RetryPolicy(clock=clock, rng=random.Random(3)),
        clock=clock,
    )
    outcome = await client.generate(
        BODY, estimated_tokens=2600, stream=False, cache_ttl_s=None, cache_enabled=False, job_id=7
    )
    assert outcome.ok and outcome.attempts == 2
    assert 1.5 <= clock.sleeps[0] <= 1.5 + 0.25
    assert len(server.requests) == 2
    stats = limiter.snapshot()
    assert stats.tpm_limit == 50_000_000 and stats.penalties == 1
