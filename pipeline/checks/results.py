"""What a check says about one output: passed or not, and why, in words an editor reads.

``CheckReport`` is stored with the generation (``generations.checks``, a JSON list) and turned
into the follow-up message of a retry (``correction``): the failures as short instructions the
model can act on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    """One check on one output. ``fix`` is what a retry asks the model to do (failures only)."""

    check: str
    passed: bool
    reason: str
    fix: str = ""

    def as_json(self) -> dict[str, Any]:
        """The stored form: ``{"check", "passed", "reason"}``."""
        return {"check": self.check, "passed": self.passed, "reason": self.reason}


@dataclass(frozen=True)
class CheckReport:
    """Every check of one output, in the order the profile declares them."""

    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        """True when every check passed (also when there were none)."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The checks that failed."""
        return tuple(r for r in self.results if not r.passed)

    def as_json(self) -> list[dict[str, Any]]:
        """The stored form: one object per check."""
        return [r.as_json() for r in self.results]

    def correction(self) -> str:
        """The follow-up message of a retry: what is wrong and what to write instead."""
        lines = [
            "Your answer does not meet the newsroom's rules:",
            *(f"- {r.reason[:1].upper()}{r.reason[1:]}. {r.fix}".rstrip() for r in self.failures),
            "Write the corrected answer only, in the same form as before.",
        ]
        return "\n".join(lines)


def failed_checks(stored: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """The names of the failed checks in a stored report (``generations.checks``)."""
    return [str(r.get("check")) for r in stored or () if not r.get("passed")]


def summary_text(stored: Sequence[Mapping[str, Any]] | None) -> str:
    """A stored report in a few characters: ``-`` (no checks), ``ok 4/4``, ``FAIL max_words``."""
    if not stored:
        return "-"
    failed = failed_checks(stored)
    if not failed:
        return f"ok {len(stored)}/{len(stored)}"
    return "FAIL " + ",".join(failed)


def reasons_text(stored: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """One line per stored check: ``ok max_words: 9 words (at most 12)``."""
    return [
        f"{'ok' if r.get('passed') else 'FAIL'} {r.get('check')}: {r.get('reason')}"
        for r in stored or ()
    ]
