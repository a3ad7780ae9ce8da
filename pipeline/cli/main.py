"""The ``contentgen`` command: a thin layer over the library (each module registers commands)."""

from __future__ import annotations

import typer

from pipeline.cli import (
    batches_cmd,
    cache_cmd,
    db_cmd,
    demo_cmd,
    jobs_cmd,
    prices_cmd,
    profiles_cmd,
    report_cmd,
    run_cmd,
    serve_cmd,
    simulate_cmd,
)

app = typer.Typer(
    name="contentgen",
    help=(
        "ContentGen: batch content generation with the OpenAI Responses API.\n\n"
        "Typical night: `contentgen enqueue articles.jsonl --tasks summary,headline`, then "
        "`contentgen run`. Try it offline with `contentgen demo`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (
    db_cmd,
    jobs_cmd,
    run_cmd,
    batches_cmd,
    demo_cmd,
    simulate_cmd,
    prices_cmd,
    profiles_cmd,
    report_cmd,
    cache_cmd,
    serve_cmd,
):
    module.register(app)
