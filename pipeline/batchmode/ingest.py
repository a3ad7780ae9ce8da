"""Settling a batch that ended: record its lines, return the rest to the queue, or split it.

Output and error files are read line by line, in whatever order they come, and joined to the
batch's items on ``custom_id``. An answered line is judged like a realtime response but priced
at the batch tier (``judge(..., tier_override="batch", batch_id=...)``); an HTTP error line is
a failed generation (retried later unless it is a 4xx that would fail again).

Salvage: a batch that ended early (``expired``, ``cancelled``, ``failed``) is billed for the
lines it answered, so those are recorded at batch price like any other; only the rest goes on.
The lines an expired batch never ran go into one new batch (``batch_resubmit_expired``, once:
a resubmission that expires too is not sent again); otherwise, and for a cancelled or failed
batch, their jobs go back to the queue with the reason in ``last_error``, and a job on its
last attempt fails for good with reason ``expired``. An item missing from both files goes back
to the queue the same way. A batch refused with ``token_limit_exceeded`` (the
provider's enqueued-token limit) is split into two halves, each submitted once the model has
no other batch in flight; a single request that is still refused goes back to the queue.

Answers are checked like realtime ones and flagged when a check fails, but a check's retry
(``on_fail = "retry"``) is not sent in batch mode: it would wait for another batch.
"""

from __future__ import annotations

import logging

from pipeline.batchmode import items, store
from pipeline.batchmode.context import BatchContext, lines_of, rerender
from pipeline.batchmode.files import LineResult, parse_lines
from pipeline.batchmode.remote import RemoteBatch
from pipeline.client import result_of
from pipeline.prompts import RenderedRequest, followers_of
from pipeline.run import Verdict, failure, judge

log = logging.getLogger("contentgen.batch")
TOKEN_LIMIT = "token_limit_exceeded"
# A batch that ended before running every line: its answered lines are recorded (at batch
# price, as the provider bills them) and only the rest is sent again or queued.
ENDED_EARLY = frozenset({"expired", "cancelled", "failed"})
EXPIRED = "expired"  # the failure reason of a line its batch never ran (``db.failures``)


def _permanent(status: int) -> bool:
    return 400 <= status < 500 and status not in (408, 409, 429)


def verdict_of(
    ctx: BatchContext,
    remote: RemoteBatch,
    request: RenderedRequest,
    item: items.Item,
    line: LineResult,
) -> Verdict | str:
    """What one line means: a verdict to record, or (a line that never ran) the reason to
    return its job to the queue."""
    if line.answered:
        assert line.body is not None
        status = line.body.get("status")
        if status in ("completed", "incomplete"):
            result = result_of(line.body, latency_s=0.0, request_id=line.request_id)
            return judge(
                request,
                result,
                run_id=ctx.run_id,
                prices=ctx.prices,
                attempts=1,
                from_cache=False,
                cache_key=item.cache_key,
                tier_override="batch",
                batch_id=remote.id,
            )
        return failure(
            request,
            f"batch {remote.id}: response {status}",
            run_id=ctx.run_id,
            attempts=1,
            cache_key=item.cache_key,
            permanent=False,
        )
    if line.status_code is not None:
        code = f" {line.error_code}" if line.error_code else ""
        message = line.error_message or "no message"
        return failure(
            request,
            f"batch {remote.id}: HTTP {line.status_code}{code}: {message}",
            run_id=ctx.run_id,
            attempts=1,
            cache_key=item.cache_key,
            permanent=_permanent(line.status_code),
        )
    return (
        f"batch {remote.id} {remote.status}: {line.error_code or 'error'}: "
        f"{line.error_message or 'the request did not run'}"
    )


