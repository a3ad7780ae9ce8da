"""The live progress figures: current rate, ETA, projection, retries, stopping, plain lines."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import Engine

from pipeline.cli.display import RETRY_LOGGER, counting_retries, panel, progress_display, throttled
from pipeline.client.retry import RetryPolicy
from pipeline.client.wiring import build_client_stack
from pipeline.db.models import Generation
from pipeline.errors import RetryableAPIError
from pipeline.run.progress import Progress, duration_text
from pipeline.run.runner import RunOptions, run_batch_async
from tests.engine_support import engine_settings, fast_retry, seed, simulator


def _result(cost: str = "0.001") -> Generation:
    return Generation(
        status="completed", input_tokens=1000, cached_tokens=250, cost_usd=Decimal(cost)
    )


def _finish_at(progress: Progress, times: list[float], cost: str = "0.001") -> None:
    for t in times:
        progress.finished(_result(cost), True, now=t)


def test_rate_is_over_the_last_minute_not_the_run() -> None:
    """After a speed-up the rate is the last minute's (120/min), not the lifetime 90/min."""
    p = Progress(started_at=0.0, queued_at_start=1000)
    _finish_at(p, [float(t) for t in range(1, 61)])  # 1 a second for a minute
    _finish_at(p, [60 + i / 2 for i in range(1, 121)])  # then 2 a second
    rate = p.rate_per_min(now=120.0)
    assert rate == pytest.approx(120.0, rel=0.03)
    assert p.finished_count / 120.0 * 60 == pytest.approx(90.0)


def test_a_stall_brings_the_rate_down_and_the_eta_with_it() -> None:
    """Nothing finishing for a minute: the rate falls to zero and the ETA is unknown."""
    p = Progress(started_at=0.0, queued_at_start=500)
    _finish_at(p, [float(t) for t in range(1, 61)])
    assert p.rate_per_min(now=61.0) == pytest.approx(60.0, rel=0.05)
    view = p.view(now=200.0)
    assert view.rate_per_min == 0.0
    assert view.eta_s is None
    assert "ETA -" in view.line()


def test_eta_and_projection_follow_the_current_rate_and_mean_cost() -> None:
    """300 to do, 180 done at 120/min costing $0.18: ETA 1 min, $0.30 projected, budget left."""
    p = Progress(started_at=0.0, queued_at_start=300, budget_usd=Decimal("0.50"))
    p.claimed = 200
    _finish_at(p, [60 + i / 3 for i in range(1, 181)])  # 180 in the minute 60-120
    view = p.view(now=120.0)
    assert view.total == 300
    assert view.percent == pytest.approx(60.0)
    assert view.rate_per_min == pytest.approx(180.0, rel=0.05)
    assert view.eta_s == pytest.approx(40.0, rel=0.05)
    assert view.projected_usd == Decimal("0.300")
    assert view.budget_left_usd == Decimal("0.320")
    assert view.cached_ratio == pytest.approx(0.25)
    line = view.line()
    assert "done 180/300 (60.0%)" in line
    assert "projected $0.3000" in line
    assert "budget left $0.3200" in line


def test_total_grows_with_jobs_claimed_beyond_the_start_count() -> None:
    """Followers queued during the run count once claimed: the percent never passes 100."""
    p = Progress(started_at=0.0, queued_at_start=2)
    p.claimed = 4
    _finish_at(p, [1.0, 2.0, 3.0])
    view = p.view(now=4.0)
    assert (view.total, view.finished) == (4, 3)
    assert view.percent == pytest.approx(75.0)


def test_stopping_and_retries_show_in_the_line_and_the_panel() -> None:
    """After Ctrl-C the display says it is finishing the in-flight requests; retries count."""
    p = Progress(started_at=0.0, queued_at_start=10, stopping="signal SIGINT", retries=3)
    p.in_flight = 4
    view = p.view(now=5.0)
    assert view.line().startswith(
        "stopping… finishing 4 in flight; Ctrl-C again to abort | done 0/10 (0.0%)"
    )
    assert "retries 3" in view.line()
    console = Console(file=io.StringIO(), width=120, record=True)
    console.print(panel(view))
    text = console.export_text()
    assert "finishing 4 in flight; Ctrl-C again to abort" in text
    assert re.search(r"failed / retries\s+0 / 3", text)


def test_durations_read_as_hours_minutes_seconds() -> None:
    """ETA text: seconds, then minutes and seconds, then hours and minutes."""
    assert [duration_text(s) for s in (None, 12, 245, 3720)] == ["-", "12s", "4m05s", "1h02m"]


