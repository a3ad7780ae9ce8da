"""The run: claim -> render -> plan -> call -> record, for one runner over the queue.

Start reading at ``runner`` (``run_batch``). Around it:

- ``context``: what the parts of a run share, and the stop switch; ``feed``: claim, render
  and plan chunks; ``send``: one request to the API, judged and journalled; ``execution``:
  the dispatcher that sends in plan order, each request after its primer;
- ``recording``: an outcome as a generation row, its checks and provenance; ``checking``: a
  check's retry after the cached prefix; ``recorder``: results committed in groups
  on ``dbthread``, the run's database thread; ``journal`` and ``recovery``: paid results kept
  on disk until recorded, and recorded by the next run after a crash; ``prewarming``: what a
  prewarm cost;
- ``config``: what a run reads before it starts; ``rendering``: a claimed chunk rendered,
  chained jobs after their parents; ``progress``: live counters; ``summary``: the options
  and the outcome; ``dryrun``: the plan and forecast without sending, and whether a run
  paces itself (``choose_pace``); ``forecastview``: the forecast as Markdown (the flows'
  artifact); ``learning``: what earlier runs taught the forecast.
"""

from __future__ import annotations

from pipeline.run.config import (
    Config,
    cache_policies,
    expects_followers,
    load_config,
    version_rows,
)
from pipeline.run.dryrun import DryRunReport, PaceChoice, choose_pace, dry_run
from pipeline.run.feed import DEFAULT_PLANNED_RPM
from pipeline.run.forecastview import forecast_markdown
from pipeline.run.progress import (
    Progress,
    ProgressView,
    duration_text,
    money_text,
    rate_text,
    stopping_text,
    tpm_text,
)
from pipeline.run.recording import Verdict, failure, judge
from pipeline.run.rendering import render_jobs
from pipeline.run.runner import Runner, run_batch, run_batch_async
from pipeline.run.summary import RunOptions, RunSummary

__all__ = [
    "DEFAULT_PLANNED_RPM",
    "Config",
    "DryRunReport",
    "PaceChoice",
    "Progress",
    "ProgressView",
    "RunOptions",
    "RunSummary",
    "Runner",
    "Verdict",
    "cache_policies",
    "choose_pace",
    "dry_run",
    "duration_text",
    "expects_followers",
    "failure",
    "forecast_markdown",
    "judge",
    "load_config",
    "money_text",
    "rate_text",
    "render_jobs",
    "run_batch",
    "run_batch_async",
    "stopping_text",
    "tpm_text",
    "version_rows",
]
