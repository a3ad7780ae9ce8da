"""The aiohttp application: ``/v1/responses``, files and batches, and the ``/_sim/`` admin hooks.

Every answer carries ``x-request-id: req_<32 hex>``; ``/v1/`` routes need
``Authorization: Bearer <any non-empty key>``.

Admin hooks (no auth): ``GET /_sim/ledger`` (see ``SimulatorState.snapshot``),
``POST /_sim/reset``, ``GET /_sim/config``, ``POST /_sim/faults`` (``{"fail_rate": 0.1, ...}``:
any non-fixed config field), ``POST /_sim/script`` (``{"faults": ["500", "drop", "ok"]}``, see
``faults``) and ``POST /_sim/clock`` (``{"advance_s": 600}``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any, NoReturn

from aiohttp import web
from pydantic import ValidationError

from pipeline.money import Tier
from pipeline.simulator import apierrors
from pipeline.simulator.apierrors import SimAPIError
from pipeline.simulator.batch_routes import add_batch_routes
from pipeline.simulator.execution import Execution
from pipeline.simulator.state import SimulatorState
from pipeline.simulator.streaming import stream_response

STATE: web.AppKey[SimulatorState] = web.AppKey("state", SimulatorState)
_JSON = "application/json"
_ERROR_DELAY_S = 0.05  # a 5xx or drop arrives after a little work, scaled by latency_scale


def new_request_id() -> str:
    """``req_`` + 32 hex digits, like the API's ``x-request-id``."""
    return "req_" + secrets.token_hex(16)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer with the given headers."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": _JSON, **(headers or {})},
    )


def error_response(error: SimAPIError, headers: dict[str, str] | None = None) -> web.Response:
    """An OpenAI error body with its status and headers."""
    return json_response(error.body, error.status, {**(headers or {}), **error.headers})


