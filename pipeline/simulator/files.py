"""In-memory ``/v1/files``: uploads (batch input checked as JSONL) and batch output files."""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pipeline.simulator.apierrors import SimAPIError

MAX_BATCH_LINES = 50_000
MAX_BATCH_BYTES = 200 * 1024 * 1024
PURPOSES = frozenset({"batch", "assistants", "fine-tune", "vision", "user_data", "evals"})


@dataclass
class StoredFile:
    """One file: its bytes and what ``GET /v1/files/{id}`` reports."""

    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def as_object(self) -> dict[str, Any]:
        """The File object (status ``processed``)."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": None,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


def _invalid_file(message: str) -> SimAPIError:
    # Wording UNCONFIRMED: the API refuses malformed batch files at upload with a 400.
    return SimAPIError(400, message, param="file", code="invalid_file")


def check_batch_file(data: bytes) -> None:
    """Refuse a batch input file over 200 MB or 50,000 lines, or with a non-JSON-object line."""
    if len(data) > MAX_BATCH_BYTES:
        raise _invalid_file(f"File is too large: {len(data)} bytes; the limit is 200 MB.")
    lines = [line for line in data.splitlines() if line.strip()]
    if not lines:
        raise _invalid_file("The batch input file is empty.")
    if len(lines) > MAX_BATCH_LINES:
        raise _invalid_file(
            f"The batch input file has {len(lines)} requests; a batch may have at most "
            f"{MAX_BATCH_LINES}."
        )
    for number, line in enumerate(lines, start=1):
        try:
            value = json.loads(line)
        except ValueError:
            raise _invalid_file(f"Line {number} is not valid JSON.") from None
        if not isinstance(value, dict):
            raise _invalid_file(f"Line {number} is not a JSON object.")


class FileStore:
    """Files by id, oldest first."""

    def __init__(self) -> None:
        self.files: OrderedDict[str, StoredFile] = OrderedDict()

    def add(self, filename: str, purpose: str, data: bytes, created_at: int) -> StoredFile:
        """Store ``data`` under a new ``file-`` id."""
        stored = StoredFile("file-" + secrets.token_hex(12), filename, purpose, data, created_at)
        self.files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        """The file ``file_id`` or None."""
        return self.files.get(file_id)

    def delete(self, file_id: str) -> bool:
        """Remove ``file_id``; False when it did not exist."""
        return self.files.pop(file_id, None) is not None
