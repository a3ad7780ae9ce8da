"""``contentgen run --dry-run``: the plan and its forecast for the queued jobs; sends nothing.

Reads queued jobs in claim-sized pages without claiming them, renders and plans them exactly
as a run would (same layouts, same buckets), and prices the plan with and without caching.
It also forecasts, per model, the cost and duration of each mode (realtime, flex, batch) and
shows the mode the run takes: the one asked for, or with ``auto`` the cheapest that meets the
deadline (``pipeline.planning.modes``). Chained tasks (a grader is one) wait for their parent's
answers, so they are priced apart, after the queued jobs of their parent task, whether they
are on or off (``follower_forecast``).

Pacing (``choose_pace``): sent at full speed, a run's first minute carries the limiter's full
bucket and a minute's refill, and every cache key that minute needs is one cold primer
(``planning.keys``); sent at the slowest rate that still meets the deadline, it needs fewer
keys. ``choose_pace`` plans the queue both ways and compares cost and duration. ``--pace``
(``RunOptions.pace=True``, or ``pace_h`` given) paces whatever it saves; ``--no-pace`` never
paces; otherwise a scheduled run (kind ``nightly``) is paced when the deadline allows it and the
forecast saving is at least ``Settings.pace_min_saving`` of the full-speed cost, and an
ad-hoc run goes at full speed (the dry run says what pacing would take and save).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from pipeline.db import (
    peek_queued,
)
from pipeline.limits import paced_rpm
from pipeline.money import PromptCachePolicy
from pipeline.planning import (
    Forecast,
    KeyBook,
    ModeChoice,
    ModelLoad,
    PlannedRequest,
    PrefixAdvice,
    SendSchedule,
    choose_layouts,
    choose_modes,
    follower_forecast,
    for_mode,
    forecast,
    forecast_by_task,
    loads_of,
    merge_loads,
    plan,
    prefix_advice,
)
from pipeline.prompts import Layout, render
from pipeline.run.config import Config, load_config, runnable_tasks
from pipeline.run.learning import Learnt, queued_jobs
from pipeline.run.summary import RunOptions
from pipeline.settings import Settings

DEFAULT_PLANNED_RPM = 600.0


@dataclass
class DryRunReport:
    """What a run over the queue would send and is expected to cost."""

    jobs: int = 0
    by_task: Counter[str] = field(default_factory=Counter)
    layouts: dict[str, Layout] = field(default_factory=dict)
    groups: int = 0
    buckets: int = 0
    primers: int = 0
    prewarms: int = 0
    trimmed: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    uncached_cost_usd: Decimal = Decimal(0)
    mode: str = "realtime"
    deadline_h: float = 0.0
    loads: dict[str, ModelLoad] = field(default_factory=dict)
    mode_choices: dict[str, ModeChoice] = field(default_factory=dict)
    advice: list[PrefixAdvice] = field(default_factory=list)
    regimes: dict[str, str] = field(default_factory=dict)
    paced_rpm: float | None = None
    # Chained tasks (graders among them) after the queued jobs of their parent task: not in
    # the figures above (their jobs wait for the parent's answer), priced here.
    followers: dict[str, FollowerCost] = field(default_factory=dict)
    pacing: str = ""
    # Tokens as the limiter counts them before sending (prompt + output cap), for durations.
    estimated_tokens: int = 0
    # The figures above per task (``forecast_by_task``): what the forecast tables show.
    task_forecasts: dict[str, Forecast] = field(default_factory=dict)

    def add(self, fc: Forecast) -> None:
        """Fold one chunk's forecast in."""
        self.input_tokens += fc.input_tokens
        self.cached_tokens += fc.cached_tokens
        self.cache_write_tokens += fc.cache_write_tokens
        self.prewarms += fc.prewarms
        self.output_tokens += fc.output_tokens
        self.cost_usd += fc.cost_usd
        self.uncached_cost_usd += fc.uncached_cost_usd

    @property
    def cached_ratio(self) -> float:
        """Expected cached share of input tokens."""
        return self.cached_tokens / self.input_tokens if self.input_tokens else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "jobs": self.jobs,
            "by_task": dict(self.by_task),
            "layouts": dict(self.layouts),
            "groups": self.groups,
            "buckets": self.buckets,
            "primers": self.primers,
            "prewarms": self.prewarms,
            "trimmed_articles": self.trimmed,
            "cache_regimes": dict(self.regimes),
            "paced_rpm": self.paced_rpm,
            "pacing": self.pacing,
            "input_tokens": self.input_tokens,
            "expected_cached_tokens": self.cached_tokens,
            "expected_cached_ratio": round(self.cached_ratio, 4),
            "expected_cache_write_tokens": self.cache_write_tokens,
            "expected_output_tokens": self.output_tokens,
            "forecast_cost_usd": str(self.cost_usd),
            "forecast_uncached_cost_usd": str(self.uncached_cost_usd),
            "forecast_savings_usd": str(self.uncached_cost_usd - self.cost_usd),
            "mode": self.mode,
            "deadline_h": self.deadline_h,
            "modes": [choice.as_dict() for choice in self.mode_choices.values()],
            "short_prefixes": [a.as_dict() for a in self.advice],
            "followers": [f.as_dict() for f in self.followers.values()],
            "by_task_forecast": {
                task: {
                    "requests": f.requests,
                    "input_tokens": f.input_tokens,
                    "cached_tokens": f.cached_tokens,
                    "output_tokens": f.output_tokens,
                    "cost_usd": str(f.cost_usd),
                }
                for task, f in sorted(self.task_forecasts.items())
            },
        }

    def merge_advice(
        self, found: list[PrefixAdvice], policies: Mapping[str, PromptCachePolicy]
    ) -> None:
        """Add one chunk's short prefixes: the same prefix adds its requests, and the padding
        verdict is taken again with the run's whole count."""
        merged = {(a.model, a.label, a.shared_tokens): a for a in self.advice}
        for a in found:
            key = (a.model, a.label, a.shared_tokens)
            if key in merged:
                total = merged[key].requests + a.requests
                pays = policies[a.model].padding_pays(a.shared_tokens, total)
                merged[key] = replace(a, requests=total, padding_pays=pays)
            else:
                merged[key] = a
        self.advice = sorted(merged.values(), key=lambda a: (-a.requests, a.label))

    def advice_lines(self) -> dict[str, str]:
        """One readable line per shared prefix under its model's minimum."""
        return {f"short prefix {i + 1}": a.line() for i, a in enumerate(self.advice)}

    def follower_lines(self) -> dict[str, str]:
        """One readable line per chained task: what it would add after its parent."""
        return {
            f"{'grader' if f.grader else 'chained'} {f.task}": f.line()
            for f in self.followers.values()
        }

    def mode_lines(self) -> dict[str, str]:
        """One readable line per model: each mode's forecast and the mode chosen."""
        lines = {}
        for model, choice in self.mode_choices.items():
            figures = ", ".join(
                f"{f.mode} ${f.cost_usd:.4f} ({_duration(f.hours)})"
                if f.available
                else f"{f.mode} n/a"
                for f in choice.forecasts
            )
            lines[f"mode {model}"] = f"{choice.mode} ({choice.reason}): {figures}"
        return lines


