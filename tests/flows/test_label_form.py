"""The forms' batch-label field: its rule in words, and the labels with queued jobs offered."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from prefect.utilities.callables import parameter_schema
from pydantic import ValidationError

from flows.batch import adhoc_batch
from flows.deployments import LabelOffer, build_deployments, queued_labels
from flows.parameters import LABEL_DESCRIPTION, BatchParameters, offer_labels
from pipeline.db import make_engine, session_factory
from pipeline.db.queue import enqueue
from pipeline.settings import Settings
from tests.flows.prefect_stack import article


def _label_field(schema: dict[str, Any]) -> dict[str, Any]:
    field: dict[str, Any] = schema["definitions"]["BatchParameters"]["properties"]["batch_label"]
    return field


def test_the_label_rule_is_a_sentence_not_a_regular_expression() -> None:
    """The form states the rule in words; no regex reaches the schema, yet bad labels are
    still refused in words."""
    schema = parameter_schema(adhoc_batch).model_dump()
    field = _label_field(schema)
    assert "pattern" not in field
    assert "[A-Za-z0-9" not in json.dumps(schema)
    assert "starts with a letter or a digit" in field["description"]
    assert "dots, underscores and hyphens" in field["description"]
    with pytest.raises(ValidationError, match=re.escape("letters, digits, '.', '_' and '-'")):
        BatchParameters.model_validate({"batch_label": "has space"})
    with pytest.raises(ValidationError, match="batch_label"):
        BatchParameters.model_validate({"batch_label": "x" * 101})


def test_offered_labels_are_in_the_description_and_examples() -> None:
    """The labels with queued jobs are listed (at most 20) in the description and examples."""
    schema = parameter_schema(adhoc_batch).model_dump()
    offered = offer_labels(schema, ["autumn", "spring"])
    field = _label_field(offered)
    assert field["examples"] == ["autumn", "spring"]
    assert field["description"].endswith("Labels with queued jobs: `autumn`, `spring`.")
    assert "examples" not in _label_field(schema)  # the input is left as it was
    many = _label_field(offer_labels(offered, [f"b{n:02d}" for n in range(25)]))
    assert len(many["examples"]) == 20
    assert many["description"].endswith("`b19` and 5 more.")
    assert many["description"].count("Labels with queued jobs") == 1  # replaced, not appended
    none = _label_field(offer_labels(offered, []))
    assert "examples" not in none
    assert none["description"] == LABEL_DESCRIPTION + " No label has queued jobs."
    # The offer adds no enum: a label enqueued after the schema was made stays valid.
    assert "enum" not in field


def test_serving_offers_labels_on_the_batch_forms_only() -> None:
    """build_deployments puts the labels on nightly and ad-hoc; the cost report has none."""
    deployments = {d.name: d for d in build_deployments(Settings(), ["spring"])}
    for name in ("adhoc", "nightly"):
        schema = deployments[name]._parameter_openapi_schema.model_dump()
        assert _label_field(schema)["examples"] == ["spring"], name
    report = deployments["cost-report"]._parameter_openapi_schema.model_dump()
    assert "spring" not in json.dumps(report)
    plain = {d.name: d for d in build_deployments(Settings())}["adhoc"]
    assert "examples" not in _label_field(plain._parameter_openapi_schema.model_dump())


def test_label_offer_updates_the_forms_only_when_the_labels_change() -> None:
    """A refresh updates the deployments when the queued labels changed, skips an unchanged or
    unknown (database down) list, and survives a server that refuses the update."""
    answers: list[list[str] | None] = [["a"], ["a"], None, ["a", "b"], ["c"], ["c"]]
    updates: list[list[str]] = []
    failing = [False]

    def update(labels: Sequence[str]) -> None:
        if failing[0]:
            raise RuntimeError("server restarting")
        updates.append(list(labels))

    def read(_: Settings) -> list[str] | None:
        answer = answers.pop(0)
        if answer == ["boom"]:
            raise OSError("database connection dropped")
        return answer

    answers.insert(2, ["boom"])
    offer = LabelOffer(Settings(), read=read, update=update)
    assert [offer.refresh() for _ in range(5)] == [True, False, False, False, True]
    failing[0] = True
    assert offer.refresh() is False  # ["c"] not offered: tried again next time
    failing[0] = False
    assert offer.refresh() is True
    assert updates == [["a"], ["a", "b"], ["c"]]
    assert offer.daemon


def test_no_labels_are_offered_when_the_database_cannot_say(tmp_path: Path) -> None:
    """A job database that is missing or not migrated: serving goes on, nothing is offered."""
    missing = Settings(database_url=f"sqlite:///{tmp_path / 'none.db'}")
    assert queued_labels(missing) is None
    assert not (tmp_path / "none.db").exists()


def test_the_queued_labels_come_from_the_job_database(settings: Settings) -> None:
    """What serve offers: the labels with queued jobs, sorted."""
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        enqueue(session, [article("zeta", 0)], ["summary"], batch_label="zeta")
        enqueue(session, [article("alpha", 0)], ["summary"], batch_label="alpha")
    engine.dispose()
    assert queued_labels(settings) == ["alpha", "zeta"]
