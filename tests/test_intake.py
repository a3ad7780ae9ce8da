"""Reading article files: valid rows become ArticleIn, bad rows become `FILE:LINE: reason`."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import InputError
from pipeline.intake.reader import ArticleIn, Rejection, content_hash, iter_records, read_chunks

REPO_ROOT = Path(__file__).resolve().parents[1]
WriteFile = Callable[[str, bytes | str], Path]


def jsonl(*rows: dict[str, Any] | str | bytes) -> bytes:
    """Lines of a JSONL file: dicts are dumped, str/bytes are taken as the raw line."""
    out = []
    for row in rows:
        if isinstance(row, dict):
            out.append(json.dumps(row, ensure_ascii=False).encode())
        else:
            out.append(row.encode() if isinstance(row, str) else row)
    return b"\n".join(out) + b"\n"


def ok(n: int, **fields: Any) -> dict[str, Any]:
    """A valid row with id ``a<n>``."""
    return {"id": f"a{n}", "title": f"Title {n}", "body": f"Body {n}.", **fields}


def read(path: Path, **kwargs: Any) -> tuple[list[ArticleIn], list[str]]:
    """Articles and rejections (as strings) of ``path``."""
    articles, rejections = [], []
    for record in iter_records(path, **kwargs):
        if isinstance(record, Rejection):
            rejections.append(str(record))
        else:
            articles.append(record)
    return articles, rejections


# --- JSONL ---------------------------------------------------------------------------------


def test_valid_jsonl_rows_are_read_and_normalised(write_file: WriteFile) -> None:
    """Fields are stripped, section lower-cased, dates made naive UTC, int ids become text."""
    path = write_file(
        "a.jsonl",
        jsonl(
            ok(1, section=" Politics ", published_at="2025-11-20T10:00:00+02:00"),
            {"id": 7, "title": " T ", "body": " line one\r\nline two ", "url": "", "metadata": {}},
            ok(3, published_at="2025-11-21"),
        ),
    )
    articles, rejections = read(path)
    assert rejections == []
    first, second, third = articles
    assert (first.source_id, first.section) == ("a1", "politics")
    assert first.published_at == dt.datetime(2025, 11, 20, 8, 0)
    assert (second.source_id, second.title, second.body) == ("7", "T", "line one\nline two")
    assert (second.url, second.metadata) == (None, {})
    assert third.published_at == dt.datetime(2025, 11, 21)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"id": "x", "title": "t", "body": "b"', "invalid JSON"),
        (json.dumps({"id": "x", "title": "t"}).encode(), "body: missing"),
        (json.dumps({"id": "x", "title": "t", "body": "  \n "}).encode(), "body: empty"),
        (json.dumps({"id": "", "title": "t", "body": "b"}).encode(), "id: empty"),
        (json.dumps({"id": "x", "title": 5, "body": "b"}).encode(), "title: must be a string"),
        (json.dumps({"id": "x", "title": "t", "body": ["b"]}).encode(), "body: must be a string"),
        (json.dumps({"id": True, "title": "t", "body": "b"}).encode(), "id: must be a string"),
        (json.dumps(ok(1, metadata=[1])).encode(), "metadata: must be a JSON object"),
        (json.dumps(ok(1, published_at="yesterday")).encode(), "published_at: not an ISO 8601"),
        (json.dumps(ok(1, published_at=1700000000)).encode(), "published_at: must be an ISO 8601"),
        (json.dumps(ok(1, author="me")).encode(), "author: unknown field"),
        (json.dumps(ok(1, section="s" * 101)).encode(), "section: String should have at most 100"),
        (b'{"id": "x", "title": "t", "body": "caf\xe9"}', "not valid UTF-8 (byte 0xe9"),
        (b'{"id": "x", "title": "t", "body": "b", "metadata": {"n": NaN}}', "NaN is not allowed"),
        (b'{"id": "x", "title": "t", "body": "\\ud800"}', "body: contains invalid Unicode"),
        (b'{"id": "x", "title": "t", "body": "a\\u0000b"}', "contains a NUL character"),
        (b'{"id": "x", "title": "t", "body": "b", "metadata": {"k": "\\udfff"}}', "metadata:"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'"just a string"', "expected a JSON object, got str"),
    ],
)
def test_bad_jsonl_row_is_rejected_with_its_line(
    write_file: WriteFile, line: bytes, reason: str
) -> None:
    """Each kind of bad row is reported at its own line; the rows around it are kept."""
    path = write_file("in.jsonl", jsonl(ok(1), line, ok(3)))
    articles, rejections = read(path)
    assert [a.source_id for a in articles] == ["a1", "a3"]
    assert len(rejections) == 1
    assert rejections[0].startswith(f"{path}:2: ")
    assert reason in rejections[0]


def test_duplicate_id_rejects_the_later_row(write_file: WriteFile) -> None:
    """The first occurrence of an id wins; a repeat names the line of the first."""
    path = write_file("d.jsonl", jsonl(ok(1), ok(2), ok(1, body="other")))
    articles, rejections = read(path)
    assert [a.body for a in articles] == ["Body 1.", "Body 2."]
    assert rejections == [f"{path}:3: duplicate id 'a1' (first seen on line 1)"]


def test_oversized_body_and_line(write_file: WriteFile) -> None:
    """Bodies over the limit are rejected; a line far too long is skipped without loading it."""
    huge = b'{"id": "big", "title": "t", "body": "' + b"x" * 2_000_000 + b'"}'
    path = write_file("big.jsonl", jsonl(ok(1, body="y" * 101), huge, ok(3, body="z" * 100)))
    articles, rejections = read(path, max_body_chars=100)
    assert [a.source_id for a in articles] == ["a3"]
    assert rejections[0] == f"{path}:1: body: 101 characters, more than the limit of 100"
    assert rejections[1].startswith(f"{path}:2: line longer than")


def test_blank_lines_and_bom_are_ignored(write_file: WriteFile) -> None:
    """A UTF-8 BOM and empty lines do not count as rows, but line numbers stay physical."""
    path = write_file("b.jsonl", b"\xef\xbb\xbf" + jsonl(ok(1), "", "   ", "{bad"))
    articles, rejections = read(path)
    assert [a.source_id for a in articles] == ["a1"]
    assert rejections == [
        f"{path}:4: invalid JSON: Expecting property name enclosed in double quotes (column 2)"
    ]


def test_chunks_carry_rejections_and_progress(write_file: WriteFile) -> None:
    """Chunks hold up to chunk_size articles, the rejections met meanwhile, and the bytes read."""
    content = jsonl(*[ok(i) if i % 3 else "oops" for i in range(10)])
    path = write_file("c.jsonl", content)
    chunks = list(read_chunks(path, chunk_size=3))
    assert [len(c.articles) for c in chunks] == [3, 3, 0]  # the last row is a rejection
    assert sum(len(c.rejections) for c in chunks) == 4
    assert chunks[-1].bytes_read == len(content)
    assert chunks[0].bytes_read < chunks[1].bytes_read
    with pytest.raises(ValueError, match="chunk_size"):
        next(read_chunks(path, chunk_size=0))


def test_missing_file_and_directory_raise_input_error(tmp_path: Path) -> None:
    """A file that cannot be read at all is one InputError, not a rejection per row."""
    with pytest.raises(InputError, match="file not found"):
        read(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="directory"):
        read(tmp_path)


def test_format_is_detected_from_content(write_file: WriteFile) -> None:
    """Without a known extension, a leading '{' means JSONL, anything else CSV."""
    as_jsonl = write_file("feed.txt", jsonl(ok(1)))
    as_csv = write_file("feed.dat", "id,title,body\nx,T,B\n")
    assert [a.source_id for a in read(as_jsonl)[0]] == ["a1"]
    assert [a.source_id for a in read(as_csv)[0]] == ["x"]
    with pytest.raises(InputError, match="CSV header"):  # a forced format wins
        read(as_jsonl, fmt="csv")


# --- CSV -----------------------------------------------------------------------------------


def csv_text(header: list[str], *rows: list[str]) -> str:
    """A CSV document written by the csv module (quotes multi-line fields)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def test_csv_line_numbers_are_physical_lines(write_file: WriteFile) -> None:
    """A record spanning several lines is reported at the line where it starts."""
    text = csv_text(
        ["id", "title", "body", "section", "metadata"],
        ["1", "T", "first\nsecond\nthird", "Sport", '{"tags": ["a"]}'],
        ["2", "T", "", "", ""],
        ["3", "T", "multi\nline", "", "[1]"],
        ["4", "T", "ok", "", ""],
        ["1", "T", "dup", "", ""],
    )
    path = write_file("a.csv", text)
    articles, rejections = read(path)
    assert [(a.source_id, a.section, a.metadata) for a in articles] == [
        ("1", "sport", {"tags": ["a"]}),
        ("4", None, None),
    ]
    assert rejections == [
        f"{path}:5: body: empty",
        f"{path}:6: metadata: must be a JSON object",
        f"{path}:9: duplicate id '1' (first seen on line 2)",
    ]


