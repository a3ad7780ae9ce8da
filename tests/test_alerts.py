"""Alerts: config errors in one line, the webhook payloads and their signature, SMTP, one
message per event however often it is evaluated, and a channel that fails never failing the
run. Real receivers on 127.0.0.1 (HTTP and SMTP), a real database."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from pipeline.alerts import (
    SIGNATURE_HEADER,
    check_deadline,
    load_alerts,
    notify_runs,
    send_test,
    sign,
    verify_signature,
)
from pipeline.cli.main import app
from pipeline.db import Run, alerts_sent
from pipeline.errors import ConfigError
from pipeline.money import load_budgets
from pipeline.settings import Settings, get_settings
from tests.alerts_support import smtp_sink, webhook_receiver, write_config

SLACK = '[alerts]\n[alerts.webhook]\nformat = "slack"\n'
GENERIC = '[alerts]\n[alerts.webhook]\nformat = "generic"\n'
SECRET = "whsec-test-0123456789"


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each CLI invocation reads its own environment (``get_settings`` is cached)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def invoke(args: list[str], env: dict[str, str]) -> Result:
    """``contentgen ARGS`` with ``env``, settings read afresh."""
    get_settings.cache_clear()
    return CliRunner().invoke(app, args, env=env)


def stopped_run(engine: Engine, **values: object) -> int:
    """A closed run row (a fatal stop unless told otherwise); its id."""
    fields: dict[str, object] = {
        "kind": "nightly",
        "trigger": "schedule",
        "state": "failed",
        "stop_reason": "fatal auth",
        "succeeded": 3,
        "failed": 0,
        "cost_usd": Decimal("0.0123"),
        "forecast_cost_usd": Decimal("0.0400"),
        "finished_at": dt.datetime(2026, 12, 7, 2, 5),
        "started_at": dt.datetime(2026, 12, 7, 2, 0),
    }
    fields.update(values)
    with Session(engine) as session:
        run = Run(**fields)
        session.add(run)
        session.commit()
        return run.id


def settings_for(database_url: str, config_dir: Path) -> Settings:
    return Settings(database_url=database_url, config_dir=config_dir)


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[alerts]\nfailure_rate = 2\n", "alerts.toml: alerts.failure_rate: Input should be"),
        ("[alerts]\nfailure_ratio = 0.2\n", "alerts.toml: alerts.failure_ratio: unknown key"),
        ('[alerts]\nnightly_deadline = "3am"\n', "alerts.toml: alerts.nightly_deadline:"),
        ('[alerts.webhook]\nurl = "hooks.slack.com/x"\n', "alerts.toml: alerts.webhook.url:"),
        ('[alerts]\ntimezone = "Mars/Base"\n', "unknown time zone 'Mars/Base'"),
        (GENERIC + 'url = "https://example.org/hook"\n', "alerts.webhook.format: a generic"),
        (SLACK, "alerts.webhook.url: no URL: set CONTENTGEN_ALERT_WEBHOOK_URL"),
        (
            '[alerts.email]\nhost = "smtp"\nsender = "a@b.c"\nto = ["x@y.z"]\nusername = "u"\n',
            "alerts.email.username: set CONTENTGEN_SMTP_PASSWORD",
        ),
        ('[alerts.email]\nhost = "smtp"\nsender = "a@b.c"\nto = ["nobody"]\n', "alerts.email.to"),
    ],
)
def test_alerts_config_errors_are_one_line_naming_file_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    """A wrong alerts.toml is one ConfigError line with the file and the field."""
    (tmp_path / "alerts.toml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_alerts(tmp_path, {})
    message = str(caught.value)
    assert expected in message and str(tmp_path / "alerts.toml") in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[budgets]]\nscope = "desk"\nmatch = "x"\nperiod = "daily"\nlimit_usd = 1\n', "scope"),
        ('[[budgets]]\nscope = "task"\nperiod = "daily"\nlimit_usd = 1\n', "needs a match"),
        ('[[budgets]]\nscope = "all"\nperiod = "weekly"\nlimit_usd = 1\n', "budgets.0.period"),
        ('[[budgets]]\nscope = "all"\nperiod = "daily"\nlimit_usd = -1\n', "budgets.0.limit_usd"),
        (
            '[[budgets]]\nscope = "all"\nperiod = "daily"\nlimit_usd = 1\nsoft_share = 1.5\n',
            "budgets.0.soft_share",
        ),
        ('timezone = "Nowhere"\n', "timezone: unknown time zone"),
    ],
)
def test_budget_config_errors_are_one_line_naming_file_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    """A wrong budgets.toml is one ConfigError line with the file and the field."""
    (tmp_path / "budgets.toml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_budgets(tmp_path)
    message = str(caught.value)
    assert expected in message and str(tmp_path / "budgets.toml") in message
    assert "\n" not in message


def test_cli_run_refuses_a_wrong_alerts_file_before_sending(
    tmp_path: Path, sqlite_url: str
) -> None:
    """`contentgen run` with a broken alerts.toml: exit 2, one line, before anything is sent."""
    config = write_config(tmp_path, alerts="[alerts]\nfailure_rate = 'high'\n")
    result = invoke(
        ["run", "--quiet"],
        {"CONTENTGEN_DATABASE_URL": sqlite_url, "CONTENTGEN_CONFIG_DIR": str(config)},
    )
    assert result.exit_code == 2, result.output
    assert "alerts.toml: alerts.failure_rate:" in result.output


# -- payloads and signature -----------------------------------------------------------------


def test_slack_webhook_gets_text_with_the_runs_figures(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A fatal stop: one Slack message with run id, figures, the cause and the command."""
    run_id = stopped_run(engine)
    with webhook_receiver() as receiver:
        config = write_config(tmp_path, alerts=SLACK)
        env = {"CONTENTGEN_ALERT_WEBHOOK_URL": receiver.url}
        sent = notify_runs(
            settings_for(database_url, config),
            [run_id],
            details={run_id: "401 bad key"},
            environ=env,
        )
    assert [s.event.key for s in sent] == [f"run:{run_id}:fatal"]
    assert len(receiver.received) == 1
    payload = receiver.received[0].json()
    assert list(payload) == ["text"]
    text = payload["text"]
    assert f"nightly run {run_id} failed: an error no request can get past" in text
    assert "Generated 3, failed 0" in text and "Cost $0.0123, forecast $0.0400" in text
    assert "Cause: 401 bad key" in text
    assert f"contentgen report --run {run_id}" in text
    assert SIGNATURE_HEADER not in receiver.received[0].headers


