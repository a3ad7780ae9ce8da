"""Writing results for people and programs: CSV, JSON Lines, Markdown, and one-line summaries.

Exports carry the provenance of each text (profile version, model snapshot, tier, generation
and response ids), its check results, its review state and decision, and the IPTC digital
source type of the text as published (``digital_source_type``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from pipeline.checks import summary_text
from pipeline.reports.costs import usd_shown
from pipeline.reports.results import FailedJob, ResultRow
from pipeline.reports.times import local_time

# -- writers -----------------------------------------------------------------------------


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def write_csv(rows: Iterable[ResultRow | FailedJob], stream: TextIO, columns: list[str]) -> None:
    """A header row, then one row per item with the full text (csv module quoting)."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        data = row.as_dict()
        writer.writerow([_csv_cell(data[c]) for c in columns])


def write_jsonl(
    rows: Iterable[ResultRow | FailedJob], stream: TextIO, columns: Sequence[str] | None = None
) -> None:
    """One JSON object per line (UTF-8 text kept as it is, not \\u-escaped); only ``columns``
    when given."""
    for row in rows:
        data = row.as_dict()
        if columns is not None:
            data = {c: data[c] for c in columns}
        stream.write(json.dumps(data, ensure_ascii=False) + "\n")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def numbers_line(row: ResultRow) -> str:
    """Version, model, status, tokens, cost, time and run of a generation, in one line."""
    tokens = f"{row.input_tokens:,} in ({row.cached_tokens:,} cached"
    if row.cache_write_tokens:
        tokens += f", {row.cache_write_tokens:,} cache writes"
    tokens += f"), {row.output_tokens:,} out"
    if row.reasoning_tokens:
        tokens += f" ({row.reasoning_tokens:,} reasoning)"
    model = row.model + (f" ({row.service_tier})" if row.service_tier else "")
    parts = [row.version, model, row.status, tokens, f"${usd_shown(row.cost_usd)}"]
    if row.from_cache:
        parts.append("from the response cache")
    parts.append(local_time(row.created_at))
    if row.run_id is not None:
        parts.append(f"run {row.run_id}")
    parts.append(f"generation {row.generation_id}")
    return " · ".join(parts)


def review_line(row: ResultRow) -> str:
    """Checks and review state in one line: ``checks ok 3/3 · review approved by ana (note)``."""
    line = f"checks {summary_text(row.checks)} · review {row.review_state or '-'}"
    if row.decision is not None:
        line += f" by {row.editor} {local_time(row.decided_at)}" if row.decided_at else ""
        if row.note:
            line += f" ({_one_line(row.note)})"
    return line


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def structured_lines(value: Any, *, markdown: bool = False, depth: int = 0) -> list[str]:
    """A structured output (JSON) as lines a person reads: each field under its label, lists
    as bullets (``- item``), nested objects indented. ``markdown`` bolds the labels."""
    pad = "  " * depth
    if isinstance(value, dict):
        out: list[str] = []
        for key, item in value.items():
            label = f"**{_label(key)}**" if markdown and depth == 0 else _label(key)
            if isinstance(item, dict | list):
                out.append(f"{pad}{label}:")
                out += structured_lines(item, markdown=markdown, depth=depth + 1)
            else:
                out.append(f"{pad}{label}: {_scalar(item)}")
            if markdown and depth == 0:
                out.append("")
        return out[:-1] if out and out[-1] == "" else out
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict | list):
                out.append(f"{pad}-")
                out += structured_lines(item, markdown=markdown, depth=depth + 1)
            else:
                out.append(f"{pad}- {_scalar(item)}")
        return out
    return [f"{pad}{_scalar(value)}"]


def structured_line(value: Any) -> str:
    """A structured output on one line (a table cell): fields ``Label: a · b``, separated by
    `` | ``."""
    if isinstance(value, dict):
        return " | ".join(f"{_label(k)}: {structured_line(v)}" for k, v in value.items())
    if isinstance(value, list):
        return " · ".join(structured_line(v) for v in value)
    return _scalar(value)


def body_text(row: ResultRow) -> str:
    """The text to read: the output (a structured one as labelled bullets), or what went
    wrong when there is none."""
    if row.output_json is not None:
        return "\n".join(structured_lines(row.output_json))
    if row.text:
        return row.text
    return f"(no text: {row.error or row.status})"


def cell_text(row: ResultRow) -> str:
    """``shown_text`` for one table cell (a structured output as one line)."""
    if row.output_json is not None and row.decision != "edited":
        return structured_line(row.output_json)
    return shown_text(row)


def shown_text(row: ResultRow) -> str:
    """The text as it stands: the editor's where edited, else the model's (``body_text``)."""
    if row.decision == "edited" and row.final_text:
        return row.final_text
    return body_text(row)


def markdown(rows: Sequence[ResultRow], *, title: str = "Generated texts") -> str:
    """One Markdown document: per article a heading, then each task's text and its numbers."""
    out = [f"# {title}", ""]
    current: int | None = None
    for row in rows:
        if row.article_pk != current:
            current = row.article_pk
            out += [f"## {_one_line(row.title) or row.source_id}", ""]
            link = f" · <{row.url}>" if row.url else ""
            out += [f"Article `{row.source_id}`{link}", ""]
        out += [f"### {row.task}", ""]
        if row.output_json is not None and row.decision != "edited":
            out += structured_lines(row.output_json, markdown=True)
        else:
            out.append(shown_text(row).strip())
        out += ["", f"*{numbers_line(row)}*", "", f"*{review_line(row)}*", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def failed_markdown(rows: Sequence[FailedJob]) -> str:
    """Failed jobs as one Markdown document: per job its article, attempts and last error."""
    out = ["# Failed jobs", ""]
    for row in rows:
        out += [
            f"## {_one_line(row.title) or row.source_id}: {row.task}",
            "",
            f"Article `{row.source_id}` · job {row.job_id} · reason `{row.reason or '-'}`"
            f" · {row.attempts} attempt(s)"
            f" · {local_time(row.updated_at)}",
            "",
            "```",
            (row.last_error or "(no error recorded)").strip(),
            "```",
            "",
        ]
    return "\n".join(out).rstrip("\n") + "\n"
