"""Fixtures for the flow tests (the database ones come from tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.flows.prefect_stack import PrefectStack, shared_stack


@pytest.fixture
def prefect_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> PrefectStack:
    """The session's real Prefect server with the deployments served (started once)."""
    return shared_stack(request.config, tmp_path_factory)
