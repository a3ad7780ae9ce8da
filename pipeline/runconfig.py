"""What a run reads before it starts: profiles, prices, cache policies and the database.

``load_config`` refuses, before any request is sent, a model without a price or a prompt-cache
policy, a profile asking for flex where its model has no flex price, and a prompt-cache
lifetime the model does not accept; each error names the file and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from pipeline.cachepolicy import PromptCachePolicy
from pipeline.db.engine import make_engine, require_migrated, session_factory
from pipeline.errors import ConfigError, PricingError
from pipeline.planning.shape import lifetime_problem
from pipeline.pricing import PriceTable, load_pricing
from pipeline.profiles import Profile, load_profiles
from pipeline.settings import Settings


@dataclass
class Config:
    """Everything a run reads from config/ and the database, loaded once."""

    profiles: dict[str, Profile]
    prices: PriceTable
    sessions: sessionmaker[Session]
    policies: dict[str, PromptCachePolicy] = field(default_factory=dict)


def cache_policies(
    profiles: dict[str, Profile], prices: PriceTable, where: str = "config/profiles.toml"
) -> dict[str, PromptCachePolicy]:
    """The prompt-cache policy of every profile's model; refuses a lifetime a model refuses.

    Raises ``PricingError`` naming the price file for a model without a policy, and
    ``ConfigError`` naming the profile for a ``prompt_cache_lifetime`` its model does not take.
    """
    policies = {p.model: prices.policy(p.model) for p in profiles.values()}
    for task, profile in profiles.items():
        problem = lifetime_problem(profile, policies[profile.model])
        if problem is not None:
            raise ConfigError(f"{where}: profiles.{task}.prompt_cache_lifetime: {problem}")
    return policies


def load_config(settings: Settings) -> Config:
    """Read profiles and prices, check every model is priced, connect to a migrated database."""
    profiles = load_profiles(settings.config_dir)
    prices = load_pricing(settings.config_dir / "pricing.toml")
    unpriced = sorted({p.model for p in profiles.values() if not prices.knows(p.model)})
    if unpriced:
        raise PricingError(f"no price for model(s) {unpriced} in config/pricing.toml")
    policies = cache_policies(profiles, prices, str(settings.config_dir / "profiles.toml"))
    for task, profile in profiles.items():
        if profile.service_tier == "flex" and prices.tier_or_none(profile.model, "flex") is None:
            raise PricingError(
                f"profile {task!r} asks for service_tier 'flex', but {profile.model} has no "
                "flex price in config/pricing.toml"
            )
    engine = make_engine(settings.database_url)
    require_migrated(engine)
    return Config(profiles, prices, session_factory(engine), policies)


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
