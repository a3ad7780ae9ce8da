"""Without Chromium the UI test fails in CI (so a missing install is seen) and skips locally."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.chromium import require_chromium


def test_missing_chromium_fails_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CI=true and no Chromium: a failure that says how to install it."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"bash scripts/browser\.sh"):
        require_chromium(tmp_path / "no-chromium")


def test_missing_chromium_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Outside CI a developer without Chromium gets a skip with the same hint."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install chromium"):
        require_chromium(tmp_path / "no-chromium")
