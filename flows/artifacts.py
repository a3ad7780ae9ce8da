"""Where the flows publish their reports: Prefect artifacts (a list of records in tests)."""

from __future__ import annotations

from typing import Any, Protocol

from prefect.artifacts import create_markdown_artifact, create_table_artifact


class Publisher(Protocol):
    """Where a flow run's report goes."""

    def table(self, key: str, rows: list[dict[str, Any]], description: str) -> None:
        """Publish a table."""

    def markdown(self, key: str, text: str, description: str) -> None:
        """Publish a Markdown document."""


class ArtifactPublisher:
    """Publishes artifacts on the current flow run; keyed, so the UI keeps their versions."""

    def table(self, key: str, rows: list[dict[str, Any]], description: str) -> None:
        """A table artifact."""
        create_table_artifact(table=rows, key=key, description=description)

    def markdown(self, key: str, text: str, description: str) -> None:
        """A Markdown artifact."""
        create_markdown_artifact(markdown=text, key=key, description=description)
