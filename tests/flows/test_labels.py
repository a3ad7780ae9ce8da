"""A mistyped batch label fails the flow naming the known labels; a finished one is a quiet run."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from flows.batch import execute_batch
from flows.chunks import RunContext
from flows.parameters import BatchParameters
from flows.reporting import outcome_message
from pipeline.db import (
    Job,
    check_label,
    known_labels,
    labels_with_queued,
    make_engine,
    session_factory,
)
from pipeline.db.queue import enqueue
from pipeline.errors import InputError
from pipeline.settings import Settings
from tests.flows.prefect_stack import article
from tests.flows.support import RecordingPublisher, RowWritingRun

CONTEXT = RunContext(kind="adhoc", trigger="manual", flow_run_id="label-test")


def _enqueue(sessions: sessionmaker[Session], label: str, articles: int = 1) -> None:
    with sessions() as session:
        enqueue(
            session, [article(label, n) for n in range(articles)], ["summary"], batch_label=label
        )


def _finish(sessions: sessionmaker[Session], label: str) -> None:
    with sessions() as session:
        session.execute(update(Job).where(Job.batch_label == label).values(state="succeeded"))
        session.commit()


def test_known_labels_and_labels_with_queued_jobs(sessions: sessionmaker[Session]) -> None:
    """Every label jobs carry, sorted; only the ones with queued jobs are offered for a run."""
    _enqueue(sessions, "spring")
    _enqueue(sessions, "autumn", articles=2)
    _enqueue(sessions, "done")
    _finish(sessions, "done")
    with sessions() as session:
        enqueue(session, [article("nolabel", 0)], ["summary"])  # no label: not listed
        assert known_labels(session) == ["autumn", "done", "spring"]
        assert labels_with_queued(session) == ["autumn", "spring"]
        check_label(session, "done")
        check_label(session, None)
        with pytest.raises(InputError) as info:
            check_label(session, "sprung", option="batch_label")
    assert str(info.value) == (
        "batch_label: no job has ever carried the batch label 'sprung'; "
        "the known labels are autumn, done, spring"
    )


def test_the_message_lists_a_bounded_number_of_labels(sessions: sessionmaker[Session]) -> None:
    """Many labels do not make a wall of text; an empty database says how labels are made."""
    with sessions() as session, pytest.raises(InputError, match="no job carries a batch label"):
        check_label(session, "x")
    for n in range(25):
        _enqueue(sessions, f"b{n:03d}")
    with sessions() as session, pytest.raises(InputError, match=r"b019 and 5 more$"):
        check_label(session, "x")


def test_a_mistyped_label_fails_the_flow_before_anything_runs(settings: Settings) -> None:
    """``adhoc-nosuchlabel``: InputError naming the known labels; no chunk, no artifact."""
    engine_url = settings.database_url
    run = RowWritingRun(engine_url, [])
    engine = make_engine(engine_url)
    _enqueue(session_factory(engine), "spring")
    engine.dispose()
    publish = RecordingPublisher()
    for dry_run in (False, True):
        with pytest.raises(
            InputError, match=r"batch_label: .*'nosuchlabel'; the known labels are spring$"
        ):
            execute_batch(
                settings,
                BatchParameters(batch_label="nosuchlabel", dry_run=dry_run),
                CONTEXT,
                run_chunk=run,
                publish=publish,
            )
    assert run.options == []
    assert publish.tables == publish.markdowns == publish.progresses == {}


def test_a_label_whose_jobs_are_all_done_completes_with_nothing_queued(settings: Settings) -> None:
    """An existing label with nothing left: the run completes and says 'nothing queued'."""
    engine = make_engine(settings.database_url)
    _enqueue(session_factory(engine), "done")
    _finish(session_factory(engine), "done")
    engine.dispose()
    result = execute_batch(
        settings,
        BatchParameters(batch_label="done"),
        CONTEXT,
        run_chunk=RowWritingRun(settings.database_url, []),
        publish=RecordingPublisher(),
    )
    assert result["requests"] == 0
    assert result["message"] == "nothing queued for batch label 'done'"


def test_outcome_message_of_an_empty_run() -> None:
    """Nothing claimed and nothing stopped: 'nothing queued'; a stopped empty run says why."""
    assert outcome_message({"requests": 0}) == "nothing queued"
    stopped = outcome_message({"requests": 0, "stop_reason": "budget"})
    assert stopped == "0 generated, 0 failed, $0.00 (stopped: budget)"