@dataclass(frozen=True)
class FollowerCost:
    """The forecast of a chained task (a grader) after the queued jobs of its parent task."""

    task: str
    follows: str
    grader: bool
    enabled: bool
    forecast: Forecast

    def line(self) -> str:
        """``36 requests, $0.0123 (62% cached); a grader, off: enqueue --tasks ...``."""
        fc = self.forecast
        cached = fc.cached_tokens / fc.input_tokens if fc.input_tokens else 0.0
        text = f"{fc.requests:,} requests, ${fc.cost_usd:.4f} ({cached:.0%} cached)"
        kind = "a grader" if self.grader else "chained"
        if self.enabled:
            return f"{text}; {kind}, runs once its parent's answers are in"
        return f"{text}; {kind}, off: `enqueue --tasks {self.follows},{self.task}` turns it on"

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        fc = self.forecast
        return {
            "task": self.task,
            "follows": self.follows,
            "grader": self.grader,
            "enabled": self.enabled,
            "requests": fc.requests,
            "input_tokens": fc.input_tokens,
            "expected_cached_tokens": fc.cached_tokens,
            "expected_output_tokens": fc.output_tokens,
            "forecast_cost_usd": str(fc.cost_usd),
        }


def _duration(hours: float) -> str:
    """``0.004`` -> ``< 1 min``, ``0.5`` -> ``30 min``, ``24`` -> ``24.0 h``."""
    minutes = hours * 60
    if minutes < 1:
        return "< 1 min"
    return f"{minutes:.0f} min" if minutes < 90 else f"{hours:.1f} h"


def planned_rpm(settings: Settings, estimated_tokens: float) -> float:
    """The send rate a run will aim at: the RPM limit, or the TPM limit over request size."""
    rpm = float(settings.rpm_limit or DEFAULT_PLANNED_RPM)
    if settings.tpm_limit and estimated_tokens > 0:
        rpm = min(rpm, settings.tpm_limit / estimated_tokens)
    return rpm


