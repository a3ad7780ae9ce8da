"""Shared contexts of a prompt: a style guide for everyone, a brief per article section.

``ContextSpec`` is how ``profiles.toml`` declares one; ``Context`` is the loaded text(s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ContextSpec(BaseModel):
    """A shared document: one file for everyone, or one file per article section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path | None = None
    by_section: str | None = Field(
        default=None, description="Path pattern with {section}, e.g. contexts/sections/{section}.md"
    )
    fallback: Path | None = Field(default=None, description="Used when a section has no file.")

    @model_validator(mode="after")
    def _one_source(self) -> ContextSpec:
        if (self.file is None) == (self.by_section is None):
            raise ValueError("set exactly one of 'file' or 'by_section'")
        if self.by_section is not None and "{section}" not in self.by_section:
            raise ValueError("'by_section' must contain {section}")
        return self


@dataclass(frozen=True)
class Context:
    """A loaded shared document: the same text for all, or a text per section."""

    name: str
    text: str | None = None
    by_section: Mapping[str, str] = field(default_factory=dict)
    fallback: str | None = None

    def for_section(self, section: str | None) -> str | None:
        """The text an article of ``section`` gets (None when nothing applies)."""
        if self.text is not None:
            return self.text
        if section is not None and section in self.by_section:
            return self.by_section[section]
        return self.fallback
