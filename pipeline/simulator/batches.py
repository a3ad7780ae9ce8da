"""Batches over simulated time: validating -> in_progress -> finalizing -> completed.

Also ``failed`` (line validation errors, or ``token_limit_exceeded`` when the file's prompt
tokens plus those of the model's other pending batches pass the batch queue limit), ``expired``
(the 24 h window passed on the simulated clock, or a draw under ``batch_expire_rate`` left a
``batch_expire_unfinished`` share of lines unfinished; completed lines are delivered and
charged, the rest go to the error file as ``batch_expired``) and ``cancelling`` -> ``cancelled``.

Progress is computed from the clock whenever a batch is read (and by a background ticker), so
tests move batches along with ``clock.advance()``. Lines run in input order through the same
prompt-cache model as synchronous requests (without overflow); cached tokens are reported only
where the batch tier prices them (gpt-5 family, API-NOTES §1.4), and so are cache writes
(GPT-5.6+, billed at the batch tier's write rate: half the standard one). Batch lines are
billed at the batch tier and never touch the synchronous rate limits. Output lines are shuffled.
"""

from __future__ import annotations

import dataclasses
import json
import random
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.errors import PricingError
from pipeline.money import PriceTable, Tier
from pipeline.simulator import apierrors
from pipeline.simulator.apierrors import SimAPIError
from pipeline.simulator.batch_checks import validate_lines
from pipeline.simulator.clock import SimClock
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.execution import Execution
from pipeline.simulator.faults import NO_FAULT, Fault
from pipeline.simulator.files import FileStore
from pipeline.simulator.ledger import Ledger
from pipeline.simulator.prompt import count_input_tokens
from pipeline.simulator.responses import Prepared


class RequestLifeCycle(Protocol):
    """What batches need of the simulator's state (``state.SimulatorState``): its clock, config,
    prices and ledger, and the request life cycle that realtime requests go through too."""

    clock: SimClock
    config: SimulatorConfig
    prices: PriceTable
    ledger: Ledger

    def prepare(self, body: Any) -> Prepared: ...

    def execute(self, prep: Prepared, fault: Fault, *, overflow: bool = True) -> Execution: ...

    def complete(self, execution: Execution, tier: Tier | None = None) -> dict[str, Any]: ...


WINDOW_S = 24 * 3600
ACTIVE = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."


@dataclass
class Batch:
    """One batch and its progress (times are simulated: ``*_at`` wall, ``t_*`` monotonic)."""

    id: str
    number: int
    input_file_id: str
    endpoint: str
    metadata: dict[str, Any] | None
    created_at: int
    t_created: float
    lines: list[dict[str, Any]]
    status: str = "validating"
    model: str | None = None
    errors: list[dict[str, Any]] | None = None
    times: dict[str, int] = field(default_factory=dict)
    processed: int = 0
    outputs: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    enqueued_tokens: int = 0
    stop_after: int | None = None
    t_in_progress: float = 0.0
    t_process_end: float = 0.0
    t_cancel: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    usage: dict[str, int] = field(default_factory=dict)

    def as_object(self) -> dict[str, Any]:
        """The Batch object the SDK parses."""
        completed = len(self.outputs)
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": self.times.get("in_progress_at"),
            "expires_at": self.created_at + WINDOW_S,
            "finalizing_at": self.times.get("finalizing_at"),
            "completed_at": self.times.get("completed_at"),
            "failed_at": self.times.get("failed_at"),
            "expired_at": self.times.get("expired_at"),
            "cancelling_at": self.times.get("cancelling_at"),
            "cancelled_at": self.times.get("cancelled_at"),
            "request_counts": {
                "total": len(self.lines) if self.status != "failed" else 0,
                "completed": completed,
                "failed": len(self.failures),
            },
            "usage": _usage_object(self.usage),
            "metadata": self.metadata,
        }


def _usage_object(usage: dict[str, int]) -> dict[str, Any]:
    inp, out = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
    return {
        "input_tokens": inp,
        "input_tokens_details": {
            "cached_tokens": usage.get("cached_tokens", 0),
            "cache_write_tokens": usage.get("cache_write_tokens", 0),
        },
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": usage.get("reasoning_tokens", 0)},
        "total_tokens": inp + out,
    }


