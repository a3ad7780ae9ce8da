"""``contentgen enqueue``: put articles in the queue, with progress on big files."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from pipeline.cli.common import (
    JSON_OPTION,
    database_errors,
    err_console,
    handle_errors,
    open_db,
    print_json,
    say,
    split_tasks,
    validate_task_names,
)
from pipeline.db import jobs, queue, record_versions
from pipeline.errors import ConfigError, InputError
from pipeline.intake import DEFAULT_MAX_BODY_CHARS, Format, Rejection, read_chunks
from pipeline.prompts import Profile, load_profiles
from pipeline.run import version_rows
from pipeline.settings import get_settings

_PLAIN_PROGRESS_BYTES = 5_000_000  # below this a file goes by too fast to need progress lines


def with_parents(tasks: Sequence[str], profiles: Mapping[str, Profile]) -> list[str]:
    """``tasks`` plus every task they follow (a chained task is useless without its parent)."""
    result = list(tasks)
    for task in tasks:
        parent = profiles[task].follows
        while parent is not None and parent not in result:
            result.insert(0, parent)
            parent = profiles[parent].follows
    return result


def check_tasks(requested: Sequence[str], known: Sequence[str], where: Path) -> None:
    """Raise one error line when no task is given or a task is unknown (listing the known)."""
    if not requested:
        raise ConfigError(f"no task given: choose from {', '.join(sorted(known))}")
    validate_task_names(requested, known, str(where))


class _Progress:
    """A rich bar on a terminal, plain lines every 10% otherwise (only for big files)."""

    def __init__(self, path: Path, size: int, quiet: bool) -> None:
        self.path, self.size, self.rows, self._next = path, size, 0, 10
        self.bar: Progress | None = None
        self.plain = not quiet and not err_console.is_terminal and size >= _PLAIN_PROGRESS_BYTES
        if not quiet and err_console.is_terminal:
            self.bar = Progress(
                TextColumn("enqueue"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[rows]:,} rows"),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            self.task = self.bar.add_task("enqueue", total=size or None, rows=0)
            self.bar.start()

    def update(self, bytes_read: int, rows: int) -> None:
        self.rows += rows
        if self.bar is not None:
            self.bar.update(self.task, completed=bytes_read, rows=self.rows)
        elif self.plain and self.size and bytes_read * 100 >= self._next * self.size:
            percent = bytes_read * 100 // self.size
            say(f"{self.path}: {percent}% read, {self.rows:,} rows", err=True)
            self._next = percent // 10 * 10 + 10

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _check_file(path: Path) -> int:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    return path.stat().st_size


def enqueue_cmd(
    file: Path = typer.Argument(
        ...,
        help="JSONL or CSV file with the fields id, title, body and optionally section, url, "
        "published_at (ISO 8601), metadata (a JSON object).",
        metavar="FILE",
        show_default=False,
    ),
    tasks: str = typer.Option(
        ..., "--tasks", "-t", help="Comma-separated tasks from profiles.toml, e.g. summary,headline"
    ),
    batch: str | None = typer.Option(
        None, "--batch", "-b", help="Label the jobs (ad-hoc runs and counts can select by it)."
    ),
    priority: int = typer.Option(0, "--priority", help="Higher priorities are claimed first."),
    fmt: str | None = typer.Option(
        None, "--format", help="jsonl or csv (default: from the file name or content)."
    ),
    max_body_chars: int = typer.Option(
        DEFAULT_MAX_BODY_CHARS,
        "--max-body-chars",
        min=1,
        envvar="CONTENTGEN_MAX_BODY_CHARS",
        help="Rows with a longer body are rejected.",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Add the articles of FILE to the database and queue a job per article and task.

    Enqueueing the same file again changes nothing.
    An article whose title, body or section changed has its jobs re-queued.
    A bad row is reported as FILE:LINE: reason and skipped; the valid rows
    are kept, and the exit code is 1 when any row was rejected.

    Example: `contentgen enqueue samples/articles.jsonl -t summary,headline --batch demo`
    """
    settings = get_settings()
    if fmt not in (None, "jsonl", "csv"):
        raise InputError(f"--format must be jsonl or csv, not {fmt!r}")
    if batch is not None and not 0 < len(batch) <= queue.MAX_BATCH_LABEL:
        raise InputError(f"--batch must have 1 to {queue.MAX_BATCH_LABEL} characters")
    size = _check_file(file)
    task_list = split_tasks(tasks)
    profiles_file = settings.config_dir / "profiles.toml"
    profiles = load_profiles(settings.config_dir)
    check_tasks(task_list, list(profiles), profiles_file)
    task_list = with_parents(task_list, profiles)
    # Every chained task starts waiting, named or not: a corrected article re-queues all of
    # its jobs, and a follower must wait for its parent's new answer.
    follows = {t: p.follows for t, p in profiles.items() if p.follows}
    start_states = {task: "waiting" for task in follows}
    engine, sessions = open_db(settings)
    total, rows = queue.EnqueueResult(), 0
    rejections: list[Rejection] = []
    progress = _Progress(file, size, quiet=json_out)
    try:
        with sessions() as session, database_errors():
            record_versions(session, version_rows({t: profiles[t] for t in task_list}))
            chunks = read_chunks(file, max_body_chars=max_body_chars, fmt=cast(Format | None, fmt))
            for chunk in chunks:
                for rejection in chunk.rejections:
                    sys.stderr.write(f"{rejection}\n")
                rejections.extend(chunk.rejections)
                if chunk.articles:
                    total += queue.enqueue(
                        session,
                        chunk.articles,
                        task_list,
                        batch_label=batch,
                        priority=priority,
                        start_states=start_states,
                    )
                rows += chunk.rows
                progress.update(chunk.bytes_read, chunk.rows)
            if follows:
                jobs.release_ready_followers(session, follows)
    finally:
        progress.close()
        engine.dispose()
    _report_enqueue(file, rows, total, rejections, json_out)
    if rejections:
        raise typer.Exit(1)


def _report_enqueue(
    file: Path,
    rows: int,
    total: queue.EnqueueResult,
    rejections: list[Rejection],
    json_out: bool,
) -> None:
    if json_out:
        print_json(
            {
                "file": str(file),
                "rows": rows,
                **total.as_dict(),
                "rejected": len(rejections),
                "rejections": [{"line": r.line, "reason": r.reason} for r in rejections],
            }
        )
        return
    say(
        f"{file}: {rows:,} rows; jobs: {total.accepted:,} accepted, {total.unchanged:,} "
        f"unchanged, {total.requeued:,} re-queued; {len(rejections):,} rows rejected "
        f"(articles: {total.articles_new:,} new, {total.articles_updated:,} updated)"
    )
    if rejections:
        say(
            f"{len(rejections):,} rows were rejected (listed above); the valid rows were kept",
            err=True,
        )


def register(app: typer.Typer) -> None:
    """Add this module's command to ``app``."""
    app.command("enqueue")(handle_errors(enqueue_cmd))
