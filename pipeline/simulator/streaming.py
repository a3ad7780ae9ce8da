"""Server-sent events for ``stream: true`` in the order of API-NOTES §3.2.

``response.created`` (0) -> ``response.in_progress`` -> [reasoning item added/done, with
summary part/text events when a summary was asked for] -> message ``output_item.added`` ->
``content_part.added`` -> ``output_text.delta`` x N -> ``output_text.done`` ->
``content_part.done`` -> ``output_item.done`` -> ``response.completed`` (or
``response.incomplete``). No ``[DONE]``. A mid-stream fault sends ``response.failed`` (after an
``error`` event for ``stream_error``) once about half of the deltas are out. A prewarm
(``prompt_cache_options.prewarm``, GPT-5.6+) streams ``response.created`` ->
``response.in_progress`` -> ``response.completed`` with ``output: []`` (INFERENCE: the guide
does not say whether prewarm may stream; the simulator accepts it).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from pipeline.simulator.execution import Execution
from pipeline.simulator.responses import message_item, reasoning_item, response_object
from pipeline.simulator.state import SimulatorState
from pipeline.simulator.text import deltas

_OBFUSCATION = "q8Zk2LmX0vRt7bYw4NcP9sJd1HfGa6Ue"
_FLUSH_S = 0.05
FAILED_MESSAGE = "The model failed to generate a response."


class EventWriter:
    """Numbers events from 0 and buffers their wire form until ``take``."""

    def __init__(self, *, obfuscate: bool) -> None:
        self.sequence = 0
        self._obfuscate = obfuscate
        self._parts: list[str] = []

    def add(self, kind: str, payload: dict[str, Any]) -> None:
        """Queue one event (``type`` and ``sequence_number`` added)."""
        data = json.dumps({"type": kind, **payload, "sequence_number": self.sequence})
        self._parts.append(f"event: {kind}\ndata: {data}\n\n")
        self.sequence += 1

    def delta(self, kind: str, fields: str, text: str) -> None:
        """Queue a text delta; ``fields`` is the pre-rendered JSON of its fixed fields."""
        extra = ""
        if self._obfuscate:
            start = self.sequence % 16
            extra = f',"obfuscation":"{_OBFUSCATION[start : start + 16 - len(text) % 12]}"'
        self._parts.append(
            f'event: {kind}\ndata: {{"type":"{kind}",{fields},"delta":{json.dumps(text)}'
            f'{extra},"sequence_number":{self.sequence}}}\n\n'
        )
        self.sequence += 1

    def take(self) -> bytes:
        """The queued events as bytes (and an empty queue)."""
        data = "".join(self._parts).encode()
        self._parts.clear()
        return data


class _Pacer:
    """Writes queued events and sleeps so deltas spread over the generation time."""

    def __init__(self, resp: web.StreamResponse, writer: EventWriter, per_delta_s: float) -> None:
        self._resp = resp
        self._writer = writer
        self._per_delta_s = per_delta_s
        self._owed = 0.0

    async def flush(self, then_sleep_s: float = 0.0) -> None:
        """Write what is queued, then wait ``then_sleep_s`` (time-to-first-token, reasoning)."""
        data = self._writer.take()
        if data:
            await self._resp.write(data)
        if then_sleep_s > 0:
            await asyncio.sleep(then_sleep_s)

    async def settle(self) -> None:
        """Wait the generation time still owed, then write what is queued."""
        owed, self._owed = self._owed, 0.0
        if owed > 0:
            await asyncio.sleep(owed)
        await self.flush()

    async def tick(self) -> None:
        """Account one delta; every ~50 ms of owed time, wait it and write the batch."""
        self._owed += self._per_delta_s
        if self._owed >= _FLUSH_S:
            await self.settle()


def _summary_events(writer: EventWriter, item_id: str, summary: str) -> None:
    base = {"item_id": item_id, "output_index": 0, "summary_index": 0}
    writer.add("response.reasoning_summary_part.added", {**base, "part": _part("")})
    fields = f'"item_id":"{item_id}","output_index":0,"summary_index":0'
    for piece in deltas(summary):
        writer.delta("response.reasoning_summary_text.delta", fields, piece)
    writer.add("response.reasoning_summary_text.done", {**base, "text": summary})
    writer.add("response.reasoning_summary_part.done", {**base, "part": _part(summary)})


def _part(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


async def stream_response(
    request: web.Request,
    state: SimulatorState,
    execution: Execution,
    headers: dict[str, str],
    fault_kind: str | None,
) -> web.StreamResponse:
    """Send ``execution`` as an SSE stream; bill and cache-write it only if it finishes."""
    prep, gen, ids = execution.prep, execution.generation, execution.ids
    options = prep.body.get("stream_options")
    obfuscate = not (isinstance(options, dict) and options.get("include_obfuscation") is False)
    writer = EventWriter(obfuscate=obfuscate)
    resp = web.StreamResponse(
        status=200,
        headers={**headers, "Content-Type": "text/event-stream; charset=utf-8"},
    )
    await resp.prepare(request)
    pieces = deltas(gen.text) if gen.has_message else []
    writing_s = execution.total_s - execution.ttft_s - execution.reasoning_s
    per_delta = max(0.0, writing_s) / max(1, len(pieces))
    pacer = _Pacer(resp, writer, per_delta)
    start = response_object(
        prep,
        ids.response,
        execution.created_at,
        status="in_progress",
        service_tier=str(prep.body.get("service_tier") or "auto"),
    )
    writer.add("response.created", {"response": start})
    writer.add("response.in_progress", {"response": start})
    await pacer.flush(execution.ttft_s)
    failing = fault_kind in ("stream_fail", "stream_error")
    fail_at = len(pieces) // 2
    index = 0
    if prep.generation.effort is not None and not prep.prewarm:
        summary = gen.summary if prep.summary else None
        writer.add(
            "response.output_item.added",
            {"item": reasoning_item(ids.reasoning, None), "output_index": 0},
        )
        await pacer.flush(execution.reasoning_s)  # the model thinks before it writes
        if summary:
            _summary_events(writer, ids.reasoning, summary)
        writer.add(
            "response.output_item.done",
            {"item": reasoning_item(ids.reasoning, summary), "output_index": 0},
        )
        index = 1
    if gen.has_message:
        message = message_item(ids.message, "", "in_progress")
        message["content"] = []
        writer.add("response.output_item.added", {"item": message, "output_index": index})
        where = {"content_index": 0, "item_id": ids.message, "output_index": index}
        writer.add("response.content_part.added", {**where, "part": _text_part("")})
        fields = f'"content_index":0,"item_id":"{ids.message}","logprobs":[],"output_index":{index}'
        for number, piece in enumerate(pieces):
            if failing and number == fail_at:
                break
            writer.delta("response.output_text.delta", fields, piece)
            await pacer.tick()
    await pacer.settle()
    if failing:
        return await _fail(resp, writer, state, execution, fault_kind)
    if gen.has_message:
        status = "incomplete" if gen.incomplete else "completed"
        writer.add("response.output_text.done", {**where, "logprobs": [], "text": gen.text})
        writer.add("response.content_part.done", {**where, "part": _text_part(gen.text)})
        writer.add(
            "response.output_item.done",
            {"item": message_item(ids.message, gen.text, status), "output_index": index},
        )
    final = state.complete(execution)
    kind = "response.incomplete" if gen.incomplete else "response.completed"
    writer.add(kind, {"response": final})
    await pacer.flush()
    await resp.write_eof()
    return resp


async def _fail(
    resp: web.StreamResponse,
    writer: EventWriter,
    state: SimulatorState,
    execution: Execution,
    fault_kind: str | None,
) -> web.StreamResponse:
    """End the stream with ``response.failed`` (not billed, nothing cached)."""
    prep = execution.prep
    if fault_kind == "stream_error":
        writer.add("error", {"code": "server_error", "message": FAILED_MESSAGE, "param": None})
    failed = response_object(
        prep,
        execution.ids.response,
        execution.created_at,
        status="failed",
        error={"code": "server_error", "message": FAILED_MESSAGE},
    )
    writer.add("response.failed", {"response": failed})
    state.ledger.record(prep.model, prep.tier, "failed")
    await resp.write(writer.take())
    await resp.write_eof()
    return resp