def test_csv_bad_rows(write_file: WriteFile) -> None:
    """Non-UTF-8 bytes, wrong field counts, bad quoting and bad metadata JSON are rejected."""
    content = (
        b"id,title,body,metadata\n"
        b"1,T,caf\xe9,\n"
        b"2,T,too,many,fields\n"
        b'3,T,"bad"quote,\n'
        b'4,T,B,"{not json}"\n'
        b"5,T,fine,\n"
    )
    path = write_file("bad.csv", content)
    articles, rejections = read(path)
    assert [a.source_id for a in articles] == ["5"]
    assert [r.split(": ", 1)[0] for r in rejections] == [f"{path}:{n}" for n in (2, 3, 4, 5)]
    assert "not valid UTF-8" in rejections[0]
    assert "5 fields where the header has 4" in rejections[1]
    assert "invalid CSV" in rejections[2]
    assert "metadata: not a JSON object string" in rejections[3]


def nested(levels: int) -> dict[str, Any]:
    """``{"a": {"a": ... 1}}`` with ``levels`` objects."""
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return dict(value)


def test_rows_nested_too_deeply_are_rejected(write_file: WriteFile) -> None:
    """Past 64 levels (the row is one) a row is rejected, even 1,000 deep; the rest goes on."""
    path = write_file(
        "deep.jsonl",
        jsonl(
            ok(1, metadata=nested(63)),
            ok(2, metadata=nested(64)),
            '{"id": "x", "title": "t", "body": "b", "metadata": '
            + '{"a": ' * 1000
            + "1"
            + "}" * 1001,
            "[" * 100_000 + "]" * 100_000,
            ok(5),
        ),
    )
    articles, rejections = read(path)
    assert [a.source_id for a in articles] == ["a1", "a5"]
    assert rejections == [f"{path}:{n}: nested too deeply (more than 64 levels)" for n in (2, 3, 4)]


