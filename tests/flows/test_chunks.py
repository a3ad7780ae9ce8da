"""The chunk loop: limits, budget, queue end and the token gate, with a fake run function."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from flows.chunks import BatchOutcome, RunContext, run_chunks
from flows.parameters import BatchParameters
from pipeline.run.runner import RunOptions

CONTEXT = RunContext(kind="adhoc", trigger="manual", flow_run_id="fr-1")


class FakeQueue:
    """Stands in for ``run_batch``: claims from a queue of ``jobs``, each costing ``cost``."""

    def __init__(
        self,
        jobs: int,
        *,
        cost: str = "0.01",
        tokens: int = 100,
        stop_at: int | None = None,
    ) -> None:
        self.left = jobs
        self.cost = Decimal(cost)
        self.tokens = tokens
        self.stop_at = stop_at
        self.calls: list[tuple[int, RunOptions]] = []

    def __call__(self, index: int, options: RunOptions) -> dict[str, Any]:
        self.calls.append((index, options))
        n = min(self.left, options.limit or self.left)
        stopped = None
        if options.budget_usd is not None:
            affordable = int(options.budget_usd / self.cost)
            if affordable < n:
                n, stopped = affordable, "budget"
        if self.stop_at is not None and index == self.stop_at:
            stopped = "signal SIGTERM"
        self.left -= n
        return {
            "run_id": 100 + index,
            "state": "stopped" if stopped else "finished",
            "stop_reason": stopped,
            "requests": n,
            "succeeded": n,
            "failed": 0,
            "incomplete": 0,
            "from_cache": 0,
            "input_tokens": n * self.tokens,
            "cached_tokens": n * self.tokens // 2,
            "output_tokens": n * 10,
            "reasoning_tokens": 0,
            "cost_usd": str(self.cost * n),
            "list_cost_usd": str(self.cost * n * 2),
            "claimed": n,
            "released": 0,
            "lost_leases": 0,
        }


class FakeGate:
    """Records the blocks of tokens taken."""

    def __init__(self) -> None:
        self.blocks: list[int] = []

    def take(self, tokens: int) -> None:
        self.blocks.append(tokens)


def limits(queue: FakeQueue) -> list[int | None]:
    return [options.limit for _, options in queue.calls]


def test_queue_is_worked_through_in_chunks_until_a_chunk_comes_back_short() -> None:
    """Chunks of chunk_size run until one claims fewer jobs than asked (the queue is drained)."""
    queue = FakeQueue(25)
    outcome = run_chunks(BatchParameters(), CONTEXT, queue, chunk_size=10)
    assert limits(queue) == [10, 10, 10]
    assert outcome.as_dict()["requests"] == 25
    assert outcome.as_dict()["run_ids"] == [100, 101, 102]
    assert outcome.stop_reason is None


def test_exact_multiple_needs_one_empty_chunk_to_see_the_end() -> None:
    """When the queue holds a multiple of chunk_size, one more (empty) chunk confirms the end."""
    queue = FakeQueue(20)
    run_chunks(BatchParameters(), CONTEXT, queue, chunk_size=10)
    assert limits(queue) == [10, 10, 10]
    assert queue.left == 0


def test_limit_caps_the_jobs_across_chunks() -> None:
    """``limit`` is the flow run's total, the last chunk asks only for what is left."""
    queue = FakeQueue(100)
    outcome = run_chunks(BatchParameters(limit=25), CONTEXT, queue, chunk_size=10)
    assert limits(queue) == [10, 10, 5]
    assert outcome.as_dict()["claimed"] == 25


def test_every_chunk_carries_the_flow_runs_labels_and_parameters() -> None:
    """Run rows get kind, trigger, flow-run id, tasks, label and the recorded parameters."""
    queue = FakeQueue(3)
    params = BatchParameters(tasks=["headline"], batch_label="b-1", concurrency=7)
    run_chunks(params, CONTEXT, queue, chunk_size=5)
    (index, options), *_ = queue.calls
    assert index == 0
    assert options.kind == "adhoc"
    assert options.trigger == "manual"
    assert options.flow_run_id == "fr-1"
    assert options.tasks == ("headline",)
    assert options.batch_label == "b-1"
    assert options.concurrency == 7
    assert options.mode == "realtime"
    assert options.parameters is not None
    assert options.parameters["batch_label"] == "b-1"
    assert options.parameters["chunk"] == 0


