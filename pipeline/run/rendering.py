"""Rendering a claimed chunk: plain jobs for their profile, chained jobs after their parents.

The runner and batch mode both render through ``render_jobs``, so a request sent in batch mode
is exactly the one realtime mode would send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import parent_outputs
from pipeline.prompts import (
    ArticleJob,
    ChainedRequest,
    Layout,
    ParentOutput,
    Profile,
    RenderedRequest,
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
    return requests, chained
