"""Runtime settings: environment variables ``CONTENTGEN_*`` (nested with ``__``) and OpenAI's own.

Nothing is read at import time; ``get_settings()`` builds one cached ``Settings`` on first use,
and an invalid value is a ``ConfigError`` naming the variable.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import types
import typing
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from pipeline.errors import ConfigError

log = logging.getLogger("contentgen.settings")


class Settings(BaseSettings):
    """Where the database, config and cache live, and how hard to drive the API."""

    model_config = SettingsConfigDict(
        env_prefix="CONTENTGEN_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = Field(
        default="sqlite:///contentgen.db",
        description="SQLAlchemy URL of the job database (SQLite file in the working directory).",
    )
    config_dir: Path = Field(
        default_factory=lambda: _default_config_dir(),
        description="Folder with profiles.toml etc.: ./config when there is one, else the "
        "installation's own.",
    )
    # The user's cache folder, not the working directory: answers cached by a rehearsal must not
    # wait there for the next real run. XDG_CACHE_HOME counts only when absolute (XDG spec).
    cache_dir: Path = Field(
        default_factory=lambda: (
            (
                Path(xdg)
                if os.path.isabs(xdg := os.environ.get("XDG_CACHE_HOME", ""))
                else Path.home() / ".cache"
            )
            / "contentgen"
            / "responses"
        ),
        description="Local response cache (diskcache): $XDG_CACHE_HOME/contentgen/responses, "
        "else ~/.cache/contentgen/responses.",
    )
    concurrency: int = Field(default=32, ge=1, le=2048, description="Requests in flight at most.")
    claim_chunk: int | None = Field(
        default=None,
        ge=1,
        le=50_000,
        description="Jobs claimed at a time (default: 4 x concurrency, what is sent soon).",
    )
    lease_s: int = Field(
        default=120,
        ge=10,
        description="Seconds a claimed job stays leased (renewed every third of it while held).",
    )
    outage_window_s: float = Field(
        default=120.0, gt=0, description="How long the API may not answer before a run stops."
    )
    db_outage_s: float = Field(
        default=60.0, gt=0, description="How long the database may not answer before a run stops."
    )
    journal_dir: Path | None = Field(
        default=None,
        description="Journal of paid results not yet recorded (default: "
        "$XDG_STATE_HOME/contentgen/journal).",
    )
    max_attempts: int = Field(default=5, ge=1, description="A job fails for good after this many.")
    max_worker_deaths: int = Field(
        default=3,
        ge=1,
        description="A job fails for good (reason worker_lost) once this many workers died "
        "while it alone was being sent or answered.",
    )
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
    # Infrastructure, not an editor's choice: set on the worker (or `contentgen serve`), not
    # on the Prefect form.
    flow_chunk_size: int = Field(
        default=1000,
        ge=1,
        le=50_000,
        description="Jobs per Prefect task in the nightly and ad-hoc flows (one `run_batch` "
        "each, its requests sent concurrently).",
    )
    label_refresh_s: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="How often `contentgen serve` refreshes the batch labels the ad-hoc and "
        "nightly forms offer (the labels with queued jobs), in seconds.",
    )
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
    pace_min_saving: float = Field(
        default=0.01,
        ge=0,
        description="A nightly run paces itself when that saves at least this share of the "
        "full-speed forecast (and the deadline allows it).",
    )
    flex_slowdown: float = Field(
        default=2.5, ge=1, description="How much longer flex takes than realtime (forecasts)."
    )
    # The editorial layer (docs/editorial.md).
    editor: str | None = Field(
        default=None,
        max_length=128,
        description="Who `contentgen review` records as the editor (default: the OS user).",
    )
    desk_url: str = Field(
        default="http://127.0.0.1:8765",
        max_length=2000,
        description="Where editors reach the review desk (`contentgen desk`): the nightly "
        "run's message and artifact link to its queue there.",
    )
    # Delivery to the CMS (docs/delivery.md): these override config/delivery.toml's [delivery].
    delivery_webhook_url: str | None = Field(
        default=None, description="Where `contentgen deliver` posts approved texts (a webhook)."
    )
    delivery_secret: SecretStr | None = Field(
        default=None,
        description="The webhook's signing secret, whsec_<base64> (Standard Webhooks); only "
        "from the environment, never from a file, never printed.",
    )
    delivery_folder: Path | None = Field(
        default=None, description="A drop folder for approved texts as JSON files (instead)."
    )
    delivery_timeout_s: float | None = Field(
        default=None, gt=0, description="Seconds one webhook send may take (default 10)."
    )
    delivery_backoff_s: float | None = Field(
        default=None, gt=0, description="First wait before a failed send is retried (default 30)."
    )
    delivery_backoff_max_s: float | None = Field(
        default=None, gt=0, description="Longest wait between retries (default 3600)."
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
    batch_resubmit_expired: bool = Field(
        default=True,
        description="The lines an expired batch never ran go into one new batch (once); "
        "false: back to the queue, failing with reason `expired` on their last attempt.",
    )

    def claim_chunk_for(self, concurrency: int) -> int:
        """Jobs a run claims at a time: ``claim_chunk``, else four times what it sends at once
        (claimed jobs wait in this run's hands: a crash strands no more than that)."""
        return self.claim_chunk or max(32, 4 * concurrency)


def ledger_id(database_url: str) -> str:
    """A short opaque name of the job database (the ledger) a run records into: its journal
    folder and the response-cache entries it pays for carry it. 16 hex digits."""
    return hashlib.sha256(database_url.encode()).hexdigest()[:16]


def packaged_config_dir() -> Path:
    """The default config shipped inside the ``pipeline`` package (a link to the checkout's
    ``config/`` in a source tree, real files in a wheel)."""
    return Path(str(resources.files("pipeline").joinpath("data", "config")))


def _default_config_dir() -> Path:
    """``./config`` when the working directory has one, else the one ContentGen was installed
    with, so commands work from any directory (``contentgen init`` copies it to edit)."""
    local = Path("config")
    if local.is_dir():
        return local
    packaged = packaged_config_dir()
    return packaged if packaged.is_dir() else local


_KINDS: dict[object, str] = {int: "an integer", float: "a number", Path: "a path", str: "text"}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _expected(annotation: Any, metadata: list[Any]) -> str:
    """What a field takes, in words: ``an integer from 1 to 2048``, ``one of a, b``."""
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(arg) for arg in typing.get_args(annotation))
    kind = _KINDS.get(annotation, "a valid value")
    bounds = {
        key: getattr(item, key)
        for item in metadata
        for key in ("ge", "gt", "le", "lt")
        if getattr(item, key, None) is not None
    }
    if "ge" in bounds and "le" in bounds:
        return f"{kind} from {_number(bounds['ge'])} to {_number(bounds['le'])}"
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    limits = " and ".join(f"{signs[key]} {_number(value)}" for key, value in bounds.items())
    return f"{kind} {limits}" if limits else kind