def test_flex_mode_reaches_every_chunk() -> None:
    """A flow started in flex mode asks the library for flex on every chunk."""
    queue = FakeQueue(12)
    run_chunks(BatchParameters(mode="flex"), CONTEXT, queue, chunk_size=5)
    assert [options.mode for _, options in queue.calls] == ["flex", "flex", "flex"]


def test_budget_is_shared_by_the_chunks() -> None:
    """Each chunk gets the budget left after the previous ones; the run stops at the budget."""
    queue = FakeQueue(100, cost="0.10")
    outcome = run_chunks(BatchParameters(budget_usd=Decimal("2.50")), CONTEXT, queue, chunk_size=10)
    budgets = [options.budget_usd for _, options in queue.calls]
    assert budgets == [Decimal("2.50"), Decimal("1.50"), Decimal("0.50")]
    assert outcome.cost_usd == Decimal("2.50")
    assert outcome.stop_reason == "budget"


def test_budget_spent_exactly_stops_before_another_chunk() -> None:
    """A budget used up to the cent ends the loop without calling the run function again."""
    queue = FakeQueue(100, cost="0.10")
    outcome = run_chunks(BatchParameters(budget_usd=Decimal("1.00")), CONTEXT, queue, chunk_size=10)
    assert len(queue.calls) == 1
    assert outcome.stop_reason == "budget"


def test_a_stopped_chunk_ends_the_flow_run_with_its_reason() -> None:
    """A chunk stopped by a signal is not followed by another."""
    queue = FakeQueue(100, stop_at=1)
    outcome = run_chunks(BatchParameters(), CONTEXT, queue, chunk_size=10)
    assert len(queue.calls) == 2
    assert outcome.as_dict()["state"] == "stopped"
    assert outcome.stop_reason == "signal SIGTERM"


def test_gate_is_taken_in_blocks_per_chunk_and_settled_to_the_tokens_used() -> None:
    """One block per chunk (never per request), sized from observed usage, settled at the end."""
    queue = FakeQueue(25, tokens=90)  # 100 tokens per request with the 10 output tokens
    gate = FakeGate()
    outcome = run_chunks(
        BatchParameters(), CONTEXT, queue, gate=gate, tokens_per_request=1000, chunk_size=10
    )
    used = outcome.tokens_used
    assert used == 2500
    # First block from the first guess; the next blocks use the observed 100/request minus
    # the credit from the over-estimate, so nothing more is taken until it is used up.
    assert gate.blocks[0] == 10_000
    assert len(gate.blocks) <= len(queue.calls) + 1
    assert sum(gate.blocks) >= used
    assert outcome.tokens_taken == sum(gate.blocks)


def test_gate_settles_an_underestimate_after_the_last_chunk() -> None:
    """Tokens used beyond the blocks taken are taken after the last chunk."""
    queue = FakeQueue(5, tokens=990)  # 1000 tokens per request
    gate = FakeGate()
    outcome = run_chunks(
        BatchParameters(), CONTEXT, queue, gate=gate, tokens_per_request=100, chunk_size=10
    )
    assert gate.blocks == [1000, 4000]
    assert outcome.tokens_taken == outcome.tokens_used == 5000


def test_totals_add_up_over_chunks() -> None:
    """The flow's result sums tokens and money exactly and computes savings and cache ratio."""
    queue = FakeQueue(15, cost="0.0003", tokens=100)
    result = run_chunks(BatchParameters(), CONTEXT, queue, chunk_size=10).as_dict()
    assert result["requests"] == 15
    assert result["input_tokens"] == 1500
    assert result["cached_ratio"] == 0.5
    assert result["cost_usd"] == "0.0045"
    assert result["savings_usd"] == "0.0045"
    assert result["chunks"] == 2


@pytest.mark.parametrize("jobs", [0])
def test_empty_queue_runs_one_empty_chunk(jobs: int) -> None:
    """An empty queue costs one chunk that claims nothing."""
    queue = FakeQueue(jobs)
    outcome = run_chunks(BatchParameters(), CONTEXT, queue, chunk_size=10)
    assert len(queue.calls) == 1
    assert isinstance(outcome, BatchOutcome)
    assert outcome.as_dict()["requests"] == 0
