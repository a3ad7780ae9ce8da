"""Fixtures for the UI tests: the session's Prefect stack (shared with tests/flows)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tests.flows.prefect_stack import PrefectStack, shared_stack


@pytest.fixture
def prefect_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> PrefectStack:
    """The session's real Prefect server with the deployments served (started once)."""
    return shared_stack(request.config, tmp_path_factory)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    """Keep each phase's report on the test item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
