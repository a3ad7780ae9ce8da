"""``contentgen serve``: refuses to start without a Prefect server to talk to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.flows.support import REPO

CONTENTGEN = str(Path(sys.executable).with_name("contentgen"))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTENTGEN_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), **extra)
    return env


def test_serve_without_prefect_api_url_says_how_to_set_it(tmp_path: Path) -> None:
    """No PREFECT_API_URL: one line saying how to start a server, exit code 2."""
    result = subprocess.run(
        [CONTENTGEN, "serve"],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "PREFECT_API_URL is not set" in result.stderr
    assert "prefect server start" in result.stderr


def test_serve_with_a_bad_time_zone_names_the_setting(tmp_path: Path) -> None:
    """A bad CONTENTGEN_TIMEZONE fails before anything is registered, naming the variable."""
    result = subprocess.run(
        [CONTENTGEN, "serve"],
        cwd=REPO,
        env=_env(
            tmp_path,
            PREFECT_API_URL="http://127.0.0.1:9/api",
            CONTENTGEN_TIMEZONE="Mars/Olympus",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CONTENTGEN_TIMEZONE='Mars/Olympus'" in result.stderr
    assert "Serving" not in result.stdout