class BatchService:
    """Files and batches of one simulator."""

    def __init__(self, state: RequestLifeCycle) -> None:
        self._state = state
        self.files = FileStore()
        self.batches: OrderedDict[str, Batch] = OrderedDict()

    def _wall(self, t: float) -> int:
        clock = self._state.clock
        return int(clock.wall() - (clock.now() - t))

    def _durations(self, lines: int) -> tuple[float, float, float]:
        cfg = self._state.config
        speed = cfg.batch_speed
        return (
            cfg.batch_validate_s / speed,
            (cfg.batch_base_s + cfg.batch_line_s * lines) / speed,
            cfg.batch_finalize_s / speed,
        )

    def create(self, data: Any) -> Batch:
        """``POST /v1/batches``: check the request and queue the batch (status validating)."""
        if not isinstance(data, dict):
            raise apierrors.invalid_json()
        file_id = data.get("input_file_id")
        if not file_id:
            raise apierrors.missing_parameter("input_file_id")
        endpoint = data.get("endpoint")
        if endpoint != "/v1/responses":
            raise apierrors.invalid_value(
                "endpoint", f"Invalid value: '{endpoint}'. The simulator supports '/v1/responses'."
            )
        if data.get("completion_window") != "24h":
            raise apierrors.invalid_value(
                "completion_window", "Invalid value. Supported values are: '24h'."
            )
        stored = self.files.get(str(file_id))
        if stored is None:
            raise apierrors.not_found("file", str(file_id), param="input_file_id")
        if stored.purpose != "batch":
            raise apierrors.invalid_value("input_file_id", "The file's purpose must be 'batch'.")
        metadata = data.get("metadata")
        lines: list[dict[str, Any]] = [
            json.loads(line) for line in stored.data.splitlines() if line.strip()
        ]
        now = self._state.clock.now()
        batch = Batch(
            id="batch_" + secrets.token_hex(12),
            number=len(self.batches),
            input_file_id=stored.id,
            endpoint=endpoint,
            metadata=metadata if isinstance(metadata, dict) else None,
            created_at=int(self._state.clock.wall()),
            t_created=now,
            lines=lines,
        )
        self.batches[batch.id] = batch
        return batch

    def get(self, batch_id: str) -> Batch:
        """The batch, brought up to date with the clock (404 when unknown)."""
        batch = self.batches.get(batch_id)
        if batch is None:
            raise apierrors.not_found("batch", batch_id)
        self.update(batch)
        return batch

    def cancel(self, batch_id: str) -> Batch:
        """``POST /v1/batches/{id}/cancel``: stop taking lines; cancelled after a while."""
        batch = self.get(batch_id)
        if batch.status not in ("validating", "in_progress", "finalizing"):
            raise SimAPIError(
                400, f"Cannot cancel a batch with status '{batch.status}'.", code="invalid_value"
            )
        now = self._state.clock.now()
        batch.status = "cancelling"
        batch.times["cancelling_at"] = self._wall(now)
        batch.t_cancel = now
        return batch

    def update_all(self, max_lines: int | None = None) -> None:
        """Advance every active batch (the background ticker's work)."""
        for batch in list(self.batches.values()):
            if batch.status in ACTIVE:
                self.update(batch, max_lines)

    def update(self, batch: Batch, max_lines: int | None = None) -> None:
        """Move ``batch`` to where the clock says it is, running due lines."""
        now = self._state.clock.now()
        validate_s, process_s, finalize_s = self._durations(len(batch.lines))
        if batch.status == "validating" and now >= batch.t_created + validate_s:
            self._validate(batch, batch.t_created + validate_s, process_s)
        if batch.status == "cancelling":
            self._update_cancelling(batch, now, max_lines)
            return
        expires = batch.t_created + WINDOW_S
        if batch.status == "in_progress":
            self._run_due(batch, min(now, expires), max_lines)
            if batch.processed == len(batch.lines) and now >= batch.t_process_end:
                batch.status = "finalizing"
                batch.times["finalizing_at"] = self._wall(batch.t_process_end)
            elif now >= expires:
                self._finish(batch, "expired", expires)
        if batch.status == "finalizing" and now >= batch.t_process_end + finalize_s:
            self._finish(batch, "completed", batch.t_process_end + finalize_s)

    def _validate(self, batch: Batch, at: float, process_s: float) -> None:
        state = self._state
        model, errors = validate_lines(batch.lines, state.prices)
        batch.model = model
        if not errors and model is not None:
            batch.enqueued_tokens = sum(_prompt_tokens(line) for line in batch.lines)
            pending = sum(
                b.enqueued_tokens
                for b in self.batches.values()
                if b is not batch and b.model == model and b.status in ACTIVE
            )
            limit = state.config.batch_queue_limit_for(model)
            if pending + batch.enqueued_tokens > limit:
                batch.enqueued_tokens = 0
                errors = [
                    {
                        "code": "token_limit_exceeded",
                        "line": None,
                        "message": f"Enqueued token limit reached for {model} in organization "
                        f"org-simulator. Limit: {limit:,} enqueued tokens. Please try again "
                        "once some in_progress batches have been completed.",
                        "param": None,
                    }
                ]
        if errors:
            batch.errors = errors
            batch.status = "failed"
            batch.times["failed_at"] = self._wall(at)
            return
        batch.status = "in_progress"
        batch.times["in_progress_at"] = self._wall(at)
        batch.t_in_progress = at
        batch.t_process_end = at + process_s
        rng = random.Random(f"batch-{state.config.seed}-{batch.number}")
        if rng.random() < state.config.batch_expire_rate:
            unfinished = round(len(batch.lines) * state.config.batch_expire_unfinished)
            batch.stop_after = len(batch.lines) - max(1, unfinished)

    def _due(self, batch: Batch, now: float) -> int:
        span = batch.t_process_end - batch.t_in_progress
        share = 1.0 if span <= 0 else (now - batch.t_in_progress) / span
        due = min(len(batch.lines), int(len(batch.lines) * max(0.0, share)))
        return due if batch.stop_after is None else min(due, batch.stop_after)

    def _run_due(self, batch: Batch, now: float, max_lines: int | None) -> None:
        due = self._due(batch, now)
        if max_lines is not None:
            due = min(due, batch.processed + max_lines)
        while batch.processed < due:
            self._run_line(batch, batch.processed)
            batch.processed += 1

    def _update_cancelling(self, batch: Batch, now: float, max_lines: int | None) -> None:
        assert batch.t_cancel is not None
        if batch.t_in_progress:
            self._run_due(batch, min(batch.t_cancel, batch.t_process_end), max_lines)
        done_at = (
            batch.t_cancel + self._state.config.batch_cancel_s / self._state.config.batch_speed
        )
        if now >= done_at:
            self._finish(batch, "cancelled", done_at)

    def _run_line(self, batch: Batch, index: int) -> None:
        state = self._state
        line = batch.lines[index]
        custom_id = line.get("custom_id")
        request_id = "req_" + secrets.token_hex(16)
        rng = random.Random(f"line-{state.config.seed}-{batch.number}-{index}")
        try:
            prep = state.prepare(line.get("body"))
            if prep.stream:
                raise apierrors.invalid_value("stream", "Streaming is not supported in batches.")
        except SimAPIError as exc:
            state.ledger.record(batch.model or "?", "batch", "4xx")
            batch.failures.append(_http_failure(custom_id, request_id, exc))
            return
        if rng.random() < state.config.batch_line_failure_rate:
            state.ledger.record(prep.model, "batch", "5xx")
            batch.failures.append(_http_failure(custom_id, request_id, apierrors.server_error()))
            return
        execution = state.execute(prep, NO_FAULT, overflow=False)
        if not _batch_caches(state, prep.model):
            execution.lookup = dataclasses.replace(
                execution.lookup, cached_tokens=0, cache_write_tokens=0, writes=()
            )
        body = state.complete(execution, tier="batch")
        usage = execution.usage()
        for name, value in (
            ("input_tokens", usage.input_tokens),
            ("cached_tokens", usage.cached_tokens),
            ("cache_write_tokens", usage.cache_write_tokens),
            ("output_tokens", usage.output_tokens),
            ("reasoning_tokens", usage.reasoning_tokens),
        ):
            batch.usage[name] = batch.usage.get(name, 0) + value
        batch.outputs.append(
            {
                "id": "batch_req_" + secrets.token_hex(16),
                "custom_id": custom_id,
                "response": {"status_code": 200, "request_id": request_id, "body": body},
                "error": None,
            }
        )

    def _finish(self, batch: Batch, status: str, at: float) -> None:
        code, message = {
            "expired": ("batch_expired", EXPIRED_MESSAGE),
            # Code and wording UNCONFIRMED: lines a cancel left unprocessed.
            "cancelled": ("batch_cancelled", "This request was cancelled before it was executed."),
        }.get(status, ("", ""))
        for index in range(batch.processed, len(batch.lines)):
            batch.failures.append(
                {
                    "id": "batch_req_" + secrets.token_hex(16),
                    "custom_id": batch.lines[index].get("custom_id"),
                    "response": None,
                    "error": {"code": code, "message": message},
                }
            )
        batch.processed = len(batch.lines)
        batch.status = status
        batch.times[f"{status}_at"] = self._wall(at)
        rng = random.Random(f"shuffle-{self._state.config.seed}-{batch.number}")
        outputs = list(batch.outputs)
        rng.shuffle(outputs)
        created = self._wall(at)
        if outputs:
            name = f"{batch.id}_output.jsonl"
            batch.output_file_id = self.files.add(name, "batch_output", _jsonl(outputs), created).id
        if batch.failures:
            name = f"{batch.id}_error.jsonl"
            data = _jsonl(batch.failures)
            batch.error_file_id = self.files.add(name, "batch_output", data, created).id


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _http_failure(custom_id: Any, request_id: str, exc: SimAPIError) -> dict[str, Any]:
    return {
        "id": "batch_req_" + secrets.token_hex(16),
        "custom_id": custom_id,
        "response": {"status_code": exc.status, "request_id": request_id, "body": exc.body},
        "error": None,
    }


def _prompt_tokens(line: dict[str, Any]) -> int:
    body = line.get("body")
    try:
        return count_input_tokens(body) if isinstance(body, dict) else 0
    except ValueError:
        return 0


def _batch_caches(state: RequestLifeCycle, model: str) -> bool:
    try:
        return state.prices.price(model, "batch").cached_input is not None
    except PricingError:
        return False
