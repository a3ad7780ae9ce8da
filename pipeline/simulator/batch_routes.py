"""HTTP routes for ``/v1/files`` and ``/v1/batches`` (the work happens in ``batches``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from pipeline.simulator import apierrors
from pipeline.simulator.files import PURPOSES, check_batch_file
from pipeline.simulator.state import SimulatorState

_log = logging.getLogger(__name__)
_TICK_S = 0.2
_TICK_LINES = 500


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def add_batch_routes(
    app: web.Application,
    key: web.AppKey[SimulatorState],
    check_auth: Callable[[web.Request], None],
) -> None:
    """Register the files and batches routes and the ticker that moves batches along."""

    def state_of(request: web.Request) -> SimulatorState:
        check_auth(request)
        return request.app[key]

    async def upload(request: web.Request) -> web.Response:
        state = state_of(request)
        if not request.content_type.startswith("multipart/"):
            raise apierrors.invalid_value("file", "Expected a multipart/form-data upload.")
        purpose, filename, data = None, "upload.jsonl", b""
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "purpose":
                purpose = (await part.text()).strip()
            elif part.name == "file":
                filename = part.filename or filename
                data = await part.read()
        if purpose is None:
            raise apierrors.missing_parameter("purpose")
        if purpose not in PURPOSES:
            raise apierrors.invalid_value("purpose", f"Invalid value: '{purpose}'.")
        if purpose == "batch":
            check_batch_file(data)
        stored = state.batches.files.add(filename, purpose, data, int(state.clock.wall()))
        return _json(stored.as_object())

    async def list_files(request: web.Request) -> web.Response:
        state = state_of(request)
        files = [f.as_object() for f in reversed(state.batches.files.files.values())]
        purpose = request.query.get("purpose")
        if purpose:
            files = [f for f in files if f["purpose"] == purpose]
        return _json({"object": "list", "data": files, "has_more": False})

    def file_of(request: web.Request) -> Any:
        state = state_of(request)
        file_id = request.match_info["file_id"]
        stored = state.batches.files.get(file_id)
        if stored is None:
            raise apierrors.not_found("file", file_id)
        return stored

    async def get_file(request: web.Request) -> web.Response:
        return _json(file_of(request).as_object())

    async def file_content(request: web.Request) -> web.Response:
        stored = file_of(request)
        return web.Response(body=stored.data, headers={"Content-Type": "application/octet-stream"})

    async def delete_file(request: web.Request) -> web.Response:
        stored = file_of(request)
        request.app[key].batches.files.delete(stored.id)
        return _json({"id": stored.id, "object": "file", "deleted": True})

    async def create_batch(request: web.Request) -> web.Response:
        state = state_of(request)
        try:
            data = json.loads(await request.read())
        except ValueError as exc:
            raise apierrors.invalid_json() from exc
        return _json(state.batches.create(data).as_object())

    async def get_batch(request: web.Request) -> web.Response:
        state = state_of(request)
        return _json(state.batches.get(request.match_info["batch_id"]).as_object())

    async def cancel_batch(request: web.Request) -> web.Response:
        state = state_of(request)
        return _json(state.batches.cancel(request.match_info["batch_id"]).as_object())

    async def list_batches(request: web.Request) -> web.Response:
        state = state_of(request)
        try:
            limit = max(1, min(100, int(request.query.get("limit", "20"))))
        except ValueError as exc:
            raise apierrors.invalid_type("limit", "an integer") from exc
        batches = list(reversed(state.batches.batches.values()))
        after = request.query.get("after")
        if after:
            ids = [b.id for b in batches]
            batches = batches[ids.index(after) + 1 :] if after in ids else []
        page = batches[:limit]
        for batch in page:
            state.batches.update(batch)
        return _json(
            {
                "object": "list",
                "data": [b.as_object() for b in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": len(batches) > limit,
            }
        )

    async def ticker(app: web.Application) -> AsyncIterator[None]:
        async def run() -> None:
            while True:
                await asyncio.sleep(_TICK_S)
                try:
                    app[key].batches.update_all(max_lines=_TICK_LINES)
                except Exception:  # keep ticking; the next GET shows the same failure
                    _log.exception("batch ticker failed")

        task = asyncio.create_task(run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.router.add_post("/v1/files", upload)
    app.router.add_get("/v1/files", list_files)
    app.router.add_get("/v1/files/{file_id}", get_file)
    app.router.add_get("/v1/files/{file_id}/content", file_content)
    app.router.add_delete("/v1/files/{file_id}", delete_file)
    app.router.add_post("/v1/batches", create_batch)
    app.router.add_get("/v1/batches", list_batches)
    app.router.add_get("/v1/batches/{batch_id}", get_batch)
    app.router.add_post("/v1/batches/{batch_id}/cancel", cancel_batch)
    app.cleanup_ctx.append(ticker)