def dry_run(settings: Settings, options: RunOptions) -> DryRunReport:
    """Plan and price the queued jobs a run with ``options`` would take, and say whether
    pacing it to the deadline would pay (``pacing.choose_pace``)."""
    config = load_config(settings)
    learnt = Learnt.read(settings, config)
    choice = choose_pace(settings, options, config=config, learnt=learnt, compare=True)
    report = plan_queue(settings, options, config, learnt, paced=choice.paced_rpm)
    report.pacing = choice.line()
    return report


def full_speed_s(settings: Settings, report: DryRunReport) -> float:
    """How long the planned jobs take at full speed: what the limits let through beyond the
    first minute's full buckets (at least a second)."""
    waits = [1.0]
    if settings.tpm_limit:
        waits.append((report.estimated_tokens - settings.tpm_limit) / settings.tpm_limit * 60)
    rpm = settings.rpm_limit or DEFAULT_PLANNED_RPM
    waits.append((report.jobs - rpm) / rpm * 60)
    return max(waits)


def _duration_s(seconds: float) -> str:
    """``30 s``, ``7 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def plan_queue(
    settings: Settings,
    options: RunOptions,
    config: Config,
    learnt: Learnt,
    *,
    paced: float | None = None,
) -> DryRunReport:
    """Plan and price the queued jobs as a run would: the same layouts, the same key book
    (at the ``paced`` rate, else at full speed with the first minute's burst)."""
    history = learnt.outputs
    report = DryRunReport(mode=options.mode, deadline_h=settings.deadline_h)
    report.regimes = {model: policy.regime for model, policy in config.policies.items()}
    report.paced_rpm = paced
    profiles = for_mode(config.profiles, config.prices, options.mode)
    sizes: dict[str, int] = {}
    chunk = options.chunk_size or settings.claim_chunk_for(
        options.concurrency or settings.concurrency
    )
    after: tuple[int, int] | None = None
    chained = {t: p for t, p in config.profiles.items() if p.follows is not None}
    parents: dict[str, list[PlannedRequest]] = {
        p.follows: [] for p in chained.values() if p.follows
    }
    warm: frozenset[str] = frozenset()
    layouts: dict[str, Layout] | None = None
    book: KeyBook | None = None
    buckets: dict[str, int] = {}
    remaining = options.limit
    while remaining is None or remaining > 0:
        n = chunk if remaining is None else min(chunk, remaining)
        with config.sessions() as session:
            jobs, after = peek_queued(
                session,
                n,
                tasks=runnable_tasks(options.tasks, config.profiles),
                batch_label=options.batch_label,
                after=after,
            )
        if not jobs:
            break
        if remaining is not None:
            remaining -= len(jobs)
        if layouts is None:
            layouts = choose_layouts(jobs, profiles, policies=config.policies)
            report.layouts = layouts
        requests = [render(job, profiles[job.task], layouts[job.task]) for job in jobs]
        report.merge_advice(prefix_advice(requests, config.policies), config.policies)
        for r in requests:
            sizes[r.model] = sizes.get(r.model, 0) + r.estimated_tokens
            report.estimated_tokens += r.estimated_tokens
        per_request = sum(r.estimated_tokens for r in requests) / len(requests)
        steady = paced or planned_rpm(settings, per_request)
        if book is None:
            book = KeyBook(
                SendSchedule(steady, 0.0 if paced else steady),
                ceilings={m: p.key_rpm for m, p in config.policies.items()},
                rates=learnt.key_rates,
            )
        chunk_plan = plan(
            requests,
            planned_rpm=steady,
            warm=warm,
            policies=config.policies,
            machines=settings.cache_machines,
            book=book,
        )
        warm = warm | chunk_plan.warmed
        report.jobs += len(jobs)
        report.by_task.update(job.task for job in jobs)
        buckets.update((g.key_prefix, g.buckets) for g in chunk_plan.groups)
        report.groups, report.buckets = len(buckets), sum(buckets.values())
        report.primers += sum(1 for p in chunk_plan.requests if p.is_primer and not p.prewarm)
        report.trimmed += sum(1 for r in requests if r.trimmed)
        report.add(forecast(chunk_plan, config.prices, history=history, bills=learnt.bills))
        tasks = forecast_by_task(chunk_plan, config.prices, history=history, bills=learnt.bills)
        for task, fc in tasks.items():
            known = report.task_forecasts.get(task)
            report.task_forecasts[task] = fc if known is None else known + fc
        for planned in chunk_plan.requests:
            if planned.request.task in parents:
                parents[planned.request.task].append(planned)
        report.loads = merge_loads(report.loads, loads_of(chunk_plan, history=history))
    for task, profile in chained.items():
        assert profile.follows is not None
        if parents[profile.follows]:
            report.followers[task] = FollowerCost(
                task,
                profile.follows,
                grader=profile.grader is not None,
                enabled=profile.enabled,
                forecast=follower_forecast(
                    parents[profile.follows],
                    profile,
                    config.prices,
                    config.policies[profile.model],
                    history=history,
                ),
            )
    rates = {m: planned_rpm(settings, sizes[m] / load.requests) for m, load in report.loads.items()}
    report.mode_choices = choose_modes(
        report.loads,
        config.prices,
        rates_rpm=rates,
        deadline_h=settings.deadline_h,
        flex_slowdown=settings.flex_slowdown,
        forced=None if options.mode == "auto" else options.mode,  # type: ignore[arg-type]
    )
    return report


SCHEDULED_KINDS = frozenset({"nightly"})


@dataclass(frozen=True)
class PaceChoice:
    """Full speed or paced, and the forecasts it was chosen on."""

    paced: bool
    reason: str
    rate_rpm: float | None = None
    full_s: float | None = None
    paced_s: float | None = None
    full_usd: Decimal | None = None
    paced_usd: Decimal | None = None

    @property
    def paced_rpm(self) -> float | None:
        """The send rate when paced, else None."""
        return self.rate_rpm if self.paced else None

    @property
    def saving_usd(self) -> Decimal | None:
        """What pacing saves on the forecast (None when not compared)."""
        if self.full_usd is None or self.paced_usd is None:
            return None
        return self.full_usd - self.paced_usd

    def line(self) -> str:
        """``paced: 7 min instead of 30 s, saves $0.0200 (nightly)`` and the like."""
        saving = self.saving_usd
        if saving is None or self.full_s is None or self.paced_s is None:
            return f"{'paced' if self.paced else 'full speed'} ({self.reason})"
        paced, full = _duration_s(self.paced_s), _duration_s(self.full_s)
        if self.paced:
            return f"paced: {paced} instead of {full}, saves ${saving:.4f} ({self.reason})"
        return (
            f"full speed: {full} ({self.reason}); paced it would take {paced} and save "
            f"${saving:.4f}"
        )


def choose_pace(
    settings: Settings,
    options: RunOptions,
    *,
    config: Config | None = None,
    learnt: Learnt | None = None,
    compare: bool = False,
) -> PaceChoice:
    """Full speed or paced for a run with ``options`` over the queue as it is now (see the
    module docstring); ``compare`` forecasts both ways even where the choice is plain (the
    dry run shows what pacing would take and save)."""
    config = config or load_config(settings)
    if options.pace is False:
        return PaceChoice(False, "--no-pace")
    forced = options.pace is True or (options.pace is None and options.pace_h is not None)
    if options.mode not in ("realtime", "flex"):
        return PaceChoice(False, f"{options.mode} mode")
    jobs = queued_jobs(settings, options, config)
    if not jobs:
        return PaceChoice(False, "nothing queued")
    deadline_h = options.pace_h or settings.deadline_h
    rate = paced_rpm(jobs, deadline_h)
    scheduled = options.kind in SCHEDULED_KINDS
    if forced and not compare:
        return PaceChoice(True, "--pace", rate_rpm=rate, paced_s=jobs / rate * 60.0)
    if not forced and not scheduled and not compare:
        return PaceChoice(False, "ad-hoc run")
    learnt = learnt or Learnt.read(settings, config)
    full = plan_queue(settings, options, config, learnt)
    full_s = full_speed_s(settings, full)
    if not forced and rate * 60 * deadline_h < jobs:
        return PaceChoice(False, "the deadline needs full speed", full_s=full_s)
    paced = plan_queue(settings, options, config, learnt, paced=rate)
    choice = PaceChoice(
        False,
        "",
        rate_rpm=rate,
        full_s=full_s,
        paced_s=jobs / rate * 60.0,
        full_usd=full.cost_usd,
        paced_usd=paced.cost_usd,
    )
    saving = choice.saving_usd or Decimal(0)
    if forced:
        return _with(choice, True, "--pace")
    if choice.paced_s is not None and choice.paced_s <= full_s:
        return _with(choice, False, "pacing is no slower than full speed")
    worth = saving > 0 and saving >= Decimal(str(settings.pace_min_saving)) * full.cost_usd
    if not scheduled:
        return _with(choice, False, "ad-hoc run; --pace to pace it")
    if not worth:
        return _with(choice, False, "nightly; the saving is too small to wait for")
    return _with(choice, True, f"nightly, deadline {deadline_h:g} h")


def _with(choice: PaceChoice, paced: bool, reason: str) -> PaceChoice:
    return PaceChoice(
        paced,
        reason,
        choice.rate_rpm,
        choice.full_s,
        choice.paced_s,
        choice.full_usd,
        choice.paced_usd,
    )