def describe_settings_error(exc: ValidationError) -> str:
    """``VARIABLE: must be ..., got 'value'`` for each invalid setting, joined with '; '."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    problems = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else ""
        field = Settings.model_fields.get(name)
        if field is None:  # a validation alias such as OPENAI_BASE_URL, already a variable
            problems.append(f"{name}: {err['msg']}")
            continue
        variable = prefix.upper() + "__".join(str(part) for part in err["loc"]).upper()
        expected = _expected(field.annotation, field.metadata)
        secret = "SecretStr" in str(field.annotation)  # never echo a key
        got = "" if secret else f", got {str(err['input'])[:60]!r}"
        problems.append(f"{variable}: must be {expected}{got}")
    return "; ".join(problems)


# CONTENTGEN_* variables read elsewhere than ``Settings``: the simulator's options (a prefix),
# enqueue's body limit, the tests' PostgreSQL server, the Prefect workers' working directory,
# the alert channels' secrets.
OTHER_VARIABLES = frozenset(
    {
        "CONTENTGEN_MAX_BODY_CHARS",
        "CONTENTGEN_TEST_PG_URL",
        "CONTENTGEN_HOME",
        # Secrets of config/alerts.toml's channels (pipeline.alerts.config).
        "CONTENTGEN_ALERT_WEBHOOK_URL",
        "CONTENTGEN_ALERT_WEBHOOK_SECRET",
        "CONTENTGEN_SMTP_PASSWORD",
    }
)
OTHER_PREFIXES = ("CONTENTGEN_SIM_",)


def known_variables() -> list[str]:
    """Every ``CONTENTGEN_*`` variable ContentGen reads."""
    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    names = {prefix + name.upper() for name in Settings.model_fields}
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(c) for c in alias.choices if str(c).startswith(prefix))
    return sorted(names | OTHER_VARIABLES)


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """The ``CONTENTGEN_*`` names in ``environ`` that nothing reads, each with the closest
    known name (or None): a typo such as ``CONTENTGEN_DATABSE_URL`` is otherwise silently
    ignored and the default used."""
    known = known_variables()
    delimiter = str(Settings.model_config.get("env_nested_delimiter") or "__")
    found = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith("CONTENTGEN_") or upper.startswith(OTHER_PREFIXES):
            continue
        if upper in known or upper.split(delimiter, 1)[0] in known:
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        found.append((name, close[0] if close else None))
    return found


def warn_unknown_variables(environ: Mapping[str, str]) -> None:
    """Log a warning (stderr unless logging is configured) for each unknown variable."""
    for name, close in unknown_variables(environ):
        hint = f"; did you mean {close}?" if close else ""
        log.warning("warning: unknown variable %s is ignored%s", name, hint)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once.

    Raises ``ConfigError`` naming the variable when a value is invalid (the CLI prints it as
    one line; flows let it propagate). An unknown ``CONTENTGEN_*`` variable is a warning
    naming the closest valid one.
    """
    warn_unknown_variables(os.environ)
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc)) from exc
    except SettingsError as exc:
        raise ConfigError(f"settings: {exc}") from exc
