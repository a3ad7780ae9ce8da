"""Files and batches through the SDK, moved along by the simulated clock."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import openai
import pytest

from pipeline.money.pricing import Usage
from pipeline.simulator import SimulatorServer
from tests.simulator.conftest import MakeSim
from tests.simulator.support import LONG_INSTRUCTIONS, PRICES, message, sdk, text_block

DAY_S = 24 * 3600


def line(n: int, model: str = "gpt-4.1-mini", **body: Any) -> dict[str, Any]:
    """One batch input line."""
    return {
        "custom_id": f"job-{n}",
        "method": "POST",
        "url": "/v1/responses",
        "body": {
            "model": model,
            "input": f"Summarise article {n}.",
            "max_output_tokens": 100,
            **body,
        },
    }


def submit(client: openai.OpenAI, lines: list[dict[str, Any]]) -> openai.types.Batch:
    """Upload ``lines`` and create a batch on them."""
    data = "".join(json.dumps(row) + "\n" for row in lines).encode()
    uploaded = client.files.create(file=("batch.jsonl", data), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h"
    )


def rows(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    """The JSONL rows of an output or error file."""
    assert file_id is not None
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


def finish(sim: SimulatorServer, client: openai.OpenAI, batch_id: str) -> openai.types.Batch:
    """Advance the clock past validation, processing and finalizing."""
    sim.advance(DAY_S - 60)
    return client.batches.retrieve(batch_id)


def test_round_trip_with_out_of_order_output(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """validating -> in_progress -> finalizing -> completed; output joins back on custom_id."""
    lines = [line(n) for n in range(20)]
    batch = submit(client, lines)
    assert batch.status == "validating" and batch.endpoint == "/v1/responses"
    assert batch.expires_at == batch.created_at + DAY_S
    sim.advance(10)
    batch = client.batches.retrieve(batch.id)
    assert batch.status == "in_progress" and batch.in_progress_at is not None
    sim.advance((60 + 0.2 * 20) / 2)  # half of the processing time
    partial = client.batches.retrieve(batch.id)
    assert partial.request_counts is not None and 0 < partial.request_counts.completed < 20
    sim.advance(33)
    assert client.batches.retrieve(batch.id).status == "finalizing"
    sim.advance(10)
    batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed" and batch.completed_at is not None
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (20, 20)
    assert batch.error_file_id is None and batch.model == "gpt-4.1-mini"
    out = rows(client, batch.output_file_id)
    ids = [row["custom_id"] for row in out]
    assert sorted(ids) == sorted(x["custom_id"] for x in lines) and ids != [
        x["custom_id"] for x in lines
    ]
    for row in out:
        assert row["id"].startswith("batch_req_") and row["error"] is None
        assert row["response"]["status_code"] == 200
        assert row["response"]["request_id"].startswith("req_")
        assert row["response"]["body"]["object"] == "response"
    usage = batch.usage
    assert usage is not None
    assert usage.input_tokens == sum(r["response"]["body"]["usage"]["input_tokens"] for r in out)


def test_batch_lines_are_billed_at_the_batch_tier(
    sim: SimulatorServer, client: openai.OpenAI
) -> None:
    """The ledger's batch cost equals the batch price of the lines' usage, exactly."""
    batch = finish(sim, client, submit(client, [line(n) for n in range(5)]).id)
    out = rows(client, batch.output_file_id)
    usage = sum(
        (
            Usage(
                r["response"]["body"]["usage"]["input_tokens"],
                r["response"]["body"]["usage"]["input_tokens_details"]["cached_tokens"],
                r["response"]["body"]["usage"]["output_tokens"],
            )
            for r in out
        ),
        Usage(),
    )
    expected = PRICES.cost("gpt-4.1-mini", usage, "batch")
    ledger = sim.ledger()["models"]["gpt-4.1-mini"]
    assert Decimal(ledger["batch"]["cost_usd"]) == expected
    assert "standard" not in ledger  # batch lines never touch the synchronous tier
    assert sim.ledger()["rate_limits"] == {}


def test_batch_caching_only_where_the_batch_tier_discounts(
    sim: SimulatorServer, client: openai.OpenAI
) -> None:
    """Shared long prefixes cache in gpt-5-mini batches; gpt-4.1-mini batches report 0."""
    for model in ("gpt-5-mini", "gpt-4.1-mini"):
        lines = [line(n, model, instructions=LONG_INSTRUCTIONS) for n in range(4)]
        lines = [
            {**x, "body": {k: v for k, v in x["body"].items() if k != "max_output_tokens"}}
            for x in lines
        ]
        batch = finish(sim, client, submit(client, lines).id)
        cached = [
            r["response"]["body"]["usage"]["input_tokens_details"]["cached_tokens"]
            for r in rows(client, batch.output_file_id)
        ]
        if model == "gpt-5-mini":
            assert sorted(cached)[0] == 0 and all(c >= 1024 for c in sorted(cached)[1:])
        else:
            assert cached == [0, 0, 0, 0]


def test_batch_lines_bill_cache_writes_at_the_batch_write_rate(
    sim: SimulatorServer, client: openai.OpenAI
) -> None:
    """gpt-5.6-luna lines: the first writes the breakpoint, the others read it; batch rates."""
    shared = message("developer", text_block(LONG_INSTRUCTIONS, breakpoint=True))
    lines = [
        line(
            n,
            "gpt-5.6-luna",
            input=[shared, message("user", text_block(f"Article {n}."))],
            prompt_cache_options={"mode": "explicit"},
        )
        for n in range(4)
    ]
    batch = finish(sim, client, submit(client, lines).id)
    bodies = [r["response"]["body"] for r in rows(client, batch.output_file_id)]
    details = sorted(
        (
            b["usage"]["input_tokens_details"]["cached_tokens"],
            b["usage"]["input_tokens_details"]["cache_write_tokens"],
        )
        for b in bodies
    )
    boundary = details[-1][0]
    assert boundary > 1024 and details == [(0, boundary)] + [(boundary, 0)] * 3
    usage = sum(
        (
            Usage(
                b["usage"]["input_tokens"],
                b["usage"]["input_tokens_details"]["cached_tokens"],
                b["usage"]["output_tokens"],
                b["usage"]["output_tokens_details"]["reasoning_tokens"],
                b["usage"]["input_tokens_details"]["cache_write_tokens"],
            )
            for b in bodies
        ),
        Usage(),
    )
    ledger = sim.ledger()["models"]["gpt-5.6-luna"]["batch"]
    assert Decimal(ledger["cost_usd"]) == PRICES.cost("gpt-5.6-luna", usage, "batch")
    assert ledger["cache_write_tokens"] == boundary
    assert PRICES.price("gpt-5.6-luna", "batch").write_rate == Decimal("0.125")
    raw = client.batches.with_raw_response.retrieve(batch.id)
    assert json.loads(raw.text)["usage"]["input_tokens_details"]["cache_write_tokens"] == boundary


def test_failed_lines_go_to_the_error_file(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """A 400 line (temperature on o4-mini) lands in the error file with status_code 400."""
    lines = [line(0, "o4-mini"), line(1, "o4-mini", temperature=0.2), line(2, "o4-mini")]
    batch = finish(sim, client, submit(client, lines).id)
    assert batch.status == "completed" and batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 1)
    [error] = rows(client, batch.error_file_id)
    assert error["custom_id"] == "job-1" and error["error"] is None
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["code"] == "unsupported_parameter"


def test_random_line_failures(make_sim: MakeSim) -> None:
    """batch_line_failure_rate: some lines fail with a 500 body; counts add up."""
    sim = make_sim(batch_line_failure_rate=0.5, seed=5)
    with sdk(sim) as client:
        batch = finish(sim, client, submit(client, [line(n) for n in range(20)]).id)
        counts = batch.request_counts
        assert counts is not None and counts.completed + counts.failed == 20
        assert 0 < counts.failed < 20
        errors = rows(client, batch.error_file_id)
    assert {e["response"]["status_code"] for e in errors} == {500}
    assert sim.ledger()["models"]["gpt-4.1-mini"]["batch"]["requests"]["5xx"] == counts.failed


def test_invalid_lines_fail_the_batch(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """Duplicate custom_id, wrong url and mixed models: failed with errors.data."""
    bad = [line(0), line(0), {**line(2), "url": "/v1/chat/completions"}, line(3, "gpt-4.1")]
    batch = submit(client, bad)
    sim.advance(10)
    batch = client.batches.retrieve(batch.id)
    assert batch.status == "failed" and batch.failed_at is not None
    assert batch.errors is not None and batch.errors.data is not None
    codes = {(e.code, e.line) for e in batch.errors.data}
    assert codes == {("duplicate_custom_id", 2), ("invalid_url", 3), ("mismatched_model", 4)}


def test_token_limit_exceeded(make_sim: MakeSim) -> None:
    """Enqueued prompt tokens above the queue limit fail the batch like the API does."""
    sim = make_sim(model_batch_queue_limit={"gpt-4.1-mini": 100})
    with sdk(sim) as client:
        batch = submit(client, [line(n) for n in range(10)])
        sim.advance(10)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "failed"
    assert batch.errors is not None and batch.errors.data is not None
    [error] = batch.errors.data
    assert error.code == "token_limit_exceeded" and error.line is None
    assert error.message.startswith("Enqueued token limit reached for gpt-4.1-mini")


def test_pending_batches_share_the_queue_limit(make_sim: MakeSim) -> None:
    """A second batch fails while the first is pending; it fits once the first completed."""
    sim = make_sim(model_batch_queue_limit={"gpt-4.1-mini": 200})  # one batch is ~130 tokens
    with sdk(sim) as client:
        first = submit(client, [line(n) for n in range(10)])
        sim.advance(10)
        assert client.batches.retrieve(first.id).status == "in_progress"
        second = submit(client, [line(n) for n in range(10)])
        sim.advance(10)
        assert client.batches.retrieve(second.id).status == "failed"
        assert finish(sim, client, first.id).status == "completed"
        third = submit(client, [line(n) for n in range(10)])
        sim.advance(10)
        assert client.batches.retrieve(third.id).status == "in_progress"


def test_expired_batch_delivers_what_finished(make_sim: MakeSim) -> None:
    """An expiring batch: completed lines delivered and charged, the rest batch_expired."""
    sim = make_sim(batch_expire_rate=1.0, batch_expire_unfinished=0.3)
    with sdk(sim) as client:
        batch = submit(client, [line(n) for n in range(10)])
        sim.advance(3600)
        assert client.batches.retrieve(batch.id).status == "in_progress"
        sim.advance(DAY_S)
        batch = client.batches.retrieve(batch.id)
        assert batch.status == "expired" and batch.expired_at == batch.expires_at
        assert batch.request_counts is not None
        assert (batch.request_counts.completed, batch.request_counts.failed) == (7, 3)
        errors = rows(client, batch.error_file_id)
        assert len(rows(client, batch.output_file_id)) == 7
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}
    assert all(e["response"] is None for e in errors)
    billed = sim.ledger()["models"]["gpt-4.1-mini"]["batch"]["requests"]["completed"]
    assert billed == 7


def test_slow_batch_expires_at_the_window(make_sim: MakeSim) -> None:
    """Processing longer than 24 h: expired at expires_at with partial output."""
    sim = make_sim(batch_line_s=DAY_S / 5)
    with sdk(sim) as client:
        batch = submit(client, [line(n) for n in range(10)])
        sim.advance(DAY_S + 1)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "expired"
    assert batch.request_counts is not None and 0 < batch.request_counts.completed < 10


def test_cancel_mid_way(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """cancelling, then cancelled: finished lines delivered, the others reported cancelled."""
    batch = submit(client, [line(n) for n in range(20)])
    sim.advance(10 + 32)
    batch = client.batches.cancel(batch.id)
    assert batch.status == "cancelling" and batch.cancelling_at is not None
    sim.advance(30)
    batch = client.batches.retrieve(batch.id)
    assert batch.status == "cancelled" and batch.cancelled_at is not None
    assert batch.request_counts is not None
    done = batch.request_counts.completed
    assert 0 < done < 20 and batch.request_counts.failed == 20 - done
    assert len(rows(client, batch.output_file_id)) == done
    with pytest.raises(openai.BadRequestError):
        client.batches.cancel(batch.id)


def test_list_batches_and_files(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """Listing pages newest first with limit/after; files can be read and deleted."""
    ids = [submit(client, [line(n)]).id for n in range(3)]
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    rest = client.batches.list(limit=2, after=page.data[-1].id)
    assert [b.id for b in rest.data] == [ids[0]]
    assert [b.id for b in client.batches.list()] == ids[::-1]
    uploaded = client.files.create(file=("x.jsonl", b'{"a": 1}\n'), purpose="batch")
    assert client.files.retrieve(uploaded.id).bytes == 9
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_bad_uploads_and_batch_requests(client: openai.OpenAI) -> None:
    """Non-JSON lines, unknown files and other endpoints are refused with 400/404."""
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("x.jsonl", b"not json\n"), purpose="batch")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/responses", completion_window="24h"
        )
    uploaded = client.files.create(file=("x.jsonl", b'{"a": 1}\n'), purpose="batch")
    with pytest.raises(openai.BadRequestError):
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
