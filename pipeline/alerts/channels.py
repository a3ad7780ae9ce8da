"""Where an alert goes: a webhook (Slack's ``{"text": ...}`` or a generic signed JSON body) and
SMTP email. Each send returns a ``Delivery`` saying sent or why not; nothing here raises for a
channel that fails, so an alert can never fail the run it is about.

The generic body is signed like a payment provider's webhook: the header
``X-ContentGen-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is the HMAC-SHA256, keyed
with ``CONTENTGEN_ALERT_WEBHOOK_SECRET``, of ``"<t>.<body bytes>"``. A receiver recomputes it
(``verify_signature``) and refuses a stale ``t``, so a captured alert cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx

from pipeline.alerts.config import AlertsConfig

SIGNATURE_HEADER = "X-ContentGen-Signature"
SIGNATURE_TOLERANCE_S = 300


@dataclass(frozen=True)
class Message:
    """One alert: its event, a subject line, the text, and the figures as plain values."""

    event: str
    subject: str
    text: str
    figures: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    """What one channel did with a message: ``where`` never shows a secret."""

    channel: str
    where: str
    sent: bool
    detail: str

    def line(self) -> str:
        """``webhook https://hooks.slack.com/…: sent (HTTP 200)``."""
        state = "sent" if self.sent else "FAILED"
        return f"{self.channel} {self.where}: {state} ({self.detail})"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of ``now``."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def shown_url(url: str) -> str:
    """A webhook URL without what makes it a secret (Slack's path is the credential)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}/…"


def webhook_body(message: Message, fmt: str) -> bytes:
    """The JSON body: Slack's ``{"text": ...}``, or the generic event with its figures."""
    if fmt == "slack":
        payload: dict[str, Any] = {"text": f"*{message.subject}*\n{message.text}"}
    else:
        payload = {
            "source": "contentgen",
            "event": message.event,
            "subject": message.subject,
            "text": message.text,
            "figures": message.figures,
        }
    return json.dumps(payload, sort_keys=True, default=str).encode()


def send_webhook(config: AlertsConfig, message: Message) -> Delivery:
    """POST the message to the webhook; a failure is a ``Delivery`` that says why."""
    assert config.webhook_url is not None and config.rules.webhook is not None
    spec = config.rules.webhook
    where = shown_url(config.webhook_url)
    body = webhook_body(message, spec.format)
    headers = {"Content-Type": "application/json", "User-Agent": "contentgen-alerts"}
    if config.webhook_secret:
        headers[SIGNATURE_HEADER] = sign(config.webhook_secret, body, int(time.time()))
    try:
        response = httpx.post(
            config.webhook_url, content=body, headers=headers, timeout=spec.timeout_s
        )
    except httpx.HTTPError as exc:
        return Delivery("webhook", where, False, f"{type(exc).__name__}: {exc}"[:200])
    if response.status_code >= 300:
        return Delivery("webhook", where, False, f"HTTP {response.status_code}")
    return Delivery("webhook", where, True, f"HTTP {response.status_code}")


def send_email(config: AlertsConfig, message: Message) -> Delivery:
    """Send the message by SMTP; a failure is a ``Delivery`` that says why."""
    spec = config.rules.email
    assert spec is not None
    where = f"{spec.host}:{spec.port} to {', '.join(spec.to)}"
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = spec.sender
    mail["To"] = ", ".join(spec.to)
    mail.set_content(message.text)
    try:
        smtp: smtplib.SMTP
        if spec.ssl:
            smtp = smtplib.SMTP_SSL(
                spec.host, spec.port, timeout=spec.timeout_s, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(spec.host, spec.port, timeout=spec.timeout_s)
        with smtp:
            if spec.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if spec.username:
                smtp.login(spec.username, config.smtp_password or "")
            smtp.send_message(mail)
    except (OSError, smtplib.SMTPException) as exc:
        return Delivery("email", where, False, f"{type(exc).__name__}: {exc}"[:200])
    return Delivery("email", where, True, "accepted")


def deliver(config: AlertsConfig, message: Message) -> list[Delivery]:
    """Send ``message`` to every configured channel."""
    found = []
    if config.webhook_url:
        found.append(send_webhook(config, message))
    if config.rules.email is not None:
        found.append(send_email(config, message))
    return found
