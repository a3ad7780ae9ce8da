"""The editorial views of migration 0007 as SQLAlchemy tables, for queries that read them.

``v_outputs`` has one row per generation (prewarms left out) with its version label, check
results, review state, latest decision, final text and IPTC digital source type;
``v_current_outputs`` the same columns for the current output of each job only. The CLI reads
them, so it and any SQL client see the same states (docs/reports.md lists the columns).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    String,
    Text,
    column,
    table,
)
from sqlalchemy.sql.expression import TableClause

# IPTC NewsCodes, Digital Source Type (http://cv.iptc.org/newscodes/digitalsourcetype/,
# release 2024-10-23): text made by a model; and a composite of model output with other
# material, here an editor's changes. (`humanEdits` is for edits of captured media with
# non-generative tools, so it does not describe an edited model text.)
AI_GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
AI_EDITED = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


def _outputs(name: str) -> TableClause:
    return table(
        name,
        column("generation_id", Integer),
        column("job_id", Integer),
        column("article_id", Integer),
        column("source_id", String),
        column("title", Text),
        column("url", Text),
        column("task", String),
        column("profile_version", String),
        column("version", String),
        column("model", String),
        column("request_model", String),
        column("service_tier", String),
        column("price_tier", String),
        column("status", String),
        column("error", Text),
        column("output_text", Text),
        column("output_json", JSON),
        column("checks", JSON),
        column("checks_failed", Boolean),
        column("grade_failed", Boolean),
        column("grade_generation_id", Integer),
        column("superseded", Boolean),
        column("review_state", String),
        column("review_id", Integer),
        column("decision", String),
        column("editor", String),
        column("note", Text),
        column("edited_text", Text),
        column("decided_at", DateTime),
        column("final_text", Text),
        column("digital_source_type", String),
        column("response_id", String),
        column("input_tokens", Integer),
        column("cached_tokens", Integer),
        column("cache_write_tokens", Integer),
        column("output_tokens", Integer),
        column("reasoning_tokens", Integer),
        column("cost_usd_e10", BigInteger),
        column("from_cache", Boolean),
        column("created_at", DateTime),
        column("run_id", Integer),
        column("batch_label", String),
        column("job_state", String),
    )


OUTPUTS = _outputs("v_outputs")
CURRENT_OUTPUTS = _outputs("v_current_outputs")
