"""Deployments: the nightly schedule from settings, concurrency 1, and prefect.yaml in step."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from prefect.flows import Flow, load_flow_from_entrypoint

from flows.deployments import build_deployments
from pipeline.errors import ConfigError
from pipeline.settings import Settings
from tests.flows.support import REPO


def _by_name(settings: Settings) -> dict[str, Any]:
    return {d.name: d for d in build_deployments(settings)}


def test_nightly_runs_on_the_configured_cron_in_the_configured_time_zone() -> None:
    """The schedule is a Cron with an explicit time zone from settings, one run at a time."""
    nightly = _by_name(Settings(timezone="Europe/Berlin", nightly_cron="30 1 * * *"))["nightly"]
    (schedule,) = nightly.schedules
    assert schedule.schedule.cron == "30 1 * * *"
    assert schedule.schedule.timezone == "Europe/Berlin"
    assert schedule.active
    assert nightly.concurrency_limit == 1
    assert nightly.paused is False


def test_adhoc_and_cost_report_are_unscheduled_and_loaded_by_module_path() -> None:
    """Only the nightly deployment has a schedule; entrypoints are importable module paths."""
    deployments = _by_name(Settings())
    assert deployments["adhoc"].schedules == []
    assert deployments["cost-report"].schedules == []
    for deployment in deployments.values():
        assert isinstance(load_flow_from_entrypoint(deployment.entrypoint), Flow)
        assert ":" not in deployment.entrypoint


@pytest.mark.parametrize(
    ("cron", "timezone", "bad"),
    [("0 2 * *", "UTC", "cron"), ("0 2 * * *", "Mars/Olympus", "timezone")],
)
def test_a_bad_schedule_is_a_config_error_naming_the_setting(
    cron: str, timezone: str, bad: str
) -> None:
    """A bad cron or time zone fails before serving, naming the CONTENTGEN_* variables."""
    with pytest.raises(ConfigError, match="CONTENTGEN_NIGHTLY_CRON") as info:
        build_deployments(Settings(nightly_cron=cron, timezone=timezone))
    assert bad in str(info.value).lower()


def test_prefect_yaml_declares_the_same_deployments() -> None:
    """prefect.yaml (work pools) matches what `contentgen serve` serves with default settings."""
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    declared = {d["name"]: d for d in spec["deployments"]}
    served = _by_name(Settings())
    assert set(declared) == set(served)
    defaults = Settings.model_fields
    nightly = declared["nightly"]
    (schedule,) = nightly["schedules"]
    assert schedule["cron"] == defaults["nightly_cron"].default
    assert schedule["timezone"] == defaults["timezone"].default
    assert nightly["concurrency_limit"] == 1
    for name, deployment in declared.items():
        assert deployment["entrypoint"] == served[name].entrypoint
        assert deployment["work_pool"]["name"] == "contentgen"
        if name != "nightly":
            assert "schedules" not in deployment


def test_a_nightly_deadline_adds_a_scheduled_deadline_check(tmp_path: Any) -> None:
    """alerts.toml's nightly_deadline: a fourth deployment runs the check daily at that time,
    in the alerts' time zone (else CONTENTGEN_TIMEZONE); without it there are three."""
    (tmp_path / "alerts.toml").write_text('[alerts]\nnightly_deadline = "03:45"\n')
    served = _by_name(Settings(config_dir=tmp_path, timezone="Europe/Berlin"))
    check = served["deadline-check"]
    (schedule,) = check.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("45 3 * * *", "Europe/Berlin")
    assert isinstance(load_flow_from_entrypoint(check.entrypoint), Flow)
    (tmp_path / "alerts.toml").write_text(
        '[alerts]\nnightly_deadline = "23:05"\ntimezone = "America/New_York"\n'
    )
    (schedule,) = _by_name(Settings(config_dir=tmp_path))["deadline-check"].schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == (
        "5 23 * * *",
        "America/New_York",
    )
    assert "deadline-check" not in _by_name(Settings())
