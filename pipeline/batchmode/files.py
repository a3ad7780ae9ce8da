"""Batch input and output files: JSONL lines, ``custom_id``s, and splitting under the limits.

Pure functions over values. A line is one request in the Batch API envelope
(``{"custom_id", "method": "POST", "url": "/v1/responses", "body"}``); a file holds one model's
lines, at most 50,000 of them and at most 200 MB (API-NOTES section 6). Output and error files
come back out of order, one JSON object per line, and are joined on ``custom_id``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("contentgen.batch")

MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
ENDPOINT: Literal["/v1/responses"] = "/v1/responses"
_CUSTOM_ID = re.compile(r"^job-(\d+)-a(\d+)$")


def custom_id(job_id: int, attempt: int) -> str:
    """The stable id of a job's attempt in a batch (``job-17-a2``)."""
    return f"job-{job_id}-a{attempt}"


def parse_custom_id(value: str) -> tuple[int, int] | None:
    """``job-17-a2`` -> (17, 2); None for ids we did not write."""
    match = _CUSTOM_ID.match(value)
    return (int(match.group(1)), int(match.group(2))) if match else None


def batch_line(cid: str, body: Mapping[str, Any]) -> bytes:
    """One JSONL input line (compact JSON, newline-terminated, UTF-8)."""
    line = {"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": dict(body)}
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


@dataclass(frozen=True)
class Line:
    """One request of a batch: its line, and what is needed to render it again."""

    custom_id: str
    job_id: int
    attempt: int
    task: str
    layout: str
    cache_key: str | None
    data: bytes
    # The profile version the line was rendered with (stored on its item; see ``ingest``).
    profile_version: str | None = None


def split(
    lines: Sequence[Line], *, max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES
) -> list[list[Line]]:
    """Cut ``lines`` (in order) into files of at most ``max_requests`` lines and ``max_bytes``.

    Raises ``ValueError`` for a single line larger than ``max_bytes`` (it cannot be sent).
    """
    if max_requests < 1 or max_bytes < 1:
        raise ValueError("limits must be positive")
    parts: list[list[Line]] = []
    current: list[Line] = []
    size = 0
    for line in lines:
        n = len(line.data)
        if n > max_bytes:
            raise ValueError(
                f"{line.custom_id}: a {n}-byte line exceeds the {max_bytes}-byte limit"
            )
        if current and (len(current) >= max_requests or size + n > max_bytes):
            parts.append(current)
            current, size = [], 0
        current.append(line)
        size += n
    if current:
        parts.append(current)
    return parts


def jsonl(lines: Sequence[Line]) -> bytes:
    """The file content of ``lines``."""
    return b"".join(line.data for line in lines)


@dataclass(frozen=True)
class LineResult:
    """One line of an output or error file.

    ``status_code`` and ``body`` come from ``response`` (None when the request never got an
    HTTP answer); ``error_code``/``error_message`` from ``error`` (``batch_expired``...) or
    from an HTTP error body.
    """

    custom_id: str
    status_code: int | None
    body: Mapping[str, Any] | None
    request_id: str | None
    error_code: str | None
    error_message: str | None

    @property
    def answered(self) -> bool:
        """True for a 200 whose body is a response object."""
        return self.status_code == 200 and self.body is not None


def _line_result(row: Mapping[str, Any]) -> LineResult | None:
    cid = row.get("custom_id")
    if not isinstance(cid, str):
        return None
    response = row.get("response")
    error = row.get("error")
    status = body = request_id = code = message = None
    if isinstance(response, Mapping):
        raw_status = response.get("status_code")
        status = raw_status if isinstance(raw_status, int) else None
        raw_body = response.get("body")
        body = raw_body if isinstance(raw_body, Mapping) else None
        rid = response.get("request_id")
        request_id = rid if isinstance(rid, str) else None
        if status != 200 and body is not None:
            inner = body.get("error")
            if isinstance(inner, Mapping):
                code, message = inner.get("code"), inner.get("message")
            body = None
    if isinstance(error, Mapping):
        code, message = error.get("code"), error.get("message")
    return LineResult(
        custom_id=cid,
        status_code=status,
        body=body,
        request_id=request_id,
        error_code=code if isinstance(code, str) else None,
        error_message=message if isinstance(message, str) else None,
    )


def parse_lines(data: bytes, *, source: str = "batch file") -> Iterator[LineResult]:
    """The lines of an output or error file; unreadable lines are logged and skipped (their
    jobs then count as missing from the batch and go back to the queue)."""
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError:
            log.warning("%s line %d is not JSON; skipped", source, number)
            continue
        result = _line_result(row) if isinstance(row, Mapping) else None
        if result is None:
            log.warning("%s line %d has no custom_id; skipped", source, number)
            continue
        yield result
