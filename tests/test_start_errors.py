"""What cannot work is said in one line at start, exit 2, before any request is sent.

A journal folder that cannot be written (a path through a file, a read-only or full file
system), a response-cache folder that cannot be made, a database ContentGen does not speak,
and an API key no HTTP request can carry all used to end in 60-90 line tracebacks or, for the
key, in an "outage" two minutes later (issue 23). The real console script runs from an empty
folder; the simulator's ledger proves nothing was sent.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.settings import get_settings
from pipeline.simulator.server import SimulatorServer
from tests.edge_support import cli_env, lines, on_tmpfs
from tests.engine_support import engine_settings, ledger_requests, seed, simulator


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    """One simulator for the module."""
    with simulator() as server:
        yield server


@pytest.fixture
def env(sqlite_url: str, sim: SimulatorServer, tmp_path: Path, engine: Engine) -> dict[str, str]:
    """A queue of 3 jobs and the environment of a `contentgen run` against it."""
    seed(engine, ["summary"], n=3)
    settings = engine_settings(sqlite_url, sim, tmp_path)
    return cli_env(settings, tmp_path)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    """The module's tests need SQLite only: the checks run before the database is used."""
    from pipeline.db import make_engine

    eng = make_engine(sqlite_url)
    yield eng
    eng.dispose()


def sent(sim: SimulatorServer) -> int:
    """Requests the simulator has seen so far."""
    return sum(ledger_requests(sim).values())


def one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The one line the command printed on stderr, checked to hold ``needles``; exit 2."""
    assert result.returncode == 2, result.stdout + result.stderr
    err = lines(result.stderr)
    assert len(err) == 1, result.stderr
    for needle in needles:
        assert needle in err[0], err[0]
    assert "Traceback" not in result.stderr
    return err[0]


@pytest.mark.parametrize(
    ("variable", "value", "needles"),
    [
        pytest.param(
            "CONTENTGEN_JOURNAL_DIR",
            "/dev/null/x",
            ("CONTENTGEN_JOURNAL_DIR", "Not a directory"),
            id="journal-through-a-file",
        ),
        pytest.param(
            "CONTENTGEN_CACHE_DIR",
            "/dev/null/x",
            ("CONTENTGEN_CACHE_DIR", "/dev/null/x", "Not a directory"),
            id="cache-through-a-file",
        ),
        pytest.param(
            "CONTENTGEN_DATABASE_URL",
            "mysql://editor:hunter2@db.example/news",
            ("CONTENTGEN_DATABASE_URL", "mysql is not supported", "sqlite:///", "postgresql://"),
            id="mysql-url",
        ),
        pytest.param("OPENAI_API_KEY", " ", ("OPENAI_API_KEY is blank",), id="blank-key"),
        pytest.param(
            "OPENAI_API_KEY",
            "sk-abc\ndef",
            ("OPENAI_API_KEY", "not printable ASCII"),
            id="key-with-a-line-break",
        ),
    ],
)
def test_unusable_setting_is_one_line_exit_2_and_nothing_sent(
    env: dict[str, str],
    sim: SimulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    needles: tuple[str, ...],
) -> None:
    """Each unusable setting: one line naming it, exit 2, no request sent, no secret shown.

    `contentgen run` in this process (the checks are the CLI's and the library's own; the
    tests with a file system of their own below run the console script)."""
    for name, setting in {**env, variable: value}.items():
        if name.startswith(("CONTENTGEN_", "OPENAI_", "XDG_")):
            monkeypatch.setenv(name, setting)
    get_settings.cache_clear()
    before = sent(sim)
    try:
        result = CliRunner().invoke(app, ["run", "-q"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    err = lines(result.stderr)
    assert len(err) == 1, result.stderr
    assert all(needle in err[0] for needle in needles), err[0]
    assert "hunter2" not in err[0] and "sk-abc" not in err[0]
    assert sent(sim) == before


@pytest.mark.parametrize(
    ("options", "fill", "needle"),
    [
        pytest.param("ro,size=1m", False, "Read-only file system", id="read-only"),
        pytest.param("size=64k", True, "No space left on device", id="full"),
    ],
)
def test_journal_on_a_read_only_or_full_file_system_stops_before_sending(
    env: dict[str, str],
    sim: SimulatorServer,
    tmp_path: Path,
    options: str,
    fill: bool,
    needle: str,
) -> None:
    """A tmpfs mounted read-only, or filled up, as the journal folder: one line, exit 2."""
    before = sent(sim)
    mount = tmp_path / "journal-fs"
    result = on_tmpfs(
        mount,
        options,
        ["run", "-q"],
        {**env, "CONTENTGEN_JOURNAL_DIR": str(mount)},
        tmp_path,
        fill=fill,
    )
    one_error_line(result, "CONTENTGEN_JOURNAL_DIR", needle)
    assert sent(sim) == before
