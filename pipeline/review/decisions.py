"""Recording an editor's decision on an output: approve, edit (the editor's text is kept beside
the model's), or reject (with a note; ``regenerate`` re-queues the job, and its next request
carries the note after the cached prefix: ``pipeline.run.rendering``).

Decisions are appended (``reviews``), never changed: a change of mind is a new decision, and the
newest one is the output's state. Only the current output of a job can be decided on: not one
superseded by a correction of its article, replaced by a check's retry, or made before the
job's newest text, and only a completed one.

``decide`` adds its rows to the caller's transaction and does not commit, so a caller can
commit the decision together with what must happen with it (the CLI commits at once). The
delivery outbox row is part of it: an approval or an edit adds the next version of its
(article, task) item for the CMS (``pipeline.db.outbox``), and a rejection of an item the CMS
already has adds a version that withdraws it, in the same transaction as the decision, so a
decision is never saved without its delivery nor delivered without being saved. Outputs of
tasks without review (``auto``: notes for the desk such as ``fact_check``) are not delivered:
nothing reaches the CMS that no editor signed off (an editor who approves one anyway sends it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from pipeline.db import RegenerateFilter, add_delivery, add_review, regenerate
from pipeline.errors import InputError
from pipeline.review.outputs import Output, current_generation

MAX_NOTE = 4000


@dataclass(frozen=True)
class Decided:
    """What a decision did: the output, the decision's row id, whether the job was
    re-queued (a rejection with ``regenerate``), and the delivery version it queued."""

    output: Output
    decision: str
    review_id: int
    requeued: bool
    warning: str | None = None
    # The version of the (article, task) item this decision queued for the CMS (None: none).
    delivery_version: int | None = None


def _decidable(session: Session, output: Output) -> None:
    if output.superseded:
        raise InputError(
            f"generation {output.generation_id} ({output.ref}) is superseded: its article "
            "changed since; decide on the new output once it is generated"
        )
    if output.status != "completed":
        raise InputError(
            f"generation {output.generation_id} ({output.ref}) is {output.status}, not a text "
            "to review"
        )
    current = current_generation(session, output.job_id)
    if current != output.generation_id:
        raise InputError(
            f"generation {output.generation_id} is not the current output of {output.ref}"
            + (f" (generation {current} is)" if current is not None else "")
        )


def decide(
    session: Session,
    output: Output,
    decision: str,
    *,
    editor: str,
    note: str | None = None,
    edited_text: str | None = None,
    regenerate_job: bool = False,
    follows: Mapping[str, str | None] | None = None,
) -> Decided:
    """Record ``decision`` on ``output`` by ``editor`` (see the module docstring).

    ``edited`` needs ``edited_text`` that differs from the text as it stands; ``rejected``
    needs a ``note``. ``regenerate_job`` (rejections only) re-queues the job, in the same
    transaction; ``follows`` maps tasks to the task they follow, as for
    ``contentgen jobs regenerate``.
    """
    _decidable(session, output)
    editor = editor.strip()
    if not editor:
        raise InputError("say who decides: --editor NAME (or CONTENTGEN_EDITOR)")
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise InputError(f"a note has at most {MAX_NOTE} characters")
    if decision == "edited":
        text = (edited_text or "").strip()
        if not text:
            raise InputError("an edit needs the new text (it is empty)")
        if text == (output.final_text or "").strip():
            raise InputError("the text is unchanged: nothing to record (use approve)")
        edited_text = text
    else:
        edited_text = None
    if decision == "rejected" and note is None:
        raise InputError("a rejection needs a note saying what is wrong (--note)")
    if regenerate_job and decision != "rejected":
        raise InputError("only a rejection re-queues its job")
    warning = None
    if decision in ("approved", "edited") and output.review_state == "flagged":
        warning = f"{output.ref} was flagged by its checks or grader; signed off anyway"
    review = add_review(
        session,
        generation_id=output.generation_id,
        job_id=output.job_id,
        editor=editor,
        decision=decision,
        note=note,
        edited_text=edited_text,
        regenerate=regenerate_job,
    )
    delivery = add_delivery(
        session,
        article_id=output.article_id,
        source_id=output.source_id,
        task=output.task,
        generation_id=output.generation_id,
        review_id=review.id,
        decision=decision,
    )
    requeued = False
    if regenerate_job:
        result = regenerate(
            session,
            RegenerateFilter(articles=(output.source_id,), tasks=(output.task,)),
            follows=follows,
            commit=False,
        )
        requeued = result.jobs > 0
        if not requeued:
            warning = f"{output.ref}: its job is {output.job_state}, not re-queued"
    return Decided(
        output,
        decision,
        review.id,
        requeued,
        warning,
        delivery_version=delivery.version if delivery is not None else None,
    )
