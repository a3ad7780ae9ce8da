"""Text as the desk shows it: the phrases failed checks and grader reasons point at, marked in
an output's text, and an editor's change as a word diff against the model's text.

Both return plain segments; the templates escape every segment, so nothing here builds HTML.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# 'quoted' or "quoted" phrases (banned wording, names, grader quotes) and `4,500 (number)`.
_QUOTED = re.compile(r"'([^']{2,120})'|\"([^\"]{2,120})\"|“([^”]{2,120})”")
_FACT = re.compile(r"(\S{1,40}) \((?:number|date)\)")


@dataclass(frozen=True)
class Segment:
    """A piece of text; ``note`` says why it is marked (None: plain)."""

    text: str
    note: str | None = None


def phrases(results: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    """The phrases failed check results point at, each with the reason that names it."""
    found: dict[str, str] = {}
    for result in results or ():
        if result.get("passed"):
            continue
        reason = str(result.get("reason") or "")
        label = f"{result.get('check')}: {reason}"
        for m in _QUOTED.finditer(reason):
            phrase = next(g for g in m.groups() if g)
            found.setdefault(phrase, label)
        for m in _FACT.finditer(reason):
            found.setdefault(m.group(1).strip(",;"), label)
    return found


def marked(text: str, notes: Mapping[str, str]) -> list[Segment]:
    """``text`` cut into segments, the phrases of ``notes`` marked wherever they occur (any
    case; a longer phrase wins where two overlap)."""
    spans: list[tuple[int, int, str]] = []
    for phrase in sorted(notes, key=len, reverse=True):
        if not phrase.strip():
            continue
        pattern = re.compile(
            r"(?<!\w)" + re.escape(phrase) + r"(?!\w)"
            if phrase[-1:].isalnum()
            else re.escape(phrase),
            re.IGNORECASE,
        )
        for m in pattern.finditer(text):
            if all(m.end() <= s or m.start() >= e for s, e, _ in spans):
                spans.append((m.start(), m.end(), notes[phrase]))
    segments: list[Segment] = []
    at = 0
    for start, end, note in sorted(spans):
        if start > at:
            segments.append(Segment(text[at:start]))
        segments.append(Segment(text[start:end], note))
        at = end
    if at < len(text) or not segments:
        segments.append(Segment(text[at:]))
    return segments


@dataclass(frozen=True)
class Change:
    """A piece of a word diff: ``kind`` is ``same``, ``removed`` or ``added``."""

    kind: str
    text: str


def word_diff(before: str, after: str) -> list[Change]:
    """What an editor changed, word by word (whitespace kept with its word)."""
    old = re.findall(r"\S+\s*", before)
    new = re.findall(r"\S+\s*", after)
    changes: list[Change] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            changes.append(Change("same", "".join(old[i1:i2])))
            continue
        if i2 > i1:
            changes.append(Change("removed", "".join(old[i1:i2])))
        if j2 > j1:
            changes.append(Change("added", "".join(new[j1:j2])))
    return changes
