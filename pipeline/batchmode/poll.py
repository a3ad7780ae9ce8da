"""Following open batches until they end: poll with backoff, settle, resume, release held.

One ``step`` looks at every open batch row once:

- ``preparing``/``uploaded`` (a crash or failure left it half-submitted): ``push`` it again,
  asking the API first whether the missing step happened after all;
- at the provider: poll it, store its status and counts, and settle it once it has ended;
- ``held`` (a half of a split): submitted once no other batch of its model is open.

A local step holds the row (``store.take``) so two processes never upload or record the same
batch. ``follow`` repeats steps until nothing is open (or once, without ``wait``), waiting
``batch_poll_s`` between polls and 1.5 times longer after each poll that saw no change, up to
``batch_poll_max_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from pipeline.batchmode import store
from pipeline.batchmode.context import BatchContext
from pipeline.batchmode.ingest import settle
from pipeline.batchmode.submit import push
from pipeline.errors import PermanentAPIError

log = logging.getLogger("contentgen.batch")
BACKOFF = 1.5


async def _held(
    ctx: BatchContext, row: store.BatchRow, worker: str, step: Callable[[], Awaitable[object]]
) -> bool:
    """Run ``step`` while holding ``row``; False when another process holds it."""
    with ctx.sessions() as session:
        if not store.take(session, row.id, worker, store.hold_s(ctx.settings)):
            return False
    try:
        await step()
    finally:
        with ctx.sessions() as session:
            store.let_go(session, row.id, worker)
    return True


async def step(ctx: BatchContext, worker: str) -> bool:
    """Look at every open batch once; True when anything changed."""
    changed = False
    with ctx.sessions() as session:
        rows = store.open_rows(session)
    for row in rows:
        if row.status in ("preparing", "uploaded"):
            changed |= await _held(ctx, row, worker, partial(push, ctx, row, resumed=True))
            continue
        if row.status == "held" or row.batch_id is None:
            continue
        try:
            remote = await ctx.api.get(row.batch_id)
        except PermanentAPIError as exc:  # e.g. 404: leave the row for a person to look at
            log.warning("batch %s (%s) cannot be read: %s", row.id, row.batch_id, exc)
            continue
        if (remote.status, remote.completed, remote.failed) != (
            row.status,
            row.completed,
            row.failed,
        ):
            changed = True
            with ctx.sessions() as session:
                store.update_row(
                    session,
                    row.id,
                    status=remote.status,
                    completed=remote.completed,
                    failed=remote.failed,
                )
        if remote.terminal:
            changed |= await _held(ctx, row, worker, partial(settle, ctx, row, remote))
    with ctx.sessions() as session:
        busy = store.open_models(session)
        held = [r for r in store.open_rows(session) if r.status == "held"]
    for row in held:
        if busy.get(row.model):
            continue

        async def release(r: store.BatchRow = row) -> None:
            with ctx.sessions() as session:
                ready = store.update_row(session, r.id, status="preparing")
            await push(ctx, ready, resumed=False)

        if await _held(ctx, row, worker, release):
            busy[row.model] = 1
            changed = True
    return changed


async def follow(
    ctx: BatchContext, worker: str, *, wait: bool, stop: asyncio.Event | None = None
) -> int:
    """Step until no batch is open (``wait``) or once; returns how many are still open."""
    delay = ctx.settings.batch_poll_s
    while True:
        changed = await step(ctx, worker)
        with ctx.sessions() as session:
            still_open = len(store.open_rows(session))
        if not still_open or not wait or (stop is not None and stop.is_set()):
            return still_open
        delay = (
            ctx.settings.batch_poll_s
            if changed
            else min(delay * BACKOFF, ctx.settings.batch_poll_max_s)
        )
        log.debug("%d batches open; next poll in %.0f s", still_open, delay)
        await ctx.sleep(delay)
