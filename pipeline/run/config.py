"""What a run reads before it starts: profiles, prices, cache policies and the database.

``load_config`` refuses, before any request is sent, a model without a price or a prompt-cache
policy, a profile asking for flex where its model has no flex price, a model whose price only
takes effect after today (its responses could not be recorded), a prompt-cache lifetime the
model does not accept, and a ``max_output_tokens`` over what the model can write; each error
names the file and key.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import VersionRow, make_engine, queue, require_migrated, session_factory
from pipeline.errors import ConfigError, PricingError
from pipeline.money import (
    BudgetFile,
    PriceTable,
    PromptCachePolicy,
    Tier,
    base_model_name,
    load_budgets,
    load_pricing,
)
from pipeline.planning import lifetime_problem
from pipeline.prompts import Profile, load_profiles
from pipeline.settings import Settings


@dataclass
class Config:
    """Everything a run reads from config/ and the database, loaded once."""

    profiles: dict[str, Profile]
    prices: PriceTable
    sessions: sessionmaker[Session]
    policies: dict[str, PromptCachePolicy] = field(default_factory=dict)
    budgets: BudgetFile = field(default_factory=BudgetFile)


def cache_policies(
    profiles: dict[str, Profile], prices: PriceTable, where: str = "config/profiles.toml"
) -> dict[str, PromptCachePolicy]:
    """The prompt-cache policy of every profile's model; refuses a lifetime a model refuses.

    Raises ``PricingError`` naming the price file for a model without a policy, and
    ``ConfigError`` naming the profile for a ``prompt_cache_lifetime`` its model does not take.
    """
    policies = {p.model: prices.policy(p.model) for p in profiles.values()}
    for task, profile in profiles.items():
        policy = policies[profile.model]
        problem = lifetime_problem(profile, policy)
        if problem is not None:
            raise ConfigError(f"{where}: profiles.{task}.prompt_cache_lifetime: {problem}")
        most = policy.max_output_tokens
        if most is not None and profile.max_output_tokens > most:
            raise ConfigError(
                f"{where}: profiles.{task}.max_output_tokens: {profile.max_output_tokens:,} is "
                f"more than {profile.model} can write ({most:,}, [models] in "
                f"{prices.source}); lower it"
            )
    return policies


def check_prices_in_effect(
    profiles: dict[str, Profile], prices: PriceTable, today: dt.date
) -> None:
    """Refuse a model without a price in effect ``today``: standard always (every response is
    priced at it), and flex for a profile asking for flex.

    A price whose ``effective_date`` is still to come would let the run send and pay, then fail
    to record the response; the ``PricingError`` names the file, the model and the first date.
    """
    standard: Tier = "standard"
    flex: Tier = "flex"
    needed = sorted(
        {(p.model, standard) for p in profiles.values()}
        | {(p.model, flex) for p in profiles.values() if p.service_tier == "flex"}
    )
    for model, tier in needed:
        try:
            prices.price(model, tier, on=today)
        except PricingError:
            rows = [r for r in prices.entries if r.model == model] or [
                r for r in prices.entries if r.model == base_model_name(model)
            ]
            dates = [r.effective_date for r in rows if r.tier(tier) is not None]
            what = "price" if tier == "standard" else f"{tier} price"
            first = f" (its first {what} takes effect {min(dates)})" if dates else ""
            raise PricingError(
                f"{prices.source}: model {model} has no {what} in effect on {today}{first}"
            ) from None


def _field_line(path: Path, table: str, key: str) -> int | None:
    """The line of ``key = ...`` in ``[table]`` of the TOML file at ``path`` (None: not found
    as written, e.g. an inline table); for pointing at a field in an error message."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    inside = False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("["):
            inside = stripped.split("#")[0].strip() == f"[{table}]"
            continue
        if inside and stripped.split("=")[0].strip() == key:
            return number
    return None


def check_models_known(profiles: Mapping[str, Profile], prices: PriceTable, path: Path) -> None:
    """Refuse a profile whose model the price table does not know, naming the profile, its
    line in profiles.toml and the nearest known model (a typo there is the usual cause)."""
    for task, profile in profiles.items():
        if prices.knows(profile.model):
            continue
        line = _field_line(path, f"profiles.{task}", "model")
        where = f"{path}:{line}" if line else str(path)
        near = difflib.get_close_matches(profile.model, prices.models, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(
            f"{where}: profiles.{task}.model = {profile.model!r} is not a model {prices.source} "
            f"knows{hint}; known models: {', '.join(prices.models)}"
        )


def load_config(settings: Settings, today: dt.date | None = None) -> Config:
    """Read profiles, prices and recurring budgets, check every model is priced today, connect
    to a migrated database. ``today`` (default: the UTC date, as recording uses) is when
    prices must hold.
    """
    profiles = load_profiles(settings.config_dir)
    prices = load_pricing(settings.config_dir / "pricing.toml")
    check_models_known(profiles, prices, settings.config_dir / "profiles.toml")
    policies = cache_policies(profiles, prices, str(settings.config_dir / "profiles.toml"))
    for task, profile in profiles.items():
        if profile.service_tier == "flex" and prices.tier_or_none(profile.model, "flex") is None:
            raise PricingError(
                f"profile {task!r} asks for service_tier 'flex', but {profile.model} has no "
                "flex price in config/pricing.toml"
            )
    check_prices_in_effect(profiles, prices, today or dt.datetime.now(dt.UTC).date())
    budgets = load_budgets(settings.config_dir)
    engine = make_engine(settings.database_url)
    require_migrated(engine)
    return Config(profiles, prices, session_factory(engine), policies, budgets)


def runnable_tasks(
    requested: tuple[str, ...] | None, profiles: dict[str, Profile]
) -> tuple[str, ...]:
    """The tasks a run may claim: the requested ones (each must have a profile), else all
    profiled tasks, so jobs of a task whose profile was removed never block the queue."""
    if requested:
        unknown = sorted(set(requested) - set(profiles))
        if unknown:
            raise ConfigError(f"no profile for task(s) {unknown}; known: {sorted(profiles)}")
        return requested
    return tuple(profiles)


def version_rows(profiles: dict[str, Profile]) -> list[VersionRow]:
    """The versions of ``profiles`` as rows of ``profile_versions`` (stored once each)."""
    return [VersionRow(p.version, task, p.model, p.definition()) for task, p in profiles.items()]


def expects_followers(sessions: sessionmaker[Session], profiles: dict[str, Profile]) -> bool:
    """Whether chained jobs may be queued during a run: an enabled chained task, or jobs of a
    disabled one (a grader turned on for some articles) still to run. A configured but unused
    grader leaves a run as if there were no chain."""
    chained = {task for task, p in profiles.items() if p.follows is not None}
    if any(profiles[task].enabled for task in chained):
        return True
    if not chained:
        return False
    with sessions() as session:
        counts = queue.job_counts(session)
    return any(c.task in chained and c.state in ("waiting", "queued", "running") for c in counts)