def check_auth(request: web.Request) -> None:
    """Raise a 401 unless the request has ``Authorization: Bearer <key>`` with a key the
    server accepts (any non-empty key unless ``api_keys`` names some)."""
    value = request.headers.get("Authorization", "")
    scheme, _, key = value.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise apierrors.missing_api_key()
    accepted = request.app[STATE].config.api_keys
    if accepted and key.strip() not in accepted:
        raise apierrors.incorrect_api_key(key.strip())


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (raises the API's 400 when it is not JSON)."""
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise apierrors.invalid_json() from exc


async def create_response(request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses``."""
    state = request.app[STATE]
    started = time.monotonic()
    headers = {"x-request-id": new_request_id(), "openai-version": "2020-10-01"}
    state.ledger.started(request.headers.get("x-stainless-retry-count"))
    model = "?"  # ledger key when the body names no usable model
    tier: Tier = "standard"
    try:
        check_auth(request)
        body = await read_json(request)
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            model = body["model"]
        prep = state.prepare(body)
        tier = prep.tier
        fault = state.faults.decide(flex=prep.tier == "flex", stream=prep.stream)
        if fault.kind == "flex":
            raise apierrors.flex_unavailable()
        if fault.kind in ("429", "quota"):
            raise _scripted_429(state, prep.model, fault.kind, fault.retry_ms)
        if fault.kind == "invalid_prompt":
            raise SimAPIError(
                400,
                "Invalid prompt: your prompt was flagged as potentially violating our usage "
                "policy.",
                code="invalid_prompt",
            )
        cfg = state.config
        headers.update(state.limiter.admit(prep.model, prep.estimate(cfg)))
        if fault.kind in ("500", "503", "drop"):
            await _sleep(_ERROR_DELAY_S * cfg.latency_scale + fault.extra_latency_s)
            if fault.kind == "drop":
                state.ledger.record(prep.model, prep.tier, "dropped")
                _drop(request)
            raise apierrors.server_error() if fault.kind == "500" else apierrors.overloaded()
        execution = state.execute(prep, fault)
        if prep.stream:
            return await _stream(request, state, execution, headers, fault.kind)
        await _sleep(execution.total_s)
        body_out = state.complete(execution)
        headers["openai-processing-ms"] = str(int((time.monotonic() - started) * 1000))
        return json_response(body_out, 200, headers)
    except SimAPIError as exc:
        status = "429" if exc.status == 429 else "5xx" if exc.status >= 500 else "4xx"
        state.ledger.record(model, tier, status)
        return error_response(exc, headers)
    finally:
        state.ledger.finished()


async def _stream(
    request: web.Request,
    state: SimulatorState,
    execution: Execution,
    headers: dict[str, str],
    fault_kind: str | None,
) -> web.StreamResponse:
    try:
        return await stream_response(request, state, execution, headers, fault_kind)
    except (ConnectionResetError, asyncio.CancelledError):
        # The client went away mid-stream: nothing billed, nothing cached.
        state.ledger.record(execution.prep.model, execution.prep.tier, "dropped")
        raise


def _scripted_429(state: SimulatorState, model: str, kind: str, retry_ms: int) -> SimAPIError:
    if kind == "quota":
        return SimAPIError(
            429,
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            type="insufficient_quota",
            code="insufficient_quota",
        )
    limit = state.config.tpm_for(model)
    headers = state.limiter.headers(model)
    headers["retry-after-ms"] = str(retry_ms)
    headers["retry-after"] = str(max(1, -(-retry_ms // 1000)))
    return SimAPIError(
        429,
        f"Rate limit reached for {model} in organization org-simulator on tokens per min "
        f"(TPM): Limit {limit}, Used {limit}, Requested 1. Please try again in {retry_ms}ms. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
        type="tokens",
        code="rate_limit_exceeded",
        headers=headers,
    )


def _drop(request: web.Request) -> NoReturn:
    """Close the connection without an answer (the SDK raises APIConnectionError)."""
    if request.transport is not None:
        request.transport.abort()
    raise asyncio.CancelledError


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


async def get_response(request: web.Request) -> web.Response:
    """``GET /v1/responses/{id}`` for stored responses."""
    check_auth(request)
    state = request.app[STATE]
    response_id = request.match_info["response_id"]
    stored = state.stored.get(response_id)
    if stored is None:
        raise apierrors.not_found("response", response_id)
    return json_response(stored.body)


async def delete_response(request: web.Request) -> web.Response:
    """``DELETE /v1/responses/{id}``."""
    check_auth(request)
    state = request.app[STATE]
    response_id = request.match_info["response_id"]
    if state.stored.pop(response_id, None) is None:
        raise apierrors.not_found("response", response_id)
    return json_response({"id": response_id, "object": "response", "deleted": True})


async def ledger(request: web.Request) -> web.Response:
    """``GET /_sim/ledger``."""
    return json_response(request.app[STATE].snapshot())


async def reset(request: web.Request) -> web.Response:
    """``POST /_sim/reset``: a fresh simulator with the same config."""
    request.app[STATE].reset()
    return json_response({"reset": True})


async def get_config(request: web.Request) -> web.Response:
    """``GET /_sim/config``."""
    return json_response(request.app[STATE].config.model_dump(mode="json"))


async def set_faults(request: web.Request) -> web.Response:
    """``POST /_sim/faults``: change knobs (fault rates, limits, latency) at runtime."""
    changes = await read_json(request)
    if not isinstance(changes, dict):
        raise apierrors.invalid_type("body", "an object")
    try:
        config = request.app[STATE].configure(changes)
    except (ValueError, ValidationError) as exc:
        raise SimAPIError(400, str(exc).splitlines()[0], code="invalid_value") from exc
    return json_response(config.model_dump(mode="json"))


async def script(request: web.Request) -> web.Response:
    """``POST /_sim/script``: faults for the next requests, in order."""
    data = await read_json(request)
    entries = data.get("faults") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise apierrors.invalid_type("faults", "an array of strings")
    state = request.app[STATE]
    try:
        state.faults.script(entries)
    except ValueError as exc:
        raise apierrors.invalid_value("faults", str(exc)) from exc
    return json_response({"pending": state.faults.pending()})


async def advance_clock(request: web.Request) -> web.Response:
    """``POST /_sim/clock``: move simulated time forward."""
    data = await read_json(request)
    seconds = data.get("advance_s") if isinstance(data, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise apierrors.invalid_value("advance_s", "advance_s must be a number >= 0")
    state = request.app[STATE]
    state.clock.advance(float(seconds))
    return json_response({"now_s": state.clock.now()})


async def not_found(request: web.Request) -> web.Response:
    """Any other route: the API's 404."""
    raise apierrors.invalid_url(request.method, request.path)


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn ``SimAPIError`` from the simpler handlers into JSON answers."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except SimAPIError as exc:
        return error_response(exc)


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    if "x-request-id" not in response.headers:
        response.headers["x-request-id"] = new_request_id()


def create_app(state: SimulatorState) -> web.Application:
    """The simulator's aiohttp application around ``state``."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=210 * 1024 * 1024)
    app[STATE] = state
    app.on_response_prepare.append(_add_request_id)
    app.router.add_post("/v1/responses", create_response)
    app.router.add_get("/v1/responses/{response_id}", get_response)
    app.router.add_delete("/v1/responses/{response_id}", delete_response)
    add_batch_routes(app, STATE, check_auth)
    app.router.add_get("/_sim/ledger", ledger)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/config", get_config)
    app.router.add_post("/_sim/faults", set_faults)
    app.router.add_post("/_sim/script", script)
    app.router.add_post("/_sim/clock", advance_clock)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