def test_csv_metadata_nested_too_deeply_is_rejected(write_file: WriteFile) -> None:
    """CSV metadata counts from the row: 63 levels of it are the most a row may hold."""
    text = csv_text(
        ["id", "title", "body", "metadata"],
        ["1", "T", "B", json.dumps(nested(63))],
        ["2", "T", "B", json.dumps(nested(64))],
        ["3", "T", "B", '{"a": ' * 1000 + "1" + "}" * 1000],
    )
    path = write_file("deep.csv", text)
    articles, rejections = read(path)
    assert [a.source_id for a in articles] == ["1"]
    assert rejections == [
        f"{path}:{n}: metadata: nested too deeply (more than 64 levels)" for n in (3, 4)
    ]


@pytest.mark.parametrize("header", ["id,title\n", "id,title,body,author\n", "id,title,body,body\n"])
def test_csv_header_problems_reject_the_file(write_file: WriteFile, header: str) -> None:
    """A header without body, with an unknown or repeated column is one InputError."""
    path = write_file("h.csv", header + "1,2,3,4\n")
    with pytest.raises(InputError, match=r"h\.csv:1: CSV header must name"):
        read(path)


def test_empty_csv_has_no_rows(write_file: WriteFile) -> None:
    """An empty file is not an error; it just has nothing in it."""
    assert read(write_file("e.csv", b"")) == ([], [])


# --- the shipped samples and the content hash ----------------------------------------------


def test_sample_file_is_valid_and_varied() -> None:
    """samples/articles.jsonl: three dozen substantial articles across the six sections."""
    articles, rejections = read(REPO_ROOT / "samples" / "articles.jsonl")
    assert rejections == []
    assert len(articles) >= 30
    sections = {a.section for a in articles}
    assert sections == {"politics", "business", "sport", "science", "culture", "world"}
    assert min(len(a.body.split()) for a in articles) >= 250


def test_bad_sample_file_shows_every_kind_of_rejection() -> None:
    """samples/bad_articles.jsonl keeps two rows and rejects one of each bad kind."""
    path = REPO_ROOT / "samples" / "bad_articles.jsonl"
    articles, rejections = read(path)
    assert [a.source_id for a in articles] == ["bad-01", "bad-13"]
    reasons = " | ".join(rejections)
    for expected in (
        "invalid JSON",
        "body: missing",
        "body: empty",
        "title: must be a string",
        "not valid UTF-8",
        "duplicate id",
        "more than the limit",
        "not an ISO 8601",
        "unknown field",
        "expected a JSON object",
    ):
        assert expected in reasons


def test_content_hash_covers_title_body_and_section() -> None:
    """Changing any of the three changes the hash; moving text between them does too."""
    base = content_hash("a b", "c", "s")
    assert base == content_hash("a b", "c", "s")
    assert len({base, content_hash("a b", "d", "s"), content_hash("a", "b c", "s")}) == 3
    assert content_hash("a b", "c", None) != content_hash("a b", "c", "")


_text = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=40,
)


@given(
    rows=st.lists(st.tuples(_text, _text, st.none() | _text.map(str.lower)), min_size=1, max_size=8)
)
def test_written_rows_read_back_unchanged(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str, str | None]]
) -> None:
    """Any valid text survives a trip through a JSONL file (ids numbered, no rejections)."""
    path = tmp_path_factory.mktemp("roundtrip") / "r.jsonl"
    data = [{"id": str(i), "title": t, "body": b, "section": s} for i, (t, b, s) in enumerate(rows)]
    path.write_bytes(jsonl(*data))
    articles, rejections = read(path)
    assert rejections == []
    assert [(a.title, a.body, a.section) for a in articles] == rows
