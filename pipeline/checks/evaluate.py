"""Running a task's checks on one output: deterministic, free (no API call), pure.

``run_checks`` returns a ``CheckReport`` in a fixed order: ``schema`` (the output matched the
task's JSON schema), ``min_chars``/``max_chars``, ``min_words``/``max_words``, ``banned`` and
``facts``. A JSON output is checked on its string values (``text_of``). Characters are counted
on the stripped text, words as whitespace-separated runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pipeline.checks.facts import unsupported
from pipeline.checks.results import CheckReport, CheckResult
from pipeline.checks.spec import CheckSet

_SHOWN = 5  # items named in a reason; the rest are counted


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def text_of(output_text: str, output_json: Any | None) -> str:
    """The text checks read: a JSON output's string values, one a line; else the text."""
    if output_json is None:
        return output_text
    return "\n".join(_strings(output_json))


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    more = len(items) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _bound(name: str, count: int, unit: str, low: int | None, high: int | None) -> CheckResult:
    if high is not None and count > high:
        return CheckResult(
            f"max_{name}",
            False,
            f"{count} {unit} (at most {high})",
            f"Rewrite it in at most {high} {unit}.",
        )
    if low is not None and count < low:
        return CheckResult(
            f"min_{name}",
            False,
            f"{count} {unit} (at least {low})",
            f"Rewrite it in at least {low} {unit}.",
        )
    if low is not None and high is not None:
        limits = f"{low} to {high}"
    else:
        limits = f"at most {high}" if high is not None else f"at least {low}"
    which = "max" if high is not None else "min"
    return CheckResult(f"{which}_{name}", True, f"{count} {unit} ({limits})")


def run_checks(
    checks: CheckSet,
    text: str,
    *,
    source: str | None,
    schema_error: str | None = None,
    has_schema: bool = False,
) -> CheckReport:
    """Check one output's ``text`` (see the module docstring).

    ``source`` is what the model was given to work from (the article as sent); without it the
    facts check passes with the reason that there was nothing to compare with.
    ``schema_error`` is why a JSON output did not match its schema (None: it did).
    """
    results: list[CheckResult] = []
    if has_schema and checks.schema:
        if schema_error is None:
            results.append(CheckResult("schema", True, "matches the output schema"))
        else:
            results.append(
                CheckResult(
                    "schema",
                    False,
                    f"does not match the output schema: {schema_error}",
                    "Answer with a JSON object that matches the schema exactly.",
                )
            )
    if checks.min_chars is not None or checks.max_chars is not None:
        results.append(
            _bound("chars", len(text.strip()), "characters", checks.min_chars, checks.max_chars)
        )
    if checks.min_words is not None or checks.max_words is not None:
        results.append(
            _bound("words", len(text.split()), "words", checks.min_words, checks.max_words)
        )
    pattern = checks.banned_pattern
    if pattern is not None:
        flat = " ".join(text.lower().split())
        if not any(phrase in flat for phrase in checks.banned_lower):
            pattern = None
            results.append(CheckResult("banned", True, "no banned wording"))
    if pattern is not None:
        found = list(
            dict.fromkeys(" ".join(m.group(0).lower().split()) for m in pattern.finditer(text))
        )
        if found:
            quoted = [f"'{f}'" for f in found]
            results.append(
                CheckResult(
                    "banned",
                    False,
                    f"uses banned wording {_listed(quoted)}",
                    f"Do not use {', '.join(quoted)}.",
                )
            )
        else:
            results.append(CheckResult("banned", True, "no banned wording"))
    if checks.facts:
        if source is None:
            results.append(CheckResult("facts", True, "not checked: no article in the request"))
        else:
            missing = unsupported(text, source, rounding=checks.facts_rounding)
            if missing:
                results.append(
                    CheckResult(
                        "facts",
                        False,
                        f"not in the article: {_listed(missing)}",
                        "Use only figures, dates and names that the article gives, as it "
                        "gives them.",
                    )
                )
            else:
                results.append(
                    CheckResult("facts", True, "every number, date and name is in the article")
                )
    return CheckReport(tuple(results))
