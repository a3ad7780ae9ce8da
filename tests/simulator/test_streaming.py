"""stream: true through the SDK (both styles) and on the wire: order, numbering, endings."""

from __future__ import annotations

import json

import httpx
import openai

from pipeline.simulator import SimulatorServer
from tests.simulator.conftest import MakeSim
from tests.simulator.support import sdk

TEXT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
TAIL = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def sse(sim: SimulatorServer, body: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
    """The raw (event, data) pairs of a streamed request."""
    resp = httpx.post(
        f"{sim.base_url}/responses",
        json={**body, "stream": True},
        headers={"Authorization": "Bearer sk-test"},
    )
    assert resp.headers["content-type"].startswith("text/event-stream")
    pairs = []
    for block in resp.text.strip().split("\n\n"):
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        pairs.append((event_line[7:], json.loads(data_line[6:])))
    return pairs


def test_wire_format_order_and_sequence_numbers(sim: SimulatorServer) -> None:
    """event/data pairs, §3.2 order, sequence from 0 by 1, deltas with logprobs, no [DONE]."""
    pairs = sse(sim, {"model": "gpt-4.1-mini", "input": "Tell me.", "max_output_tokens": 60})
    kinds = [kind for kind, _ in pairs]
    assert kinds[:4] == TEXT_ORDER and kinds[-4:] == TAIL
    deltas = kinds[4:-4]
    assert deltas and set(deltas) == {"response.output_text.delta"}
    assert [data["sequence_number"] for _, data in pairs] == list(range(len(pairs)))
    assert all(data["type"] == kind for kind, data in pairs)
    first_delta = pairs[4][1]
    assert first_delta["logprobs"] == [] and "obfuscation" in first_delta
    created = pairs[0][1]["response"]
    assert isinstance(created, dict)
    assert created["status"] == "in_progress" and created["usage"] is None
    assert created["service_tier"] == "auto"
    completed = pairs[-1][1]["response"]
    assert isinstance(completed, dict) and completed["service_tier"] == "default"
    text = "".join(str(data["delta"]) for kind, data in pairs if kind.endswith(".delta"))
    assert text == pairs[-4][1]["text"]
    assert "[DONE]" not in json.dumps(pairs)


def test_obfuscation_can_be_turned_off(sim: SimulatorServer) -> None:
    """stream_options.include_obfuscation=false drops the field."""
    pairs = sse(
        sim,
        {"model": "gpt-4.1-mini", "input": "x", "stream_options": {"include_obfuscation": False}},
    )
    assert all("obfuscation" not in data for _, data in pairs)


def test_sync_stream_helper_gets_the_final_response(client: openai.OpenAI) -> None:
    """client.responses.stream(...) accumulates deltas into the same text as non-streaming."""
    params = {"model": "gpt-4.1-mini", "input": "Stream it.", "max_output_tokens": 80}
    with client.responses.stream(**params) as stream:  # type: ignore[arg-type]
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text
    assert final.output_text == client.responses.create(**params).output_text  # type: ignore[call-overload]
    assert final.usage is not None and final.usage.output_tokens > 0


async def test_async_create_stream_and_async_helper(aclient: openai.AsyncOpenAI) -> None:
    """async for over create(stream=True), and the async stream helper, both complete."""
    stream = await aclient.responses.create(
        model="o4-mini", input="Check.", reasoning={"effort": "low", "summary": "auto"}, stream=True
    )
    kinds = [event.type async for event in stream]
    assert kinds[2] == "response.output_item.added"
    assert "response.reasoning_summary_text.delta" in kinds
    assert kinds.index("response.reasoning_summary_part.done") < kinds.index(
        "response.content_part.added"
    )
    assert kinds[-1] == "response.completed"
    async with aclient.responses.stream(model="gpt-4.1-mini", input="Hi.") as helper:
        async for _ in helper:
            pass
        final = await helper.get_final_response()
    assert final.status == "completed"


def test_failed_stream_ends_with_response_failed(
    sim: SimulatorServer, client: openai.OpenAI
) -> None:
    """A mid-stream fault: some deltas, then response.failed with server_error; not billed."""
    sim.script("stream_fail", "stream_error")
    events = list(client.responses.create(model="gpt-4.1-mini", input="x", stream=True))
    kinds = [e.type for e in events]
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.failed"
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "server_error"
    events = list(client.responses.create(model="gpt-4.1-mini", input="x", stream=True))
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    totals = sim.ledger()["totals"]
    assert totals["requests"]["failed"] == 2 and totals["cost_usd"] == "0"


def test_stream_helper_raises_on_failure(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """get_final_response() refuses a stream that did not complete."""
    sim.script("stream_fail")
    with client.responses.stream(model="gpt-4.1-mini", input="x") as stream:
        for _ in stream:
            pass
        try:
            stream.get_final_response()
        except RuntimeError as exc:
            assert "response.completed" in str(exc)
        else:
            raise AssertionError("a failed stream produced a final response")


def test_incomplete_stream_ends_with_response_incomplete(make_sim: MakeSim) -> None:
    """A stream cut at max_output_tokens ends with response.incomplete and is billed."""
    sim = make_sim(incomplete_rate=1.0)
    with sdk(sim) as client:
        events = list(
            client.responses.create(
                model="gpt-4.1-mini", input="x", max_output_tokens=30, stream=True
            )
        )
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.incomplete_details is not None  # type: ignore[union-attr]
    assert last.response.usage is not None and last.response.usage.output_tokens == 30  # type: ignore[union-attr]
    assert sim.ledger()["totals"]["requests"]["incomplete"] == 1


def test_pre_stream_errors_are_plain_http_errors(client: openai.OpenAI) -> None:
    """An unknown model with stream=true is an HTTP 400, not an event."""
    try:
        client.responses.create(model="nope", input="x", stream=True)
    except openai.BadRequestError as exc:
        assert exc.code == "model_not_found"
    else:
        raise AssertionError("expected a 400")


def test_streamed_answers_are_paced_by_latency(make_sim: MakeSim) -> None:
    """With latency on, the stream takes about base + tokens x per-token time."""
    sim = make_sim(latency_scale=1.0, base_latency_s=0.05, output_token_s=0.002)
    with sdk(sim) as client:
        import time

        began = time.perf_counter()
        final = None
        for event in client.responses.create(
            model="gpt-4.1-mini", input="x", max_output_tokens=100, stream=True
        ):
            final = event
        elapsed = time.perf_counter() - began
    assert final is not None and final.type == "response.completed"
    tokens = final.response.usage.output_tokens  # type: ignore[union-attr]
    assert elapsed >= 0.05 + tokens * 0.002 * 0.8
