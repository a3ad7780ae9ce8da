"""Dead letters: why a job failed for good, from a fixed vocabulary a machine can filter on.

Every job that ends ``failed`` carries a ``failure_reason``:

- ``auth``: the API refused the key (401/403). Fix the key, then requeue.
- ``quota``: the account is out of quota. Add credit, then requeue.
- ``bad_request``: the request (its profile) cannot give an acceptable answer: a 4xx, an
  answer cut short or off its schema. Fix the profile or the article.
- ``content_filter``: the provider's safety system refused the prompt or the answer.
- ``too_large``: the request can never fit the account's or the model's limits.
- ``max_attempts``: retryable errors (5xx, 429, timeouts) used up ``max_attempts``.
- ``worker_lost``: workers died N times sending it alone (a poison job).
- ``expired``: its Batch API batch ended (expired, cancelled) before its line ran, and that
  was its last attempt.
- ``budget``: reserved for a job that can never be sent under a budget; a budget stop
  itself leaves unsent jobs queued, so no code fails a job with it yet.

``unknown`` is given only by migration 0014 to failures recorded before reasons existed whose
last error names none of these. ``reason_of`` is the one place that reads an error's text.
"""

from __future__ import annotations

import re

from pipeline.errors import InputError

FAILURE_REASONS = (
    "auth",
    "quota",
    "bad_request",
    "content_filter",
    "too_large",
    "max_attempts",
    "worker_lost",
    "expired",
    "budget",
)
MAX_ATTEMPTS = "max_attempts"
UNKNOWN = "unknown"
# What ``--reason`` accepts: the vocabulary and the backfill's ``unknown``.
REASON_FILTERS = (*FAILURE_REASONS, UNKNOWN)

_EXPIRED = re.compile(r"batch_expired|batch_cancelled|ended (expired|cancelled)", re.IGNORECASE)
# Ordered: the first match names the reason. Patterns read our own error texts
# (``client.errors``, ``run.recording``, ``batchmode.ingest``, ``db.jobs``).
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        ("worker_lost", r"workers? died"),
        ("quota", r"insufficient_quota|out of quota"),
        ("auth", r"HTTP 40[13]\b|invalid_api_key|api key was refused"),
        (
            "content_filter",
            r"content_filter|content_policy|invalid_prompt|bio_policy|safety system",
        ),
        ("too_large", r"too large|context_length|context window|larger than"),
        ("budget", r"\bbudget\b"),
        ("expired", _EXPIRED.pattern),
        ("max_attempts", r"last attempt"),
        (
            "bad_request",
            r"HTTP 4(0[0-9]|1[0-9]|2[0-9])\b|does not match the|incomplete:|schema",
        ),
    )
)


def reason_of(error: str | None, *, permanent: bool) -> str:
    """The failure reason of a job failing for good with ``error`` (when the code that failed
    it named none).

    A permanent error is read from its text (auth, quota, content filter, too large, ...),
    ``bad_request`` when the text names nothing else. A retryable error only fails a job on
    its last attempt: ``max_attempts``, or ``expired`` when its batch ended before it ran.
    """
    text = error or ""
    if not permanent:
        return "expired" if _EXPIRED.search(text) else "max_attempts"
    for reason, pattern in _PATTERNS:
        if pattern.search(text):
            return reason
    return "bad_request"


def check_reason(reason: str) -> str:
    """``reason`` if it is one ``--reason`` accepts; else one line listing the valid ones."""
    value = reason.strip().lower()
    if value not in REASON_FILTERS:
        raise InputError(
            f"--reason: unknown failure reason {reason!r}; the reasons are "
            f"{', '.join(REASON_FILTERS)}"
        )
    return value
