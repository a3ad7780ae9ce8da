"""Where approved texts go and how hard to try: ``[delivery]`` of ``config/delivery.toml``,
overridden by ``CONTENTGEN_DELIVERY_*`` variables; the signing secret only from the
environment (``CONTENTGEN_DELIVERY_SECRET``), never from a file, never printed.

One target: a webhook (``webhook_url``, which needs the secret) or a drop folder (``folder``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.tomlfile import load_model, read_toml

CONFIG_FILE = "delivery.toml"
SECRET_PREFIX = "whsec_"
SECRET_VARIABLE = "CONTENTGEN_DELIVERY_SECRET"
NO_TARGET = (
    "no delivery target: set webhook_url (and CONTENTGEN_DELIVERY_SECRET) or folder under "
    "[delivery] in config/delivery.toml, or CONTENTGEN_DELIVERY_WEBHOOK_URL / "
    "CONTENTGEN_DELIVERY_FOLDER"
)


class DeliverySection(BaseModel):
    """``[delivery]`` as written in the file (unknown keys are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_url: str | None = None
    folder: Path | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    concurrency: int = Field(default=4, ge=1, le=64)
    backoff_s: float = Field(default=30.0, gt=0)
    backoff_max_s: float = Field(default=3600.0, gt=0)
    lease_s: float = Field(default=300.0, ge=1)
    language: str = Field(default="en", min_length=2, max_length=35)

    @field_validator("webhook_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class _DeliveryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delivery: DeliverySection = DeliverySection()


@dataclass(frozen=True)
class DeliveryConfig:
    """The resolved delivery settings (see the module docstring). ``secret`` is the decoded
    HMAC key; its ``repr`` never shows it."""

    webhook_url: str | None
    folder: Path | None
    secret: bytes | None
    timeout_s: float
    concurrency: int
    backoff_s: float
    backoff_max_s: float
    lease_s: float
    language: str

    def __repr__(self) -> str:
        secret = "set" if self.secret else "unset"
        return (
            f"DeliveryConfig(webhook_url={shown_url(self.webhook_url or '')!r}, "
            f"folder={self.folder!r}, "
            f"secret={secret})"
        )

    @property
    def target(self) -> str:
        """The target in words, for progress lines (never the secret)."""
        if self.webhook_url:
            return f"webhook {shown_url(self.webhook_url)}"
        return f"folder {self.folder}"

    def retry_delay_s(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed send: ``backoff_s`` doubled each time,
        at most ``backoff_max_s`` (30 s, 1 min, 2 min, ... 1 h by default; never given up)."""
        doublings = min(max(attempts - 1, 0), 40)
        return float(min(self.backoff_max_s, self.backoff_s * 2.0**doublings))


def shown_url(url: str) -> str:
    """``url`` as printed: without user, password or query string (a CMS may put its token
    there), which are replaced by ``***``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.username or parts.password:
        host = f"***@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "***" if parts.query else "", ""))


def decode_secret(value: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret ``whsec_<base64>``; a ``ConfigError`` that
    never quotes the value when it is not one."""
    if not value.startswith(SECRET_PREFIX):
        raise ConfigError(f"{SECRET_VARIABLE}: must look like whsec_<base64> (it does not)")
    try:
        key = base64.b64decode(value.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{SECRET_VARIABLE}: the part after whsec_ is not valid base64") from None
    if len(key) < 24:
        raise ConfigError(f"{SECRET_VARIABLE}: the key must be 24 to 64 bytes (it is shorter)")
    if len(key) > 64:
        raise ConfigError(f"{SECRET_VARIABLE}: the key must be 24 to 64 bytes (it is longer)")
    return key


def read_section(settings: Settings) -> DeliverySection:
    """``[delivery]`` of ``config_dir/delivery.toml`` (defaults when the file is absent)."""
    path = settings.config_dir / CONFIG_FILE
    if not path.is_file():
        return DeliverySection()
    raw = read_toml(path)
    section = raw.get("delivery")
    if isinstance(section, dict) and "secret" in section:
        raise ConfigError(
            f"{path}: delivery.secret: keep the secret out of files; set {SECRET_VARIABLE}"
        )
    return load_model(path, _DeliveryFile, raw).delivery


def load_delivery_config(settings: Settings, *, require_target: bool = True) -> DeliveryConfig:
    """The delivery settings: the file's ``[delivery]``, then the variables over it.

    ``ConfigError`` (one line) when no target is set and ``require_target``, when both a
    webhook and a folder are, or when a webhook has no valid secret.
    """
    section = read_section(settings)
    # A target named by a variable replaces the file's target (webhook or folder) as a whole.
    url, folder = settings.delivery_webhook_url, settings.delivery_folder
    if url is None and folder is None:
        url, folder = section.webhook_url, section.folder
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError("CONTENTGEN_DELIVERY_WEBHOOK_URL: must be an http:// or https:// URL")
    if url and folder:
        raise ConfigError(
            "delivery: set a webhook_url or a folder, not both (one target per outbox)"
        )
    if require_target and not url and not folder:
        raise ConfigError(NO_TARGET)
    secret = None
    if settings.delivery_secret is not None:
        secret = decode_secret(settings.delivery_secret.get_secret_value())
    if url and secret is None:
        raise ConfigError(
            f"delivery: a webhook needs its signing secret in {SECRET_VARIABLE} "
            "(whsec_<base64>, as the receiver knows it)"
        )
    return DeliveryConfig(
        webhook_url=url,
        folder=folder,
        secret=secret,
        timeout_s=settings.delivery_timeout_s or section.timeout_s,
        concurrency=section.concurrency,
        backoff_s=settings.delivery_backoff_s or section.backoff_s,
        backoff_max_s=settings.delivery_backoff_max_s or section.backoff_max_s,
        lease_s=section.lease_s,
        language=section.language,
    )
