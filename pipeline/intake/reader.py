"""Reading article files (JSONL or CSV) into validated ``ArticleIn`` records.

A file is streamed, never loaded whole: ``read_chunks`` yields a few thousand records at a time
with the byte position reached, so a progress bar can follow and the caller can commit as it
goes. A bad row does not stop the file: it becomes a ``Rejection`` that prints as
``FILE:LINE: reason`` and the rest goes on. What makes a row bad:

- not valid UTF-8 (checked per line, so one bad byte costs one row), or not valid JSON / CSV;
- ``body`` (or ``id``, ``title``) missing or empty, a field of the wrong type, an unknown field;
- ``published_at`` not ISO 8601, ``metadata`` not a JSON object (in CSV: a JSON string);
- JSON nested more than ``MAX_DEPTH`` levels (deeper would exhaust the recursion limit);
- a body longer than ``max_body_chars``, or a line too long to be a row;
- an ``id`` already seen earlier in the same file (the later row is rejected).

A file that cannot be used at all (missing, unreadable, a CSV header without ``body``) raises
one ``InputError`` instead.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BufferedReader
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import InputError

Format = Literal["jsonl", "csv"]
DEFAULT_MAX_BODY_CHARS = 200_000
DEFAULT_CHUNK_SIZE = 2_000
FIELDS = ("id", "title", "body", "section", "url", "published_at", "metadata")
REQUIRED = ("id", "title", "body")
# Objects and arrays a row may nest (the row itself is level 1); real metadata needs a few.
MAX_DEPTH = 64
_CONTENT_HASH_VERSION = "v1"
_BOM = codecs.BOM_UTF8


def content_hash(title: str, body: str, section: str | None) -> str:
    """SHA-256 of what a generation depends on: title, body and section in a canonical form.

    The canonical form is a version tag, then each field prefixed by its length (-1 for no
    section), so ``("a b", "c")`` and ``("a", "b c")`` differ and nothing needs escaping.
    Changing it means a new tag (and every article counting as changed once).
    """
    size = -1 if section is None else len(section)
    canonical = (
        f"{_CONTENT_HASH_VERSION}|{len(title)}:{title}|{size}:{section or ''}|{len(body)}:{body}"
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _parse_datetime(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)  # ISO 8601 dates and datetimes, with or without Z
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed  # stored as naive UTC, like every timestamp in the schema


class ArticleIn(BaseModel):
    """One valid article row. ``id`` in the file becomes ``source_id`` (the source's own key).

    Text is stripped at the edges and CRLF line ends become LF; an empty optional field is
    None; ``section`` is lower-cased so that "Politics" finds ``contexts/sections/politics.md``;
    ``published_at`` is naive UTC.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True
    )

    source_id: str = Field(alias="id", min_length=1, max_length=255)
    title: str = Field(min_length=1)
    body: str = Field(min_length=1)
    section: str | None = Field(default=None, max_length=100)
    url: str | None = Field(default=None, max_length=2048)
    published_at: dt.datetime | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("source_id", mode="before")
    @classmethod
    def _id_text(cls, value: object) -> object:
        # Sources often number their articles; an integer id is taken as its decimal text.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value.strip() if isinstance(value, str) else value

    @field_validator("title", "body", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        # Windows line ends would make the same text hash differently.
        return value.replace("\r\n", "\n").strip() if isinstance(value, str) else value

    @field_validator("section", "url", mode="before")
    @classmethod
    def _optional_text(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @field_validator("section", mode="after")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return None if value is None else value.lower()

    @field_validator("published_at", mode="before")
    @classmethod
    def _iso8601(cls, value: object) -> object:
        if value is None or isinstance(value, dt.datetime):
            return value
        if not isinstance(value, str):
            raise ValueError("must be an ISO 8601 date or datetime string")
        if not value.strip():
            return None
        try:
            return _parse_datetime(value.strip())
        except ValueError:
            raise ValueError(f"not an ISO 8601 date or datetime: {value[:40]!r}") from None

    @property
    def content_hash(self) -> str:
        """The hash that decides whether a re-sent article changed (see ``content_hash``)."""
        return content_hash(self.title, self.body, self.section)


@dataclass(frozen=True)
class Rejection:
    """A row that was skipped: where it is and why. ``str()`` gives ``FILE:LINE: reason``."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class Chunk:
    """Up to ``chunk_size`` valid articles, the rows rejected meanwhile, and the bytes read."""

    articles: list[ArticleIn] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    bytes_read: int = 0

    @property
    def rows(self) -> int:
        """Rows seen in this chunk, valid or not."""
        return len(self.articles) + len(self.rejections)


def detect_format(path: Path, first_bytes: bytes) -> Format:
    """``jsonl`` or ``csv``, from the extension, else from the first non-blank character."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    return "jsonl" if first_bytes.lstrip(_BOM + b" \t\r\n").startswith(b"{") else "csv"


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "row"
        kind = err["type"]
        if kind == "missing":
            problems.append(f"{loc}: missing")
        elif kind == "extra_forbidden":
            problems.append(f"{loc}: unknown field (allowed: {', '.join(FIELDS)})")
        elif kind == "string_too_short":
            problems.append(f"{loc}: empty")
        elif kind == "string_type":
            problems.append(f"{loc}: must be a string, got {type(err['input']).__name__}")
        elif kind == "string_unicode":
            problems.append(f"{loc}: contains invalid Unicode (a lone surrogate escape)")
        elif kind in ("dict_type", "model_type"):
            problems.append(f"{loc}: must be a JSON object")
        else:
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{loc}: {message}")
    return "; ".join(problems)


def _reject_constant(name: str) -> float:
    raise ValueError(f"invalid JSON: {name} is not allowed")


class _TooDeep(ValueError):
    """JSON nested more than ``MAX_DEPTH`` levels."""

    def __init__(self) -> None:
        super().__init__(f"nested too deeply (more than {MAX_DEPTH} levels)")


def _too_deep(value: Any, limit: int) -> bool:
    """True when ``value`` nests objects/arrays more than ``limit`` levels (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _loads(text: str, limit: int = MAX_DEPTH) -> Any:
    # NaN and Infinity are not JSON; PostgreSQL's json type refuses them later.
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _TooDeep() from None
    if _too_deep(value, limit):
        raise _TooDeep()
    return value


def _bad_text(values: Any) -> str | None:
    """Why a string would be refused by the database (lone surrogates, NUL), or None."""
    for value in values:
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            return "contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains invalid Unicode (a lone surrogate escape)"
    return None


class _Validator:
    """Turns a parsed row into an ``ArticleIn`` or a reason, remembering the ids already seen."""

    def __init__(self, name: str, max_body_chars: int) -> None:
        self.name = name
        self.max_body_chars = max_body_chars
        self.seen: dict[str, int] = {}

    def check(self, raw: dict[str, Any], line: int) -> ArticleIn | Rejection:
        body = raw.get("body")
        if isinstance(body, str) and len(body) > self.max_body_chars:
            return self._reject(
                line,
                f"body: {len(body):,} characters, more than the limit of {self.max_body_chars:,}",
            )
        try:
            article = ArticleIn.model_validate(raw)
        except ValidationError as exc:
            return self._reject(line, _describe(exc))
        except ValueError as exc:  # NaN in metadata and other JSON-level surprises
            return self._reject(line, str(exc))
        values = [article.source_id, article.title, article.body, article.section, article.url]
        problem = _bad_text(values)
        if problem is None and article.metadata is not None:
            problem = _bad_text([json.dumps(article.metadata, ensure_ascii=False)])
            if problem is not None:
                problem = f"metadata: {problem}"
        if problem is not None:
            return self._reject(line, problem)
        first = self.seen.get(article.source_id)
        if first is not None:
            return self._reject(
                line, f"duplicate id {article.source_id!r} (first seen on line {first})"
            )
        self.seen[article.source_id] = line
        return article

    def _reject(self, line: int, reason: str) -> Rejection:
        return Rejection(self.name, line, reason)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start]
        raise ValueError(f"not valid UTF-8 (byte 0x{bad:02x} at offset {exc.start})") from None


def _iter_jsonl(
    fh: IO[bytes], validator: _Validator, max_line_bytes: int
) -> Iterator[ArticleIn | Rejection]:
    line_no = 0
    while True:
        raw = fh.readline(max_line_bytes + 1)
        if not raw:
            return
        line_no += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            while (rest := fh.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass  # skip the remainder of an oversized line without holding it
            yield validator._reject(line_no, f"line longer than {max_line_bytes:,} bytes")
            continue
        if line_no == 1:
            raw = raw.removeprefix(_BOM)
        if not raw.strip():
            continue
        try:
            row = _loads(_decode(raw.rstrip(b"\r\n")))
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            reason = str(exc)
            if isinstance(exc, json.JSONDecodeError):
                reason = f"invalid JSON: {exc.msg} (column {exc.colno})"
            yield validator._reject(line_no, reason)
            continue
        if not isinstance(row, dict):
            yield validator._reject(line_no, f"expected a JSON object, got {type(row).__name__}")
            continue
        yield validator.check(row, line_no)


def _csv_lines(fh: IO[bytes]) -> Iterator[str]:
    # Each physical line is decoded on its own; bytes that are not UTF-8 survive as surrogate
    # escapes, so the csv module still sees the record and we can reject just that record.
    first = True
    for raw in fh:
        if first:
            raw, first = raw.removeprefix(_BOM), False
        yield raw.decode("utf-8", errors="surrogateescape")


def _has_undecodable(values: list[str]) -> bool:
    try:
        for value in values:
            value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _csv_row(header: list[str], values: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, value in zip(header, values, strict=True):
        if name in ("section", "url", "published_at", "metadata") and value.strip() == "":
            continue  # an empty optional cell means "not given"
        row[name] = value
    if isinstance(row.get("metadata"), str):
        try:
            row["metadata"] = _loads(row["metadata"], MAX_DEPTH - 1)  # the row is level 1
        except _TooDeep as exc:
            raise ValueError(f"metadata: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"metadata: not a JSON object string ({exc})") from None
        if not isinstance(row["metadata"], dict):
            raise ValueError("metadata: must be a JSON object")
    return row


def _iter_csv(
    fh: IO[bytes], validator: _Validator, max_line_bytes: int
) -> Iterator[ArticleIn | Rejection]:
    reader = csv.reader(_csv_lines(fh), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise InputError(f"{validator.name}:1: unreadable CSV header: {exc}") from exc
    header = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED if name not in header]
    unknown = [name for name in header if name not in FIELDS]
    if missing or unknown or len(set(header)) != len(header):
        raise InputError(
            f"{validator.name}:1: CSV header must name the columns {', '.join(REQUIRED)} "
            f"(and optionally section, url, published_at, metadata); got {', '.join(header)}"
        )
    previous_end = reader.line_num
    # A runaway quote would otherwise swallow the rest of the file as one field.
    csv.field_size_limit(max(max_line_bytes, 131_072))
    while True:
        start = previous_end + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            previous_end = reader.line_num
            yield validator._reject(start, f"invalid CSV: {exc}")
            continue
        previous_end = reader.line_num
        if not values or (len(values) == 1 and not values[0].strip()):
            continue
        if _has_undecodable(values):
            yield validator._reject(start, "not valid UTF-8")
            continue
        if len(values) != len(header):
            yield validator._reject(
                start, f"{len(values)} fields where the header has {len(header)}"
            )
            continue
        try:
            row = _csv_row(header, values)
        except ValueError as exc:
            yield validator._reject(start, str(exc))
            continue
        yield validator.check(row, start)


def _open(path: Path) -> BufferedReader:
    try:
        return path.open("rb")
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a directory, not a file") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc


def read_chunks(
    path: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_body_chars: int = DEFAULT_MAX_BODY_CHARS,
    fmt: Format | None = None,
) -> Iterator[Chunk]:
    """Stream ``path`` as chunks of at most ``chunk_size`` valid articles plus their rejections.

    ``fmt`` forces ``jsonl`` or ``csv``; by default it follows the extension (or the content).
    Raises ``InputError`` when the file cannot be read at all.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    name = str(path)
    validator = _Validator(name, max_body_chars)
    # UTF-8 takes at most 4 bytes a character; the rest of the row gets generous room.
    max_line_bytes = max_body_chars * 4 + (1 << 20)
    with _open(path) as fh:
        try:
            fmt = fmt or detect_format(path, fh.peek(64))
            parse: Callable[[IO[bytes], _Validator, int], Iterator[ArticleIn | Rejection]]
            parse = _iter_jsonl if fmt == "jsonl" else _iter_csv
            chunk = Chunk()
            for record in parse(fh, validator, max_line_bytes):
                if isinstance(record, Rejection):
                    chunk.rejections.append(record)
                else:
                    chunk.articles.append(record)
                if len(chunk.articles) >= chunk_size:
                    chunk.bytes_read = fh.tell()
                    yield chunk
                    chunk = Chunk()
            if chunk.rows:
                chunk.bytes_read = fh.tell()
                yield chunk
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def iter_records(
    path: Path, *, max_body_chars: int = DEFAULT_MAX_BODY_CHARS, fmt: Format | None = None
) -> Iterator[ArticleIn | Rejection]:
    """Every row of ``path`` in order, as an ``ArticleIn`` or a ``Rejection``."""
    for chunk in read_chunks(path, chunk_size=1, max_body_chars=max_body_chars, fmt=fmt):
        # With chunk_size=1 a chunk holds at most one article, after the rejections before it.
        yield from chunk.rejections
        yield from chunk.articles
