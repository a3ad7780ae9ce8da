"""A grader's verdict: the criteria its JSON answer passes, and whether the graded output is
flagged (the share that passes is below the grader's threshold)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.checks.results import CheckReport, CheckResult
from pipeline.checks.spec import GraderSpec


def grade(spec: GraderSpec, verdict: Mapping[str, Any] | None) -> tuple[CheckReport, bool]:
    """Each criterion of ``spec`` as a check result, and whether the graded output is flagged.

    A criterion missing from ``verdict``, or without a boolean ``pass``, counts as failed.
    """
    results = []
    for criterion in spec.criteria:
        item = (verdict or {}).get(criterion)
        if isinstance(item, Mapping) and isinstance(item.get("pass"), bool):
            reason = str(item.get("reason") or "").strip() or "(no reason given)"
            results.append(CheckResult(criterion, bool(item["pass"]), reason))
        else:
            results.append(CheckResult(criterion, False, "the grader gave no verdict"))
    report = CheckReport(tuple(results))
    share = sum(r.passed for r in results) / len(results)
    return report, share < spec.threshold
