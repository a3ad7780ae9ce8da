"""A check's retry: a paid answer that failed its task's checks, followed up once more.

With ``on_fail = "retry"`` the answer is sent back as the next turn of its conversation: the
original prompt, then the answer, then the checks' message (``CheckReport.correction``). The
original prompt is the prefix, so the retry reads it from the prompt cache and pays for little
more than the answer and the message. At most ``max_retries`` times (1 by default); an answer
that still fails is recorded flagged.

Billing and crash safety: every answer was paid for, so every one is recorded. The first is in
the journal before the retry is sent (a crash then records it, flagged, as the job's outcome).
Once the retry has answered, one entry holds both (the replaced answer with status ``retried``)
and the first entry is marked done; should a crash fall between the two lines, recovery skips
the answer it already stored (same response id). The outcome handed to the recorder carries the
replaced answers in ``earlier``: one commit stores them all, so each is billed exactly once.
A retry that gets no usable answer (the run stops, the budget is spent, the API fails, the
answer is cut short) leaves the first answer as the outcome, flagged; a billed incomplete retry
is stored beside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from pipeline.db import Generation
from pipeline.planning import PlannedRequest
from pipeline.prompts import follow_up
from pipeline.run.journal import Journal, generation_record
from pipeline.run.recording import Verdict
from pipeline.run.recovery import journal_entry

RETRIED_STATUS = "retried"

# Sends one planned request; the verdict and whether it was paid (None: not sent).
Call = Callable[[PlannedRequest], Awaitable[tuple[Verdict, bool] | None]]


@dataclass(frozen=True)
class Retried:
    """The outcome after retries: the verdict to record, its journal entry, and the answers it
    replaced or that came back unusable (stored beside it, no effect on the job)."""

    verdict: Verdict
    entry: str | None
    earlier: tuple[Generation, ...]


def wants_retry(planned: PlannedRequest, verdict: Verdict) -> bool:
    """A completed answer whose checks failed, for a task that retries."""
    checks = planned.request.profile.checks
    report = verdict.checks
    return (
        checks is not None
        and checks.retries > 0
        and report is not None
        and not report.passed
        and verdict.succeeded
        and verdict.generation.output_text is not None
    )


async def retry_failed_checks(
    planned: PlannedRequest,
    verdict: Verdict,
    entry: str | None,
    *,
    call: Call,
    journal: Journal | None,
    followers: Sequence[str],
    stopping: Callable[[], bool],
) -> Retried:
    """Follow ``verdict``'s answer up with its checks' message until it passes or the task's
    retries are used (see the module docstring)."""
    checks = planned.request.profile.checks
    assert checks is not None
    earlier: list[Generation] = []
    current = planned
    for _ in range(checks.retries):
        report = verdict.checks
        answer = verdict.generation.output_text
        if report is None or report.passed or answer is None or stopping():
            break
        current = replace(
            current,
            request=follow_up(current.request, answer, report.correction(), why="check"),
        )
        sent = await call(current)
        if sent is None:
            break  # not sent (stopping, out of budget): the answer stays, flagged
        retry, paid = sent
        usable = retry.generation.status == "completed"
        if usable:
            verdict.generation.status = RETRIED_STATUS
            earlier.append(verdict.generation)
            verdict = retry
        elif paid:
            earlier.append(retry.generation)  # billed but unusable: kept beside the answer
        if journal is not None and (paid or entry is not None) and earlier:
            # Every paid answer is in an open entry before anything else is awaited.
            record = journal_entry(verdict, followers)
            record["earlier"] = [generation_record(g) for g in earlier]
            replaced, entry = entry, journal.write(record)
            if replaced is not None:
                journal.done(replaced)
        if not usable:
            break
    return Retried(verdict, entry, tuple(earlier))
