"""Alerts: tell someone when a night went wrong, once per event.

- ``config``: ``config/alerts.toml`` (thresholds, the nightly deadline, a webhook and/or SMTP
  email), secrets from the environment;
- ``channels``: the webhook (Slack's ``{"text": ...}`` or a generic body signed with
  HMAC-SHA256) and SMTP email, each returning what it did instead of raising;
- ``events``: which events a closed run's row, a budget's period or a missed nightly run is
  worth (failed, fatal, budget, database, stopped, cancelled, failure rate, over forecast,
  soft budget, deadline), each a message with the figures and the command to look closer;
- ``notify``: evaluate after a run from the runs table, record each event in ``alerts_sent``
  before sending it (an event evaluated twice is sent once), never fail the run.

It reads the database and the config only: the CLI and the flows call it after ``run_batch``
returns, so the run itself knows nothing of alerts.
"""

from __future__ import annotations

from pipeline.alerts.channels import (
    SIGNATURE_HEADER,
    Delivery,
    Message,
    sign,
    verify_signature,
    webhook_body,
)
from pipeline.alerts.config import (
    ALERTS_FILE,
    SMTP_PASSWORD_ENV,
    WEBHOOK_SECRET_ENV,
    WEBHOOK_URL_ENV,
    AlertsConfig,
    load_alerts,
)
from pipeline.alerts.events import Event, budget_line, run_events, stop_event
from pipeline.alerts.notify import (
    DeadlineCheck,
    Sent,
    alerts_config,
    check_deadline,
    flow_run_ids,
    notify_runs,
    send_test,
)

__all__ = [
    "ALERTS_FILE",
    "SIGNATURE_HEADER",
    "SMTP_PASSWORD_ENV",
    "WEBHOOK_SECRET_ENV",
    "WEBHOOK_URL_ENV",
    "AlertsConfig",
    "DeadlineCheck",
    "Delivery",
    "Event",
    "Message",
    "Sent",
    "alerts_config",
    "budget_line",
    "check_deadline",
    "flow_run_ids",
    "load_alerts",
    "notify_runs",
    "run_events",
    "send_test",
    "sign",
    "stop_event",
    "verify_signature",
    "webhook_body",
]
