"""Checks: deterministic, free tests of an output, declared per task in ``profiles.toml``.

- ``spec``: ``[profiles.<task>.checks]`` (character and word bounds, banned wording, the output
  schema, facts, ``on_fail``) and ``[profiles.<task>.grader]``, read and loaded;
- ``evaluate``: ``run_checks`` on one output, in a fixed order, each result with its reason;
- ``facts``: numbers, dates and names the source does not contain (with the stated tolerance
  for rounding and numbers in words);
- ``grading``: a grader task's JSON verdict as check results, and whether it flags;
- ``results``: ``CheckReport`` (stored as JSON on the generation) and the retry's message.

Pure functions of values: no database, no network, no clock. The lowest wing: ``prompts``
carries a task's checks in its ``Profile``.
"""

from __future__ import annotations

from pipeline.checks.evaluate import run_checks, text_of
from pipeline.checks.facts import names, numbers, unsupported
from pipeline.checks.grading import grade
from pipeline.checks.results import (
    CheckReport,
    CheckResult,
    failed_checks,
    reasons_text,
    summary_text,
)
from pipeline.checks.spec import (
    DEFAULT_CRITERIA,
    CheckSet,
    ChecksSpec,
    GraderSpec,
    OnFail,
    banned_phrases,
)

__all__ = [
    "DEFAULT_CRITERIA",
    "CheckReport",
    "CheckResult",
    "CheckSet",
    "ChecksSpec",
    "GraderSpec",
    "OnFail",
    "banned_phrases",
    "failed_checks",
    "grade",
    "names",
    "numbers",
    "reasons_text",
    "run_checks",
    "summary_text",
    "text_of",
    "unsupported",
]
