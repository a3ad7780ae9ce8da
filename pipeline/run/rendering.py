"""Rendering a claimed chunk: plain jobs for their profile, chained jobs after their parents.

The runner and batch mode both render through ``render_jobs``, so a request sent in batch mode
is exactly the one realtime mode would send.

A job an editor rejected with ``--regenerate`` is rendered as before, then followed by the
rejected answer and the editor's note (``rejection_message``): the original prompt stays the
cached prefix. The note applies while the rejected answer is the job's newest completed one
and was made from the article as it is now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import parent_outputs, rejection_notes
from pipeline.prompts import (
    ArticleJob,
    ChainedRequest,
    Layout,
    ParentOutput,
    Profile,
    RenderedRequest,
    follow_up,
    render,
    render_child,
)

log = logging.getLogger("contentgen.render")

# The layout of one step of a job's chain: (the job, the task of that step) -> layout.
LayoutOf = Callable[[ArticleJob, str], Layout]


def _ancestry(task: str | None, profiles: Mapping[str, Profile]) -> list[str]:
    chain = []
    while task is not None:
        chain.append(task)
        task = profiles[task].follows
    return chain


def rejection_message(note: str) -> str:
    """The turn that follows a rejected answer: the editor's note, and what to do with it."""
    return (
        "An editor rejected this answer with the note below. Write a new answer that "
        f"addresses it, in the same form as before.\n\nEditor's note: {note.strip()}"
    )


def with_rejection_notes(
    sessions: sessionmaker[Session],
    claimed: Sequence[ArticleJob],
    requests: list[RenderedRequest],
) -> list[RenderedRequest]:
    """``requests`` with an editor's rejection note after each rejected job's prompt."""
    regenerated = [job for job in claimed if job.regenerations]
    if not regenerated:
        return requests
    with sessions() as session:
        notes = rejection_notes(session, [job.id for job in regenerated])
    if not notes:
        return requests
    current = {job.id: job.content_hash for job in regenerated}
    out = []
    for request in requests:
        note = notes.get(request.job_id)
        if note is not None and note.content_hash in (None, current.get(request.job_id)):
            request = follow_up(request, note.answer, rejection_message(note.note), why="rejection")
        out.append(request)
    return out


def render_jobs(
    sessions: sessionmaker[Session],
    claimed: Sequence[ArticleJob],
    profiles: Mapping[str, Profile],
    layout_of: LayoutOf,
) -> tuple[list[RenderedRequest], dict[int, ChainedRequest]]:
    """Render ``claimed``; a chained task becomes the next turn after its ancestors' outputs.

    A chained job whose ancestors' completed outputs are missing (deleted, or re-queued since)
    is rendered plainly, with a warning, rather than lost.
    """
    children = [job for job in claimed if profiles[job.task].follows]
    outputs: dict[tuple[int, str], ParentOutput] = {}
    if children:
        ancestry = {t for job in children for t in _ancestry(profiles[job.task].follows, profiles)}
        with sessions() as session:
            outputs = parent_outputs(
                session, [job.article_id for job in children], sorted(ancestry)
            )
    requests: list[RenderedRequest] = []
    chained: dict[int, ChainedRequest] = {}
    for job in claimed:
        profile = profiles[job.task]
        steps = _ancestry(profile.follows, profiles)  # parent first, root last
        found = [outputs.get((job.article_id, task)) for task in steps]
        if not steps or any(output is None for output in found):
            if steps:
                log.warning("job %s: no completed %s output to follow", job.id, steps[0])
            requests.append(render(job, profile, layout_of(job, job.task)))
            continue
        parent_task = steps[0]
        parent = found[0]
        assert parent is not None
        ancestors = [
            (profiles[task], layout_of(job, task), output)
            for task, output in zip(reversed(steps[1:]), reversed(found[1:]), strict=True)
            if output is not None
        ]
        child = render_child(
            job,
            profile,
            profiles[parent_task],
            layout_of(job, parent_task),
            parent,
            ancestors=ancestors,
        )
        chained[job.id] = child
        requests.append(child.request)
    requests = with_rejection_notes(sessions, claimed, requests)
    for request in requests:
        if request.job_id in chained and request is not chained[request.job_id].request:
            chained[request.job_id] = replace(chained[request.job_id], request=request)
    return requests, chained
