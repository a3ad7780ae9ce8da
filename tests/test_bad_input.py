"""Bad settings, config files and input stop `contentgen` with one line, before any request.

Each case runs the installed `contentgen` in a subprocess from a folder outside the repository,
with a private copy of config/ that the test breaks and a migrated SQLite database holding a few
queued jobs, as an operator would meet it: exit code 2, exactly one line on stderr naming the
variable, file, line or key, and no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.db.engine import make_engine, session_factory
from pipeline.db.models import Job
from pipeline.errors import ConfigError, DatabaseError
from pipeline.settings import get_settings
from tests.engine_support import ledger_requests, simulator

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "config"
CONTENTGEN = Path(sys.executable).with_name("contentgen")
TASKS = "summary,headline"
ARTICLES = 3
# Nothing listens there: a request that escaped a check would fail, not reach the network.
NOWHERE = "http://127.0.0.1:9/v1"

pytestmark = pytest.mark.slow


def _clean_environment() -> dict[str, str]:
    """The test process's environment without any CONTENTGEN_* or OPENAI_* variable."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CONTENTGEN_", "OPENAI_"))
    }


def _contentgen(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # A narrow terminal: a message that rich wrapped would show up as several lines.
    return subprocess.run(
        [str(CONTENTGEN), *args],
        cwd=cwd,
        env={**env, "COLUMNS": "60"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def queued_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file made by `contentgen db upgrade` and `enqueue`: 3 articles x 2 tasks queued."""
    folder = tmp_path_factory.mktemp("queued")
    path = folder / "t.db"
    articles = folder / "articles.jsonl"
    lines = (REPO_ROOT / "samples" / "articles.jsonl").read_text(encoding="utf-8").splitlines()
    articles.write_text("\n".join(lines[:ARTICLES]) + "\n", encoding="utf-8")
    env = {
        **_clean_environment(),
        "CONTENTGEN_CONFIG_DIR": str(CONFIG_DIR),
        "CONTENTGEN_DATABASE_URL": f"sqlite:///{path}",
        "CONTENTGEN_CACHE_DIR": str(folder / "cache"),
    }
    for args in (["db", "upgrade"], ["enqueue", str(articles), "--tasks", TASKS]):
        done = _contentgen(folder, env, *args)
        assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(path)  # fold the WAL in, so that copying one file copies everything
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path


class Workspace:
    """A working folder outside the repo: a config/ copy to break, a database with queued jobs."""

    def __init__(self, root: Path, template: Path) -> None:
        self.root = root
        self.config = root / "config"
        shutil.copytree(CONFIG_DIR, self.config)
        self.db = root / "t.db"
        shutil.copyfile(template, self.db)
        self.env = {
            **_clean_environment(),
            "CONTENTGEN_CONFIG_DIR": str(self.config),
            "CONTENTGEN_DATABASE_URL": f"sqlite:///{self.db}",
            "CONTENTGEN_CACHE_DIR": str(root / "cache"),
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": NOWHERE,
        }

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """`contentgen ARGS` in the workspace, with ``env`` added to its environment."""
        return _contentgen(self.root, {**self.env, **env}, *args)

    def edit(self, relative: str, old: str, new: str) -> None:
        """Replace ``old`` (which must be there) with ``new`` in a config file."""
        path = self.config / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    def jobs(self) -> list[tuple[str, int]]:
        """(state, attempts) of every job."""
        engine = make_engine(f"sqlite:///{self.db}")
        try:
            with session_factory(engine)() as session:
                rows = session.execute(select(Job.state, Job.attempts).order_by(Job.id))
                return [(state, attempts) for state, attempts in rows]
        finally:
            engine.dispose()


@pytest.fixture
def ws(tmp_path: Path, queued_template: Path) -> Workspace:
    """A fresh workspace for one test."""
    return Workspace(tmp_path, queued_template)


def assert_one_line(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit code 2 and a single `error: ...` line on stderr containing every needle."""
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert done.returncode == 2, (done.returncode, done.stderr)
    return lines[0]


def assert_untouched(ws: Workspace) -> None:
    """Every job still queued and never attempted: nothing was claimed, so nothing was sent."""
    assert ws.jobs() == [("queued", 0)] * (ARTICLES * len(TASKS.split(",")))


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CONTENTGEN_CONCURRENCY", "abc", "must be an integer from 1 to 2048, got 'abc'"),
        ("CONTENTGEN_CONCURRENCY", "0", "must be an integer from 1 to 2048, got '0'"),
        ("CONTENTGEN_CONCURRENCY", "-1", "must be an integer from 1 to 2048, got '-1'"),
        ("CONTENTGEN_MAX_ATTEMPTS", "abc", "must be an integer >= 1, got 'abc'"),
        ("CONTENTGEN_DEADLINE_H", "-1", "must be a number > 0, got '-1'"),
    ],
)
def test_invalid_setting_is_one_line_naming_the_variable(
    ws: Workspace, variable: str, value: str, message: str
) -> None:
    """An invalid CONTENTGEN_* value stops `run` with `VARIABLE: must be ..., got 'value'`."""
    line = assert_one_line(ws.run("run", **{variable: value}))
    assert line == f"error: {variable}: {message}"
    assert_untouched(ws)


@pytest.fixture
def bad_concurrency(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """CONTENTGEN_CONCURRENCY=abc in this process, with the settings cache cleared around it."""
    monkeypatch.setenv("CONTENTGEN_CONCURRENCY", "abc")
    monkeypatch.setenv("CONTENTGEN_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("CONTENTGEN_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("bad_concurrency")
@pytest.mark.parametrize(
    "args",
    [
        ["db", "upgrade"],
        ["db", "current"],
        ["enqueue", str(REPO_ROOT / "samples" / "articles.jsonl"), "--tasks", "summary"],
        ["jobs"],
        ["jobs", "requeue", "--failed"],
        ["run"],
        ["run", "--dry-run"],
        ["batches"],
        ["batches", "poll"],
        ["batches", "cancel", "batch_x"],
        ["prices", "load"],
        ["prices", "list"],
        ["profiles", "check"],
        ["report"],
        ["demo", "--db", "demo.db"],
        ["serve"],
    ],
    ids=" ".join,
)
def test_every_command_reports_a_bad_setting_in_one_line(args: list[str]) -> None:
    """Each command reads the settings inside its error handler: one line, exit code 2."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "error: CONTENTGEN_CONCURRENCY: must be an integer from 1 to 2048, got 'abc'"
    )


@pytest.mark.usefixtures("bad_concurrency")
def test_flows_get_a_config_error() -> None:
    """Flows let the settings' ConfigError propagate (the flow run is marked failed)."""
    from flows.batch import generate_chunk
    from flows.cost_report import cost_report_flow
    from pipeline.run.runner import RunOptions

    with pytest.raises(ConfigError, match="CONTENTGEN_CONCURRENCY: must be an integer"):
        cost_report_flow.fn(days=1)
    with pytest.raises(ConfigError, match="CONTENTGEN_CONCURRENCY: must be an integer"):
        generate_chunk.fn(0, RunOptions(limit=1))


def test_missing_postgres_driver_is_a_database_error_in_flows_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """make_engine turns a missing psycopg into one DatabaseError line naming the extra, so a
    flow run fails with that line too, not with a ModuleNotFoundError traceback."""
    from flows.cost_report import cost_report_flow

    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now fails
    monkeypatch.setenv("CONTENTGEN_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("CONTENTGEN_DATABASE_URL", "postgresql://127.0.0.1:1/none")
    get_settings.cache_clear()
    try:
        expected = r"psycopg driver, which is not installed: pip install 'contentgen\[postgres\]'$"
        with pytest.raises(DatabaseError, match=expected) as raised:
            make_engine("postgresql://127.0.0.1:1/none")
        assert isinstance(raised.value.__cause__, ModuleNotFoundError)
        with pytest.raises(DatabaseError, match=expected):
            cost_report_flow.fn(days=1)
    finally:
        get_settings.cache_clear()


# --- config files -----------------------------------------------------------------------------


def _append_bytes(path: Path, data: bytes) -> None:
    with path.open("ab") as fh:
        fh.write(data)


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines())


def test_non_utf8_profiles_toml_names_file_and_line(ws: Workspace) -> None:
    """A byte that is not UTF-8 in profiles.toml: `FILE: line N: not valid UTF-8`."""
    path = ws.config / "profiles.toml"
    _append_bytes(path, b"\n# caf\xe9\n")
    line = assert_one_line(ws.run("run", "--dry-run"))
    assert line == (f"error: {path}: line {_lines(path)}: not valid UTF-8 (byte 0xe9 at column 6)")


def test_invalid_pricing_toml_names_file_and_line(ws: Workspace) -> None:
    """Malformed TOML in pricing.toml: `FILE: line N: invalid TOML: ...` from tomllib."""
    path = ws.config / "pricing.toml"
    _append_bytes(path, b"\n[[prices]\n")
    line = assert_one_line(ws.run("run"))
    assert line.startswith(f"error: {path}: line {_lines(path)}: invalid TOML: ")
    assert_untouched(ws)


def test_non_utf8_pricing_toml_names_file_and_line(ws: Workspace) -> None:
    """A byte that is not UTF-8 in pricing.toml is one line naming the file and the line."""
    path = ws.config / "pricing.toml"
    _append_bytes(path, b"\n# \xff\n")
    assert_one_line(ws.run("run"), f"{path}: line {_lines(path)}: not valid UTF-8 (byte 0xff")


@pytest.mark.parametrize(
    ("relative", "named_by"),
    [
        ("prompts/summary.md", "profiles.summary"),
        ("contexts/sections/politics.md", "contexts.section_brief"),
    ],
)
def test_non_utf8_prompt_or_context_names_the_file(
    ws: Workspace, relative: str, named_by: str
) -> None:
    """An instructions or context file that is not UTF-8 names itself, its line and its key."""
    path = ws.config / relative
    _append_bytes(path, b"caf\xe9\n")
    assert_one_line(
        ws.run("run", "--dry-run"),
        f"{path}: line {_lines(path)}: not valid UTF-8 (byte 0xe9 at column 4)",
        named_by,
    )


@pytest.mark.parametrize(("content", "kind"), [("[1, 2]", "an array"), ('"x"', "a string")])
def test_schema_that_is_not_an_object_is_refused(ws: Workspace, content: str, kind: str) -> None:
    """Valid JSON that is not an object: `FILE: output schema must be a JSON object`."""
    path = ws.config / "schemas" / "key_points.json"
    path.write_text(content, encoding="utf-8")
    line = assert_one_line(ws.run("run", "--dry-run"))
    assert line == f"error: {path}: output schema must be a JSON object (got {kind})"


# --- requests that must not be sent -----------------------------------------------------------


@pytest.mark.parametrize("brace", ["{", "}"])
def test_job_template_with_a_lone_brace_is_refused_before_sending(
    ws: Workspace, brace: str
) -> None:
    """A lone brace in job_template is refused on load, naming the key; nothing is sent."""
    ws.edit(
        "profiles.toml",
        'job_template = "Write the summary for: {title}"',
        f'job_template = "Write the summary for: {{title}} {brace}"',
    )
    with simulator() as sim:
        done = ws.run("run", OPENAI_BASE_URL=sim.base_url)
        assert_one_line(
            done,
            f"{ws.config / 'profiles.toml'}: profiles.summary.job_template: Single '{brace}'",
        )
        assert sum(ledger_requests(sim).values()) == 0
    assert_untouched(ws)


def test_price_only_in_the_future_is_refused_before_sending(ws: Workspace) -> None:
    """A model whose only price takes effect after today is refused; nothing is sent."""
    ws.edit(
        "pricing.toml",
        'model = "gpt-4.1-mini"\neffective_date = 2025-11-30',
        'model = "gpt-4.1-mini"\neffective_date = 2999-01-01',
    )
    with simulator() as sim:
        done = ws.run("run", OPENAI_BASE_URL=sim.base_url)
        assert_one_line(
            done,
            f"{ws.config / 'pricing.toml'}: model gpt-4.1-mini has no price in effect on ",
            "(its first price takes effect 2999-01-01)",
        )
        assert sum(ledger_requests(sim).values()) == 0
    assert_untouched(ws)


def test_control_the_same_run_with_valid_config_sends(ws: Workspace) -> None:
    """Control for the two tests above: with the shipped config, the same run does send."""
    with simulator() as sim:
        done = ws.run("run", "--quiet", "--json", OPENAI_BASE_URL=sim.base_url)
        assert done.returncode == 0, done.stderr
        assert sum(ledger_requests(sim).values()) > 0
    assert {state for state, _ in ws.jobs()} == {"succeeded"}


# --- input files and usage --------------------------------------------------------------------


def test_deeply_nested_row_is_a_rejected_row(ws: Workspace) -> None:
    """A row nested ~1,000 deep is `FILE:LINE: nested too deeply`; the rest of the file goes on."""
    deep = '{"a": ' * 1000 + "1" + "}" * 1000
    rows = [
        json.dumps({"id": "ok-1", "title": "t", "body": "b"}),
        '{"id": "deep", "title": "t", "body": "b", "metadata": ' + deep + "}",
        "[" * 5000 + "]" * 5000,
        json.dumps({"id": "ok-2", "title": "t", "body": "b"}),
    ]
    path = ws.root / "deep.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    done = ws.run("enqueue", str(path), "--tasks", "summary")
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode == 1, done.stderr
    rejected = [line for line in done.stderr.splitlines() if "nested too deeply" in line]
    assert rejected == [
        f"{path}:2: nested too deeply (more than 64 levels)",
        f"{path}:3: nested too deeply (more than 64 levels)",
    ]
    assert len(ws.jobs()) == ARTICLES * 2 + 2


def test_unknown_option_exits_2_without_a_traceback(ws: Workspace) -> None:
    """Typer's own usage errors keep exit code 2 and print no traceback."""
    done = ws.run("run", "--limit", "abc")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--limit" in done.stderr


def test_settings_error_keeps_its_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    """get_settings translates pydantic's ValidationError, keeping it as the cause."""
    monkeypatch.setenv("CONTENTGEN_DEFAULT_MODE", "fast")
    monkeypatch.setenv("CONTENTGEN_RPM_LIMIT", "0")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as caught:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert str(caught.value) == (
        "CONTENTGEN_RPM_LIMIT: must be an integer >= 1, got '0'; "
        "CONTENTGEN_DEFAULT_MODE: must be one of realtime, flex, batch, auto, got 'fast'"
    )
    assert caught.value.__cause__ is not None