def test_generic_webhook_is_signed_and_the_signature_verifies(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """The generic body carries event and figures; its HMAC header verifies with the secret
    and fails for a changed body, another secret or a stale timestamp."""
    run_id = stopped_run(engine, state="budget", stop_reason="budget", budget_usd=Decimal("0.05"))
    with webhook_receiver() as receiver:
        config = write_config(tmp_path, alerts=GENERIC)
        env = {
            "CONTENTGEN_ALERT_WEBHOOK_URL": receiver.url,
            "CONTENTGEN_ALERT_WEBHOOK_SECRET": SECRET,
        }
        notify_runs(settings_for(database_url, config), [run_id], environ=env)
    (got,) = receiver.received
    body = got.json()
    assert body["event"] == "budget" and body["source"] == "contentgen"
    assert body["figures"]["run_id"] == run_id
    assert Decimal(body["figures"]["budget_usd"]) == Decimal("0.05")
    assert body["figures"]["command"] == f"contentgen report --run {run_id}"
    header = got.headers[SIGNATURE_HEADER]
    assert verify_signature(SECRET, header, got.body)
    assert not verify_signature(SECRET, header, got.body + b" ")
    assert not verify_signature("another-secret", header, got.body)
    stale = sign(SECRET, got.body, 1_000_000)
    assert not verify_signature(SECRET, stale, got.body)
    assert verify_signature(SECRET, stale, got.body, now=1_000_100)


def test_email_reaches_a_real_smtp_server(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """SMTP: the alert arrives as one mail with the subject and the figures."""
    run_id = stopped_run(engine, state="cancelled", stop_reason="cancelled")
    with smtp_sink() as sink:
        alerts = (
            f'[alerts.email]\nhost = "127.0.0.1"\nport = {sink.port}\n'
            'sender = "contentgen@example.org"\nto = ["desk@example.org", "ops@example.org"]\n'
        )
        config = write_config(tmp_path, alerts=alerts)
        sent = notify_runs(settings_for(database_url, config), [run_id], environ={})
    assert [d.sent for d in sent[0].deliveries] == [True]
    (mail,) = sink.mails
    assert mail.recipients == ["desk@example.org", "ops@example.org"]
    assert f"Subject: ContentGen: nightly run {run_id} was cancelled" in mail.data
    assert f"contentgen report --run {run_id}" in mail.data


# -- events and dedupe --------------------------------------------------------------------


def test_an_event_evaluated_twice_is_sent_once(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """The CLI and a flow (or a retried flow) both evaluate a run: one message per event."""
    run_id = stopped_run(
        engine, state="finished", stop_reason=None, succeeded=6, failed=4, cost_usd=Decimal("0.1")
    )
    with webhook_receiver() as receiver:
        config = write_config(tmp_path, alerts=SLACK)
        env = {"CONTENTGEN_ALERT_WEBHOOK_URL": receiver.url}
        settings = settings_for(database_url, config)
        first = notify_runs(settings, [run_id], environ=env)
        second = notify_runs(settings, [run_id], environ=env)
    assert sorted(s.event.message.event for s in first) == ["failure_rate", "over_forecast"]
    assert second == []
    assert len(receiver.received) == 2
    with Session(engine) as session:
        rows = alerts_sent(session, run_id=run_id)
    assert sorted(r.event for r in rows) == ["failure_rate", "over_forecast"]
    assert all("sent (HTTP 200)" in (r.outcome or "") for r in rows)


def test_a_finished_run_and_a_signal_stop_send_nothing(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A clean run and a stop the operator asked for (Ctrl-C) are not alerted."""
    clean = stopped_run(engine, state="finished", stop_reason=None)
    interrupted = stopped_run(engine, state="stopped", stop_reason="signal SIGINT")
    with webhook_receiver() as receiver:
        config = write_config(tmp_path, alerts=SLACK)
        env = {"CONTENTGEN_ALERT_WEBHOOK_URL": receiver.url}
        assert (
            notify_runs(settings_for(database_url, config), [clean, interrupted], environ=env) == []
        )
    assert receiver.received == []


def test_a_failing_channel_is_a_warning_not_an_error(
    database_url: str, engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook answering 500 and an unreachable SMTP server: notify returns, warns, and
    records what happened."""
    run_id = stopped_run(engine, state="failed", stop_reason="error: RuntimeError")
    with webhook_receiver(status=500) as receiver:
        alerts = (
            SLACK
            + '[alerts.email]\nhost = "127.0.0.1"\nport = 9\nsender = "a@b.c"\nto = ["d@e.f"]\n'
        )
        config = write_config(tmp_path, alerts=alerts)
        env = {"CONTENTGEN_ALERT_WEBHOOK_URL": receiver.url}
        with caplog.at_level(logging.WARNING, logger="contentgen.alerts"):
            sent = notify_runs(settings_for(database_url, config), [run_id], environ=env)
    assert [d.sent for d in sent[0].deliveries] == [False, False]
    assert "HTTP 500" in caplog.text and "not sent" in caplog.text
    assert "secret-part" not in caplog.text  # the webhook URL's secret path is never shown


def test_notify_never_raises_on_a_broken_config(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After a run, even a broken alerts.toml only warns: the run's outcome stands."""
    config = write_config(tmp_path, alerts="[alerts\n")
    with caplog.at_level(logging.WARNING, logger="contentgen.alerts"):
        assert notify_runs(settings_for(database_url, config), [1], environ={}) == []
    assert "alerts not evaluated" in caplog.text


# -- the deadline ---------------------------------------------------------------------------


def test_a_missed_nightly_deadline_is_alerted_once(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """No nightly run in the day before 03:30 Berlin: one alert; a run in time: none."""
    alerts = SLACK.replace(
        "[alerts]\n", '[alerts]\nnightly_deadline = "03:30"\ntimezone = "Europe/Berlin"\n'
    )
    config = write_config(tmp_path, alerts=alerts)
    settings = settings_for(database_url, config)
    early = dt.datetime(2026, 12, 8, 2, 0, tzinfo=dt.UTC)  # 03:00 in Berlin
    late = dt.datetime(2026, 12, 8, 3, 0, tzinfo=dt.UTC)  # 04:00 in Berlin
    with webhook_receiver() as receiver:
        env = {"CONTENTGEN_ALERT_WEBHOOK_URL": receiver.url}
        assert check_deadline(settings, now=early, environ=env).status == "not due"
        assert check_deadline(settings, now=late, environ=env).status == "alerted"
        assert check_deadline(settings, now=late, environ=env).status == "alerted before"
        stopped_run(
            engine, state="finished", stop_reason=None, started_at=dt.datetime(2026, 12, 9, 1, 0)
        )
        later = dt.datetime(2026, 12, 9, 3, 0, tzinfo=dt.UTC)
        assert check_deadline(settings, now=later, environ=env).status == "started"
    (got,) = receiver.received
    assert "no nightly run started by 03:30 (Europe/Berlin) on 2026-12-08" in got.json()["text"]


# -- contentgen alerts test -----------------------------------------------------------------


def test_alerts_test_command_exit_codes(tmp_path: Path, sqlite_url: str) -> None:
    """No channel: exit 2 with one line; a working webhook: exit 0 and says sent; a dead one:
    exit 3 and says FAILED; the URL's secret path is never printed."""
    bare = write_config(tmp_path / "bare")
    env = {"CONTENTGEN_DATABASE_URL": sqlite_url, "CONTENTGEN_CONFIG_DIR": str(bare)}
    result = invoke(["alerts", "test"], env)
    assert result.exit_code == 2 and "no alert channel configured" in result.output
    config = write_config(tmp_path, alerts=SLACK)
    with webhook_receiver() as receiver:
        env = {
            **env,
            "CONTENTGEN_CONFIG_DIR": str(config),
            "CONTENTGEN_ALERT_WEBHOOK_URL": receiver.url,
        }
        result = invoke(["alerts", "test"], env)
        assert result.exit_code == 0, result.output
        assert "webhook http://127.0.0.1:" in result.output and ": sent (HTTP 200)" in result.output
        assert "secret-part" not in result.output
        assert "test alert" in receiver.received[0].json()["text"]
        dead_url = receiver.url
    result = invoke(["alerts", "test", "--json"], {**env, "CONTENTGEN_ALERT_WEBHOOK_URL": dead_url})
    assert result.exit_code == 3
    assert json.loads(result.output)[0]["sent"] is False


def test_send_test_reaches_email_and_webhook(tmp_path: Path, sqlite_url: str) -> None:
    """`alerts test` sends to every configured channel."""
    with smtp_sink() as sink, webhook_receiver() as receiver:
        alerts = (
            SLACK
            + f'[alerts.email]\nhost = "127.0.0.1"\nport = {sink.port}\n'
            + 'sender = "a@b.c"\nto = ["d@e.f"]\n'
        )
        config = write_config(tmp_path, alerts=alerts)
        found = send_test(
            settings_for(sqlite_url, config), {"CONTENTGEN_ALERT_WEBHOOK_URL": receiver.url}
        )
    assert [(d.channel, d.sent) for d in found] == [("webhook", True), ("email", True)]
    assert len(sink.mails) == 1 and len(receiver.received) == 1
