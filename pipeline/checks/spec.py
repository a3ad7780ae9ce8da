"""The checks a task declares in ``profiles.toml`` (``[profiles.<task>.checks]``), and its grader.

```toml
[profiles.headline.checks]
max_words = 12                  # also min_words, min_chars, max_chars
banned_file = "checks/banned.txt"   # one word or phrase a line; and/or banned = ["..."]
facts = true                    # numbers, dates and names must be in the article
on_fail = "retry"               # or "flag" (the default)
max_retries = 1
```

``ChecksSpec`` is the file's form (unknown keys refused); ``CheckSet`` is the loaded form, with
the banned phrases of ``banned_file`` read in, so evaluating never touches the disk. A grader
task says ``[profiles.<task>.grader]``: the criteria its JSON verdict answers and the share of
them that must pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OnFail = Literal["flag", "retry"]
DEFAULT_CRITERIA = ("accurate", "attributed", "neutral")


class ChecksSpec(BaseModel):
    """``[profiles.<task>.checks]`` as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_chars: int | None = Field(default=None, ge=1)
    max_chars: int | None = Field(default=None, ge=1)
    min_words: int | None = Field(default=None, ge=1)
    max_words: int | None = Field(default=None, ge=1)
    banned: list[str] = Field(default_factory=list)
    banned_file: Path | None = None
    schema_: bool = Field(default=True, alias="schema")
    facts: bool = False
    facts_rounding: bool = True
    on_fail: OnFail = "flag"
    max_retries: int = Field(default=1, ge=1, le=3)

    @model_validator(mode="after")
    def _bounds(self) -> ChecksSpec:
        for low, high in (("min_chars", "max_chars"), ("min_words", "max_words")):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{low} ({a}) is above {high} ({b})")
        if any(not phrase.strip() for phrase in self.banned):
            raise ValueError("banned: an empty phrase")
        return self


class GraderSpec(BaseModel):
    """``[profiles.<task>.grader]``: this task grades the task it follows.

    Its JSON output has one object per criterion, ``{"pass": bool, "reason": str}``; the graded
    output is flagged when the share of criteria that pass is below ``threshold``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    criteria: list[str] = Field(default_factory=lambda: list(DEFAULT_CRITERIA), min_length=1)
    threshold: float = Field(default=1.0, gt=0, le=1)


def banned_phrases(text: str) -> list[str]:
    """The phrases of a banned-words file: one a line, ``#`` starts a comment."""
    phrases = []
    for line in text.splitlines():
        phrase = line.split("#", 1)[0].strip()
        if phrase:
            phrases.append(phrase)
    return phrases


@dataclass(frozen=True)
class CheckSet:
    """A task's checks, loaded (see the module docstring)."""

    min_chars: int | None = None
    max_chars: int | None = None
    min_words: int | None = None
    max_words: int | None = None
    banned: tuple[str, ...] = ()
    schema: bool = True
    facts: bool = False
    facts_rounding: bool = True
    on_fail: OnFail = "flag"
    max_retries: int = 1

    @classmethod
    def from_spec(cls, spec: ChecksSpec, file_phrases: list[str] | None = None) -> CheckSet:
        """The loaded form of ``spec``; ``file_phrases`` are those of its ``banned_file``."""
        phrases = tuple(dict.fromkeys([*spec.banned, *(file_phrases or [])]))
        return cls(
            min_chars=spec.min_chars,
            max_chars=spec.max_chars,
            min_words=spec.min_words,
            max_words=spec.max_words,
            banned=phrases,
            schema=spec.schema_,
            facts=spec.facts,
            facts_rounding=spec.facts_rounding,
            on_fail=spec.on_fail,
            max_retries=spec.max_retries,
        )

    @property
    def retries(self) -> int:
        """How many follow-ups a failed output gets (0 with ``on_fail = "flag"``)."""
        return self.max_retries if self.on_fail == "retry" else 0

    @cached_property
    def banned_pattern(self) -> re.Pattern[str] | None:
        """One case-insensitive pattern for every banned phrase, as whole words."""
        if not self.banned:
            return None
        parts = [r"\s+".join(map(re.escape, p.split())) for p in self.banned]
        edge = [
            (r"\b" if p[0].isalnum() else "", r"\b" if p[-1].isalnum() else "") for p in self.banned
        ]
        alternatives = "|".join(f"{a}{part}{b}" for part, (a, b) in zip(parts, edge, strict=True))
        return re.compile(f"(?:{alternatives})", re.IGNORECASE)

    @cached_property
    def banned_lower(self) -> tuple[str, ...]:
        """Each banned phrase in lower case, single-spaced: a text containing none of them
        cannot match, and substring tests are far cheaper than the pattern."""
        return tuple({" ".join(p.lower().split()) for p in self.banned})

    def definition(self) -> dict[str, Any]:
        """Every setting, for the profile's version hash."""
        return {
            "min_chars": self.min_chars,
            "max_chars": self.max_chars,
            "min_words": self.min_words,
            "max_words": self.max_words,
            "banned": list(self.banned),
            "schema": self.schema,
            "facts": self.facts,
            "facts_rounding": self.facts_rounding,
            "on_fail": self.on_fail,
            "max_retries": self.max_retries,
        }
