"""``config/alerts.toml``: where alerts go and when a run is worth one.

::

    [alerts]
    failure_rate = 0.2           # a run whose failed share of jobs reaches this (default 0.2)
    failure_min_jobs = 5         # ... once it has finished at least this many jobs
    over_forecast = 0.5          # a run that cost 50% more than its forecast (default 0.5)
    nightly_deadline = "03:30"   # a nightly run must have started by then (optional)
    timezone = "Europe/Berlin"   # of the deadline (default: CONTENTGEN_TIMEZONE)

    [alerts.webhook]
    url = "https://hooks.slack.com/services/..."   # or CONTENTGEN_ALERT_WEBHOOK_URL
    format = "slack"             # slack: {"text": ...}; generic: a signed JSON body

    [alerts.email]
    host = "smtp.example.com"
    port = 587
    starttls = true
    username = "contentgen"      # password: CONTENTGEN_SMTP_PASSWORD
    sender = "contentgen@example.com"
    to = ["night-desk@example.com"]

Secrets live in the environment, never in the file: the webhook's URL may
(``CONTENTGEN_ALERT_WEBHOOK_URL``), its signing secret and the SMTP password must
(``CONTENTGEN_ALERT_WEBHOOK_SECRET``, ``CONTENTGEN_SMTP_PASSWORD``). No file: no alerts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.errors import ConfigError
from pipeline.tomlfile import known_zone, load_model

ALERTS_FILE = "alerts.toml"
WEBHOOK_URL_ENV = "CONTENTGEN_ALERT_WEBHOOK_URL"
WEBHOOK_SECRET_ENV = "CONTENTGEN_ALERT_WEBHOOK_SECRET"
SMTP_PASSWORD_ENV = "CONTENTGEN_SMTP_PASSWORD"


class WebhookSpec(BaseModel):
    """``[alerts.webhook]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    format: Literal["slack", "generic"] = "slack"
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class EmailSpec(BaseModel):
    """``[alerts.email]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    sender: str = Field(min_length=3, pattern=r"@")
    to: tuple[str, ...] = Field(min_length=1)
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if "@" not in address:
                raise ValueError(f"not an email address: {address!r}")
        return value


class AlertRules(BaseModel):
    """``[alerts]``: thresholds, the nightly deadline, and the channels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failure_rate: float = Field(default=0.2, gt=0, le=1)
    failure_min_jobs: int = Field(default=5, ge=1)
    over_forecast: float = Field(default=0.5, ge=0)
    nightly_deadline: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str | None = None
    webhook: WebhookSpec | None = None
    email: EmailSpec | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else known_zone(value)

    @model_validator(mode="after")
    def _ssl_or_starttls(self) -> AlertRules:
        if self.email is not None and self.email.ssl and self.email.starttls:
            raise ValueError("email: ssl and starttls exclude each other; pick one")
        return self

    def deadline(self) -> dt.time | None:
        """``nightly_deadline`` as a time of day."""
        if self.nightly_deadline is None:
            return None
        hour, minute = self.nightly_deadline.split(":")
        return dt.time(int(hour), int(minute))


class AlertsFile(BaseModel):
    """``alerts.toml``: one ``[alerts]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alerts: AlertRules = AlertRules()


class AlertsConfig(BaseModel):
    """The rules with the secrets from the environment: what ``notify`` sends with."""

    model_config = ConfigDict(frozen=True)

    rules: AlertRules = AlertRules()
    source: str = ALERTS_FILE
    webhook_url: str | None = None
    webhook_secret: str | None = Field(default=None, repr=False)
    smtp_password: str | None = Field(default=None, repr=False)

    @property
    def channels(self) -> list[str]:
        """The configured channels' names (``webhook``, ``email``)."""
        found = []
        if self.webhook_url:
            found.append("webhook")
        if self.rules.email is not None:
            found.append("email")
        return found


def load_alerts(config_dir: Path, environ: Mapping[str, str]) -> AlertsConfig:
    """``config_dir/alerts.toml`` with its secrets from ``environ``; no file, no channels.

    Errors are one ``ConfigError`` line naming the file and the field (or the variable).
    """
    path = config_dir / ALERTS_FILE
    rules = load_model(path, AlertsFile).alerts if path.exists() else AlertRules()
    url = environ.get(WEBHOOK_URL_ENV) or (rules.webhook.url if rules.webhook else None)
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(f"{WEBHOOK_URL_ENV}: must be an http(s) URL")
    if rules.webhook is not None and not url:
        raise ConfigError(
            f"{path}: alerts.webhook.url: no URL: set {WEBHOOK_URL_ENV} (or url in the file)"
        )
    if url and rules.webhook is None:
        rules = rules.model_copy(update={"webhook": WebhookSpec()})
    secret = environ.get(WEBHOOK_SECRET_ENV) or None
    if url and rules.webhook is not None and rules.webhook.format == "generic" and not secret:
        raise ConfigError(
            f"{path}: alerts.webhook.format: a generic webhook is signed: set {WEBHOOK_SECRET_ENV}"
        )
    password = environ.get(SMTP_PASSWORD_ENV) or None
    if rules.email is not None and rules.email.username and not password:
        raise ConfigError(
            f"{path}: alerts.email.username: set {SMTP_PASSWORD_ENV} (the password is never "
            "kept in the file)"
        )
    return AlertsConfig(
        rules=rules,
        source=str(path),
        webhook_url=url,
        webhook_secret=secret,
        smtp_password=password,
    )