async def ingest(ctx: BatchContext, row: store.BatchRow, remote: RemoteBatch) -> store.BatchRow:
    """Record every line of an ended batch; return its unfinished jobs to the queue."""
    max_attempts = ctx.settings.max_attempts
    with ctx.sessions() as session:
        pending = {item.custom_id: item for item in items.items(session, row.id)}
    requests = rerender(ctx, list(pending.values()))
    followers = followers_of(ctx.profiles)
    unrun: dict[str, str] = {}  # custom_id -> why its line did not run (it stays pending)
    for file_id, kind in ((remote.output_file_id, "output"), (remote.error_file_id, "error")):
        if not file_id:
            continue
        data = await ctx.api.content(file_id)
        for line in parse_lines(data, source=f"batch {remote.id} {kind} file"):
            item = pending.get(line.custom_id)
            request = requests.get(line.custom_id)
            if item is None or request is None:
                continue  # not ours, recorded before a restart, or cannot be rendered
            outcome = verdict_of(ctx, remote, request, item, line)
            if isinstance(outcome, str):
                unrun[line.custom_id] = outcome
                continue
            del pending[line.custom_id]
            if item.profile_version is not None:
                # The version it was sent with, even if the profile changed since.
                outcome.generation.profile_version = item.profile_version
            with ctx.sessions() as session:
                items.record(
                    session,
                    row,
                    item,
                    outcome,
                    max_attempts=max_attempts,
                    followers=followers.get(item.task, ()),
                )
                ctx.count("recorded" if outcome.succeeded else "failed")
    note = f"batch {remote.id} ended {remote.status}"
    if remote.error_text:
        note += f": {remote.error_text}"
    note += "; the request did not run"
    resubmitted: list[store.BatchRow] = []
    if pending and _resubmits(ctx, row, remote):
        resubmitted = _resubmit(ctx, row, list(pending.values()), note)
    else:
        for item in pending.values():
            with ctx.sessions() as session:
                items.requeue(
                    session,
                    row,
                    item,
                    unrun.get(item.custom_id, note),
                    max_attempts=max_attempts,
                    reason=EXPIRED if remote.status in ENDED_EARLY else None,
                )
            ctx.count("requeued")
    with ctx.sessions() as session:
        closed = store.close(session, store.get_row(session, row.id), error=remote.error_text)
    recorded = row.requests - len(pending)
    if remote.status in ENDED_EARLY:
        ctx.count("salvaged", recorded)
    rest = (
        f"{len(pending)} re-submitted as batch {resubmitted[0].id}"
        if resubmitted
        else f"{len(pending)} back to the queue"
    )
    log.info(
        "batch %s (%s) %s: %d recorded%s, %s",
        row.id,
        remote.id,
        remote.status,
        recorded,
        f" at batch price (${closed.cost_usd})" if remote.status in ENDED_EARLY else "",
        rest,
    )
    return closed


def _resubmits(ctx: BatchContext, row: store.BatchRow, remote: RemoteBatch) -> bool:
    """Whether the lines an expired batch never ran go into a new batch: once (a batch that
    is itself such a resubmission and expires sends its rest to the queue)."""
    if remote.status != "expired" or not ctx.settings.batch_resubmit_expired:
        return False
    if row.parent_id is None:
        return True
    with ctx.sessions() as session:
        return store.get_row(session, row.parent_id).status != "expired"


def _resubmit(
    ctx: BatchContext, row: store.BatchRow, pending: list[items.Item], note: str
) -> list[store.BatchRow]:
    """Move the lines ``row`` never ran into one new ``held`` batch (submitted by the next
    poll step, as a split's halves are); items that cannot be rendered again are requeued."""
    lines = lines_of(ctx, pending)
    if not lines:
        children: list[store.BatchRow] = []
    else:
        with ctx.sessions() as session:
            children = store.split(
                session,
                row,
                [lines],
                lease_h=ctx.settings.batch_lease_h,
                reason=f"{note}; re-submitted",
            )
        ctx.count("resubmitted", len(lines))
    with ctx.sessions() as session:
        for item in items.items(session, row.id):
            items.requeue(
                session,
                row,
                item,
                note,
                max_attempts=ctx.settings.max_attempts,
                reason=EXPIRED,
            )
            ctx.count("requeued")
    return children


async def split_refused(
    ctx: BatchContext, row: store.BatchRow, remote: RemoteBatch
) -> store.BatchRow:
    """A batch over the enqueued-token limit: its requests go into two held halves."""
    with ctx.sessions() as session:
        pending = items.items(session, row.id)
    lines = lines_of(ctx, pending)
    if len(lines) < 2:
        return await ingest(ctx, row, remote)
    half = len(lines) // 2
    reason = f"{remote.error_text or TOKEN_LIMIT}; re-submitted in two halves"
    with ctx.sessions() as session:
        children = store.split(
            session,
            row,
            [lines[:half], lines[half:]],
            lease_h=ctx.settings.batch_lease_h,
            reason=reason,
        )
        left = items.items(session, row.id)  # items that could not be rendered again
        for item in left:
            items.requeue(session, row, item, reason, max_attempts=ctx.settings.max_attempts)
        row = store.get_row(session, row.id)
    ctx.count("split")
    log.info(
        "batch %s (%s) over the enqueued-token limit: split into batches %s",
        row.id,
        remote.id,
        ", ".join(str(c.id) for c in children),
    )
    return row


async def settle(ctx: BatchContext, row: store.BatchRow, remote: RemoteBatch) -> store.BatchRow:
    """Handle a batch that reached a final status."""
    with ctx.sessions() as session:
        row = store.update_row(
            session,
            row.id,
            status=remote.status,
            output_file_id=remote.output_file_id,
            error_file_id=remote.error_file_id,
            completed=remote.completed,
            failed=remote.failed,
        )
    if remote.status == "failed" and TOKEN_LIMIT in remote.error_codes:
        return await split_refused(ctx, row, remote)
    return await ingest(ctx, row, remote)
