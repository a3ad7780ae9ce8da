"""``contentgen deliver`` and ``contentgen deliveries`` as a user runs them: progress lines,
exit codes (0 nothing failing, 1 versions failing, 2 configuration or usage), the log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from pipeline.cli.main import app
from pipeline.settings import get_settings
from tests.delivery_support import approve_all, generate


@pytest.fixture
def approved(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Two approved summaries; the CLI pointed at their database, no target configured."""
    generate(sqlite_url, tmp_path, n=2, tasks=("summary",))
    approve_all(sqlite_url)
    config = tmp_path / "config"
    config.mkdir()
    for name in ("DELIVERY_WEBHOOK_URL", "DELIVERY_SECRET", "DELIVERY_FOLDER"):
        monkeypatch.delenv(f"CONTENTGEN_{name}", raising=False)
    monkeypatch.setenv("CONTENTGEN_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("CONTENTGEN_CONFIG_DIR", str(config))
    get_settings.cache_clear()
    yield sqlite_url
    get_settings.cache_clear()


def _cli(*args: str) -> Result:
    get_settings.cache_clear()
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_deliver_exit_codes_and_the_delivery_log(
    approved: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No target: exit 2, one line. A folder that cannot be written: exit 1, the versions
    failing with the error in `deliveries`. A good folder with --retry-now: exit 0, sent."""
    none = _cli("deliver")
    assert none.exit_code == 2 and "no delivery target" in none.stderr
    assert "Traceback" not in none.stderr and len(none.stderr.strip().splitlines()) == 1
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("CONTENTGEN_DELIVERY_FOLDER", str(blocker / "cms"))
    failing = _cli("deliver")
    assert failing.exit_code == 1, failing.stdout + failing.stderr
    assert failing.stderr.count("failing nm-2025-") == 2 and "next in 30 s" in failing.stderr
    assert "0 sent, 2 failed" in failing.stdout and "2 failing" in failing.stdout
    log = json.loads(_cli("deliveries", "--state", "failing", "--json").stdout)
    assert [d["attempts"] for d in log["deliveries"]] == [1, 1]
    assert all(str(blocker) in d["last_error"] for d in log["deliveries"])
    assert _cli("deliver").exit_code == 1  # not due yet, still failing
    monkeypatch.setenv("CONTENTGEN_DELIVERY_FOLDER", str(tmp_path / "cms"))
    fixed = _cli("deliver", "--retry-now")
    assert fixed.exit_code == 0, fixed.stdout + fixed.stderr
    assert fixed.stdout.count("sent nm-2025-") == 2 and "2 sent, 0 failed" in fixed.stdout
    assert len(list((tmp_path / "cms").glob("msg_*.json"))) == 2
    table = _cli("deliveries").stdout
    assert "outbox: 0 pending, 0 failing, 2 sent, 0 superseded" in table
    bad = _cli("deliveries", "--state", "lost")
    assert bad.exit_code == 2 and "unknown delivery state(s) lost" in bad.stderr
    both = _cli("deliver", "--once", "--watch")
    assert both.exit_code == 2 and "exclude each other" in both.stderr
