"""Runtime settings: environment variables ``CONTENTGEN_*`` (nested with ``__``) and OpenAI's own.

Nothing is read at import time; ``get_settings()`` builds one cached ``Settings`` on first use.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the database, config and cache live, and how hard to drive the API."""

    model_config = SettingsConfigDict(
        env_prefix="CONTENTGEN_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = Field(
        default="sqlite:///contentgen.db",
        description="SQLAlchemy URL of the job database (SQLite file in the working directory).",
    )
    config_dir: Path = Field(default=Path("config"), description="Folder with profiles.toml etc.")
    cache_dir: Path = Field(
        default=Path(".contentgen-cache"), description="Local response cache (diskcache)."
    )
    concurrency: int = Field(default=32, ge=1, le=2048, description="Requests in flight at most.")
    claim_chunk: int = Field(default=500, ge=1, le=50_000, description="Jobs claimed per chunk.")
    lease_s: int = Field(default=900, ge=10, description="Seconds a claimed job stays leased.")
    max_attempts: int = Field(default=5, ge=1, description="A job fails for good after this many.")
    cache_machines: int = Field(
        default=8,
        ge=1,
        description="Prompt-cache machines one prefix's routing keys are expected to share "
        "(forecasts and waits of models before GPT-5.6; the provider does not publish it).",
    )
    rpm_limit: int | None = Field(default=None, ge=1, description="Requests/min to start from.")
    tpm_limit: int | None = Field(default=None, ge=1, description="Tokens/min to start from.")
    request_timeout_s: float = Field(default=120.0, gt=0)
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "CONTENTGEN_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "CONTENTGEN_OPENAI_BASE_URL"),
    )
    timezone: str = Field(default="UTC", description="Time zone of the nightly schedule.")
    nightly_cron: str = Field(default="0 2 * * *", description="When the nightly run starts.")
    # Cheap modes (flex processing, the Batch API) and how a run picks one: docs/modes.md.
    default_mode: Literal["realtime", "flex", "batch", "auto"] = Field(
        default="realtime", description="How `contentgen run` sends requests without --mode."
    )
    deadline_h: float = Field(
        default=8.0, gt=0, description="Hours a run may take; --mode auto picks what meets it."
    )
    flex_timeout_s: float = Field(default=900.0, gt=0, description="Per-attempt flex timeout.")
    flex_fallback_s: float = Field(
        default=600.0,
        ge=0,
        description="Seconds of flex retries before a request falls back to the default tier.",
    )
    flex_slowdown: float = Field(
        default=2.5, ge=1, description="How much longer flex takes than realtime (forecasts)."
    )
    batch_max_requests: int = Field(default=50_000, ge=1, le=50_000, description="Per file.")
    batch_max_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1024, le=200 * 1024 * 1024, description="Per file."
    )
    batch_poll_s: float = Field(default=10.0, gt=0, description="First wait between polls.")
    batch_poll_max_s: float = Field(default=300.0, gt=0, description="Longest wait between polls.")
    batch_lease_h: float = Field(
        default=25.0, gt=24, description="Lease of jobs in a batch (beyond the 24 h window)."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
