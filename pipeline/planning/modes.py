"""How a run sends its requests: realtime, flex or the Batch API, and how ``auto`` picks one.

Pure functions over values (profiles, prices, plans); no I/O.

- ``realtime``: the standard tier, as fast as the rate limit allows.
- ``flex``: ``service_tier: "flex"`` on every request of a model that has a flex price
  (batch rates with prompt caching; slower, sometimes unavailable; ``client/flex.py``).
- ``batch``: the Batch API, batch rates, results within a 24 h window (``pipeline/batchmode``).
- ``auto``: per model, the cheapest of the three that meets the deadline, from the forecast of
  the planned requests (the dry run shows every mode's figures and the choice).

Time forecasts are deliberately simple: realtime takes ``requests / planned rate``; flex the
same times ``flex_slowdown`` (longer answers at the same concurrency, and 429 back-offs);
batch is counted at its whole window (OpenAI promises 24 h, not less).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, get_args

from pipeline.errors import PricingError
from pipeline.money import PriceTable, Tier, Usage, cost_usd
from pipeline.planning.costs import OutputHistory, expected_usage
from pipeline.planning.planner import Plan
from pipeline.prompts import Profile

Mode = Literal["realtime", "flex", "batch"]
RunMode = Literal["realtime", "flex", "batch", "auto"]
MODES: tuple[Mode, ...] = get_args(Mode)
RUN_MODES: tuple[RunMode, ...] = get_args(RunMode)
BATCH_WINDOW_H = 24.0
_TIERS: dict[Mode, Tier] = {"realtime": "standard", "flex": "flex", "batch": "batch"}


def tier_of_mode(mode: Mode) -> Tier:
    """The price tier requests sent in ``mode`` are billed at."""
    return _TIERS[mode]


def offers(prices: PriceTable, model: str, mode: Mode) -> bool:
    """True when ``model`` has a price for ``mode``'s tier (flex and batch are not universal)."""
    try:
        prices.price(model, tier_of_mode(mode))
    except PricingError:
        return False
    return True


def for_mode(profiles: Mapping[str, Profile], prices: PriceTable, mode: str) -> dict[str, Profile]:
    """The profiles as a run in ``mode`` sends them.

    ``flex`` sets ``service_tier = "flex"`` on profiles whose model has a flex price (the
    others stay as they are); ``batch`` leaves ``service_tier`` out (the Batch API bills its
    own tier); ``realtime`` and ``auto`` change nothing (a profile may ask for flex itself).
    """
    if mode == "flex":
        return {
            task: dataclasses.replace(p, service_tier="flex")
            if offers(prices, p.model, "flex")
            else p
            for task, p in profiles.items()
        }
    if mode == "batch":
        return {task: dataclasses.replace(p, service_tier=None) for task, p in profiles.items()}
    return dict(profiles)


@dataclass(frozen=True)
class ModelLoad:
    """What the planned requests of one model add up to (expected, before sending)."""

    model: str
    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: ModelLoad) -> ModelLoad:
        return ModelLoad(
            self.model,
            self.requests + other.requests,
            self.prompt_tokens + other.prompt_tokens,
            self.cached_tokens + other.cached_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    @property
    def usage(self) -> Usage:
        """The expected usage (output guessed as in ``planning.forecast``)."""
        return Usage(
            self.prompt_tokens,
            self.cached_tokens,
            self.output_tokens,
            cache_write_tokens=self.cache_write_tokens,
        )


def loads_of(
    plan: Plan, *, output_ratio: float = 0.5, history: OutputHistory | None = None
) -> dict[str, ModelLoad]:
    """Per model: requests, prompt and expected cached tokens, and expected output
    (``planning.expected_usage``)."""
    loads: dict[str, ModelLoad] = {}
    for planned in plan.requests:
        request = planned.request
        usage = expected_usage(planned, output_ratio, history)
        one = ModelLoad(
            request.model,
            1,
            usage.input_tokens,
            usage.cached_tokens,
            usage.output_tokens,
            usage.cache_write_tokens,
        )
        previous = loads.get(request.model)
        loads[request.model] = one if previous is None else previous + one
    return loads


def merge_loads(*parts: Mapping[str, ModelLoad]) -> dict[str, ModelLoad]:
    """Add per-model loads of several chunks."""
    total: dict[str, ModelLoad] = {}
    for part in parts:
        for model, load in part.items():
            total[model] = total[model] + load if model in total else load
    return total


@dataclass(frozen=True)
class ModeForecast:
    """One mode's expected cost and duration for one model's requests."""

    mode: Mode
    available: bool
    cost_usd: Decimal
    hours: float
    meets_deadline: bool

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "mode": self.mode,
            "available": self.available,
            "cost_usd": str(self.cost_usd),
            "hours": round(self.hours, 3),
            "meets_deadline": self.meets_deadline,
        }


