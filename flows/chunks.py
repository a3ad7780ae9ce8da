"""The chunk loop behind the nightly and ad-hoc flows, free of Prefect so it is tested plainly.

A flow run works through the queue one chunk at a time: each chunk is one call of the library's
``run_batch`` with ``limit`` set to the chunk size (one Prefect task, asyncio inside), never a
Prefect task per request. Between chunks the loop carries what a single run would: the overall
``limit``, the remaining budget, and the shared token gate.

The token gate (see ``flows.gate``) is taken in blocks: before a chunk, a block sized from the
chunk's estimated tokens; after it, the difference between what the chunk really used and what
was taken is settled with the next block, so in total the gate sees the tokens actually used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from flows.parameters import PACE_OPTION, BatchParameters
from pipeline.run import RunOptions

# First guess of tokens per request (input + output) for a chunk's block, before the flow run has
# seen a chunk of its own; later blocks use the average observed so far.
DEFAULT_TOKENS_PER_REQUEST = 2_000

# The states of a chunk's run row that end the flow run's loop (``run.runner.closed_state``).
STOPPED_STATES = ("stopped", "budget", "failed")

RunChunk = Callable[[int, RunOptions], dict[str, Any]]
"""Run one chunk: ``(index, options) -> RunSummary.as_dict()`` (a Prefect task in the flows)."""

_SUMMED = (
    "requests",
    "succeeded",
    "failed",
    "incomplete",
    "from_cache",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "reasoning_tokens",
    "claimed",
    "released",
    "lost_leases",
)


class TokenGate(Protocol):
    """Blocks until ``tokens`` may be spent under a rate limit shared by every worker."""

    def take(self, tokens: int) -> None:
        """Take a block of ``tokens`` (waits while the shared limit has no room)."""


@dataclass(frozen=True)
class RunContext:
    """How the run rows of a flow run are labelled."""

    kind: str
    trigger: str
    flow_run_id: str | None = None


@dataclass
class BatchOutcome:
    """What all chunks of a flow run add up to."""

    chunks: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    tokens_taken: int = 0

    @property
    def cost_usd(self) -> Decimal:
        """Spend of all chunks so far."""
        return sum((Decimal(c["cost_usd"]) for c in self.chunks), Decimal(0))

    @property
    def tokens_used(self) -> int:
        """Input plus output tokens of all chunks (what a tokens-per-minute limit counts)."""
        return sum(int(c["input_tokens"]) + int(c["output_tokens"]) for c in self.chunks)

    def as_dict(self) -> dict[str, Any]:
        """Totals as plain values (the flow's return value)."""
        totals: dict[str, Any] = {key: sum(int(c[key]) for c in self.chunks) for key in _SUMMED}
        input_tokens = totals["input_tokens"]
        list_cost = sum((Decimal(c["list_cost_usd"]) for c in self.chunks), Decimal(0))
        totals.update(
            run_ids=[c["run_id"] for c in self.chunks],
            chunks=len(self.chunks),
            state="stopped" if self.stop_reason else "finished",
            stop_reason=self.stop_reason,
            cached_ratio=round(totals["cached_tokens"] / input_tokens, 4) if input_tokens else 0.0,
            cost_usd=str(self.cost_usd),
            list_cost_usd=str(list_cost),
            savings_usd=str(list_cost - self.cost_usd),
            tokens_taken=self.tokens_taken,
        )
        return totals


def chunk_options(
    params: BatchParameters,
    context: RunContext,
    *,
    index: int,
    limit: int | None,
    budget_usd: Decimal | None,
    paced_rpm: float | None = None,
) -> RunOptions:
    """The ``RunOptions`` of chunk ``index``: the parameters, ``limit``, the budget left and
    the pace chosen once for the whole flow run (``paced_rpm``)."""
    return RunOptions(
        limit=limit,
        tasks=tuple(params.tasks),
        batch_label=params.batch_label,
        concurrency=params.concurrency,
        kind=context.kind,
        trigger=context.trigger,
        flow_run_id=context.flow_run_id,
        parameters={**params.recorded(), "chunk": index},
        budget_usd=budget_usd,
        mode=params.mode,
        pace=PACE_OPTION[params.pace],
        paced_rpm=paced_rpm,
    )


def run_chunks(
    params: BatchParameters,
    context: RunContext,
    run_chunk: RunChunk,
    *,
    chunk_size: int,
    gate: TokenGate | None = None,
    tokens_per_request: int = DEFAULT_TOKENS_PER_REQUEST,
    paced_rpm: float | None = None,
) -> BatchOutcome:
    """Run chunks of ``chunk_size`` jobs until the queue, the limit or the budget ends.

    ``run_chunk`` runs one chunk and returns its summary; the loop stops early when a chunk
    claims fewer jobs than asked (the queue is drained) or stops (budget, signal). Every chunk
    is sent at ``paced_rpm`` when the flow run is paced.
    """
    outcome = BatchOutcome()
    remaining = params.limit
    debt = 0  # tokens used beyond the blocks taken so far (negative: taken but unused)
    index = 0
    while True:
        n = chunk_size if remaining is None else min(chunk_size, remaining)
        if n <= 0:
            break
        budget_left = None
        if params.budget_usd is not None:
            budget_left = params.budget_usd - outcome.cost_usd
            if budget_left <= 0:
                outcome.stop_reason = "budget"
                break
        if gate is not None:
            block = max(n * tokens_per_request + debt, 0)
            if block:
                gate.take(block)
            outcome.tokens_taken += block
            debt -= block
        summary = run_chunk(
            index,
            chunk_options(
                params, context, index=index, limit=n, budget_usd=budget_left, paced_rpm=paced_rpm
            ),
        )
        outcome.chunks.append(summary)
        claimed = int(summary["claimed"])
        used = int(summary["input_tokens"]) + int(summary["output_tokens"])
        debt += used
        if int(summary["requests"]):
            requests = sum(int(c["requests"]) for c in outcome.chunks)
            tokens_per_request = max(1, round(outcome.tokens_used / requests))
        index += 1
        if summary.get("state") in STOPPED_STATES:
            outcome.stop_reason = summary.get("stop_reason") or "stopped"
            break
        if claimed < n:
            break  # the queue (for these tasks and this label) is drained
        if remaining is not None:
            remaining -= claimed
    if gate is not None and debt > 0:
        gate.take(debt)  # settle, so other workers see what this run really spent
        outcome.tokens_taken += debt
    return outcome