def test_throttled_display_shows_a_few_times_a_second_at_most() -> None:
    """Reported 100 times in a second, the panel is drawn 4 times; a stop shows at once."""
    now = [0.0]
    shown: list[float] = []
    show = throttled(lambda _p: shown.append(now[0]), 0.25, clock=lambda: now[0])
    p = Progress()
    for i in range(100):
        now[0] = i / 100
        show(p)
    assert shown == [0.0, 0.25, 0.5, 0.75]
    p.stopping = "signal SIGINT"
    show(p)
    assert shown[-1] == 0.99


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_retries_are_counted_and_kept_off_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the panel on, a real retry's WARNING is counted, not printed on the terminal; a
    configured handler (a log file) still gets it, and off a terminal it is printed."""
    terminal = io.StringIO()
    monkeypatch.setattr(logging, "lastResort", logging.StreamHandler(terminal))
    monkeypatch.setattr(logging.root, "handlers", [])  # as in `contentgen run`: none configured
    calls = 0

    async def attempt(_n: int) -> str:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise RetryableAPIError("server busy")
        return "ok"

    async def no_sleep(_s: float) -> None:
        await asyncio.sleep(0)

    policy = RetryPolicy(sleep=no_sleep)
    with counting_retries(quiet_console=True) as tally:
        assert asyncio.run(policy.run(attempt, job_id=7)).value == "ok"
    assert tally.count == 1
    assert "retry job=7" not in terminal.getvalue()

    log_file = _Records()
    monkeypatch.setattr(logging.root, "handlers", [log_file])
    with counting_retries(quiet_console=True) as tally:
        asyncio.run(policy.run(attempt, job_id=8))
    assert tally.count == 1
    assert any(m.startswith("retry job=8") for m in log_file.messages)

    monkeypatch.setattr(logging.root, "handlers", [])
    with counting_retries(quiet_console=False) as tally:
        asyncio.run(policy.run(attempt, job_id=9))
    assert tally.count == 1
    assert "retry job=9" in terminal.getvalue()
    retry_logger = logging.getLogger(RETRY_LOGGER)
    assert not retry_logger.filters and not retry_logger.handlers


def test_a_real_run_off_a_terminal_prints_plain_progress_lines(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A run through the simulator, stdout not a terminal: plain lines with percent, ETA,
    projected cost and the retry count, no ANSI codes."""
    seed(engine, ["summary", "headline"], n=3)
    out = io.StringIO()
    console = Console(file=out, width=400, force_terminal=False, no_color=True)
    with simulator() as sim:
        sim.script("429:50")
        settings = engine_settings(database_url, sim, tmp_path)
        stack = build_client_stack(settings, retry=fast_retry())
        with progress_display(out=console, tty=False) as on_progress:
            summary = asyncio.run(
                run_batch_async(
                    settings,
                    RunOptions(budget_usd=Decimal(5)),
                    stack=stack,
                    progress=on_progress,
                )
            )
    assert summary.totals.succeeded == 6
    lines = out.getvalue().splitlines()
    assert lines, "no progress line printed"
    assert "\x1b[" not in out.getvalue()
    last = lines[-1]
    assert "done 6/6 (100.0%)" in last
    assert "ETA 0s" in last
    assert f"projected ${summary.totals.cost_usd:,.6f}" in last
    assert "budget left $" in last
    assert "retries 1" in last
    assert re.search(r"cached \d+\.\d%", last)


def test_projection_prices_the_jobs_left_by_their_forecast_not_a_straight_line() -> None:
    """The first answers are cold primers at twice the mean: a straight line would project
    $2.00 for a $1.10 run; the forecast of the jobs left, corrected by what answers so far
    cost against theirs, projects it."""
    p = Progress(started_at=0.0, queued_at_start=100)
    # Planned: 10 primers forecast at $0.02, 90 warm requests at $0.01 ($1.10 in all).
    costs = {(job, False): Decimal("0.02") if job < 10 else Decimal("0.01") for job in range(100)}
    p.planned(costs, estimated_tokens=100 * 2000)
    for job in range(10):  # the primers come back, costing what their forecast said
        p.settled(job, Decimal("0.02"), prewarm=False)
        p.finished(_result("0.02"), True, now=1.0 + job / 10)
    view = p.view(now=2.0)
    assert view.projected_usd == Decimal("1.10")
    assert p.cost_usd / 10 * 100 == Decimal("2.00")  # what the straight line would say


def test_eta_counts_what_the_limiter_still_has_to_let_through() -> None:
    """Fast first answers out of a full bucket do not make a short ETA: the jobs not sent yet
    need their tokens at the limiter's steady rate beyond what its bucket holds now."""
    p = Progress(started_at=0.0, queued_at_start=1000)
    p.planned({(job, False): Decimal("0.001") for job in range(1000)}, 1000 * 2000)
    p.started_requests = 200
    _finish_at(p, [0.5 + i / 200 for i in range(100)])  # 100 in half a second
    # 800 not sent x 2,000 tokens = 1.6M, 0.6M in the bucket: 1M at 1M a minute.
    p.limiter = {
        "models": {
            "m": {"tpm_limit": 1_000_000, "tokens_available": 600_000.0, "token_factor": 1.0}
        }
    }
    eta = p.view(now=1.0).eta_s
    assert eta is not None and eta == pytest.approx(60.0, rel=0.02)