@dataclass(frozen=True)
class ModeChoice:
    """The mode picked for one model, the forecasts it was picked from, and why."""

    model: str
    mode: Mode
    forecasts: tuple[ModeForecast, ...]
    reason: str

    def forecast(self, mode: Mode) -> ModeForecast:
        """The forecast of ``mode``."""
        return next(f for f in self.forecasts if f.mode == mode)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "model": self.model,
            "chosen": self.mode,
            "reason": self.reason,
            "forecasts": {f.mode: f.as_dict() for f in self.forecasts},
        }


def forecast_modes(
    load: ModelLoad,
    prices: PriceTable,
    *,
    rate_rpm: float,
    deadline_h: float,
    flex_slowdown: float = 2.5,
    on: dt.date | None = None,
) -> tuple[ModeForecast, ...]:
    """Cost and hours of ``load`` in each mode (unavailable modes cost nothing, meet nothing).

    ``rate_rpm`` is the planned send rate of this model in realtime.
    """
    if rate_rpm <= 0:
        raise ValueError(f"rate_rpm must be > 0, got {rate_rpm}")
    realtime_h = load.requests / rate_rpm / 60.0
    hours: dict[Mode, float] = {
        "realtime": realtime_h,
        "flex": realtime_h * flex_slowdown,
        "batch": BATCH_WINDOW_H,
    }
    out = []
    for mode in MODES:
        available = offers(prices, load.model, mode)
        cost = (
            cost_usd(load.usage, prices.price(load.model, tier_of_mode(mode), on))
            if available
            else Decimal(0)
        )
        h = hours[mode]
        out.append(ModeForecast(mode, available, cost, h, available and h <= deadline_h))
    return tuple(out)


def choose(model: str, forecasts: Iterable[ModeForecast], deadline_h: float) -> ModeChoice:
    """The cheapest available mode that meets ``deadline_h``; the fastest when none does.

    Ties go to the faster mode (realtime before flex before batch).
    """
    options = tuple(forecasts)
    meeting = [f for f in options if f.meets_deadline]
    if meeting:
        best = min(meeting, key=lambda f: (f.cost_usd, f.hours))
        reason = f"cheapest mode done within {deadline_h:g} h"
    else:
        available = [f for f in options if f.available] or list(options)
        best = min(available, key=lambda f: f.hours)
        reason = f"no mode is done within {deadline_h:g} h: the fastest"
    return ModeChoice(model, best.mode, options, reason)


def choose_modes(
    loads: Mapping[str, ModelLoad],
    prices: PriceTable,
    *,
    rates_rpm: Mapping[str, float],
    deadline_h: float,
    flex_slowdown: float = 2.5,
    forced: Mode | None = None,
) -> dict[str, ModeChoice]:
    """Per model: every mode's forecast and the choice (``forced`` when the run names a mode).

    A forced mode the model does not offer (flex without a flex price) is sent as realtime,
    as a flex run does.
    """
    choices = {}
    for model, load in sorted(loads.items()):
        forecasts = forecast_modes(
            load,
            prices,
            rate_rpm=rates_rpm[model],
            deadline_h=deadline_h,
            flex_slowdown=flex_slowdown,
        )
        if forced is None:
            choices[model] = choose(model, forecasts, deadline_h)
        else:
            offered = offers(prices, model, forced)
            mode: Mode = forced if offered else "realtime"
            why = "asked for" if offered else f"{forced} not offered for {model}: realtime"
            choices[model] = ModeChoice(model, mode, forecasts, why)
    return choices


def tasks_by_mode(
    profiles: Mapping[str, Profile], choices: Mapping[str, ModeChoice]
) -> dict[Mode, tuple[str, ...]]:
    """Which tasks each mode runs, from the per-model choices (tasks of unplanned models are
    left out: they have no queued jobs)."""
    out: dict[Mode, list[str]] = {}
    for task, profile in sorted(profiles.items()):
        choice = choices.get(profile.model)
        if choice is not None:
            out.setdefault(choice.mode, []).append(task)
    return {mode: tuple(tasks) for mode, tasks in out.items()}
