"""The installed `contentgen` script from a directory outside the checkout: packaged config,
`contentgen init`, CONTENTGEN_CONFIG_DIR, and the demo's "Next:" hints run as printed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.settings import packaged_config_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
# The console script installed beside this interpreter (the venv's `contentgen`).
CONTENTGEN = Path(sys.executable).with_name("contentgen")

Run = Callable[..., subprocess.CompletedProcess[str]]


def clean_env(tmp_path: Path) -> dict[str, str]:
    """The environment without any CONTENTGEN_* or OpenAI variable, caches inside tmp_path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONTENTGEN_", "OPENAI_", "PYTEST_"))
    }
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg-state")
    env["COLUMNS"] = "200"
    return env


def runner(tmp_path: Path) -> Run:
    """``run(*args, cwd=..., env={...})``: the real console script, by default in an empty
    folder ``tmp_path/work``, with no CONTENTGEN_*/OpenAI variable unless given."""
    assert CONTENTGEN.exists(), f"{CONTENTGEN}: the contentgen script is not installed"
    work = tmp_path / "work"
    work.mkdir()
    base = clean_env(tmp_path)

    def run(
        *args: str, cwd: Path = work, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CONTENTGEN), *args],
            cwd=cwd,
            env={**base, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def cli(tmp_path: Path) -> Run:
    """The real console script, run in an empty folder under ``tmp_path``."""
    return runner(tmp_path)


def tasks_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The task names `profiles check --json` printed."""
    assert result.returncode == 0, result.stderr
    return sorted(p["task"] for p in json.loads(result.stdout)["profiles"])


def test_packaged_config_is_the_checkouts_config_not_a_copy() -> None:
    """The package's config is the top-level config/ itself (one copy of each file)."""
    assert packaged_config_dir().resolve() == (REPO_ROOT / "config").resolve()


def test_demo_from_an_empty_directory_then_its_hints_run(cli: Run, tmp_path: Path) -> None:
    """`contentgen demo` works where there is no config/, and every "Next:" line it prints
    runs as printed from that directory (exit 0)."""
    work = tmp_path / "work"
    demo = cli("demo", "--quiet", "--tasks", "summary,headline")
    assert demo.returncode == 0, demo.stderr
    assert "to the last digit" in demo.stdout
    lines = demo.stdout.splitlines()
    hints = [line.strip() for line in lines[lines.index("Next:") + 1 :] if line.startswith("  ")]
    assert len(hints) >= 2 and any("contentgen init" in h for h in hints), demo.stdout
    env = clean_env(tmp_path)  # the hints name the script by path when PATH does not find it
    for hint in hints:
        done = subprocess.run(
            hint, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (hint, done.stdout, done.stderr)
    assert (work / "contentgen-demo.db").exists()
    assert (work / "config" / "profiles.toml").exists()  # the init hint wrote it
    assert (work / "demo-results.csv").read_text().count("\n") > 100  # the results hint's file


def test_init_writes_a_copy_that_is_then_used(cli: Run, tmp_path: Path) -> None:
    """`contentgen init` copies the default config, refuses to overwrite it without --force,
    and a change to the copy is what the next command reads (from the parent folder)."""
    work = tmp_path / "work"
    first = cli("init")
    assert first.returncode == 0, first.stderr
    copied = sorted(p.relative_to(work / "config") for p in (work / "config").rglob("*.*"))
    packaged = sorted(
        p.relative_to(packaged_config_dir()) for p in packaged_config_dir().rglob("*.*")
    )
    assert copied == packaged and "CONTENTGEN_CONFIG_DIR=" in first.stdout

    again = cli("init")
    assert again.returncode == 2 and "--force" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert cli("init", "--force").returncode == 0

    profiles = work / "config" / "profiles.toml"
    profiles.write_text(
        profiles.read_text(encoding="utf-8")
        .replace("[profiles.summary", "[profiles.digest")  # the profile and its checks
        .replace('follows = "summary"', 'follows = "digest"'),  # the grader
        encoding="utf-8",
    )
    assert tasks_of(cli("profiles", "check", "--json")) == [
        "digest",
        "fact_check",
        "grade_summary",
        "headline",
        "key_points",
    ]
    demo = cli("demo", "--quiet", "--json", "--tasks", "digest")
    assert demo.returncode == 0, demo.stderr
    assert json.loads(demo.stdout)["succeeded"] == 36


def test_config_dir_variable_wins_over_local_config(cli: Run, tmp_path: Path) -> None:
    """CONTENTGEN_CONFIG_DIR is read even where ./config exists."""
    work = tmp_path / "work"
    assert cli("init").returncode == 0
    shutil.rmtree(work / "config" / "prompts")  # ./config is now broken: it must not be read
    other = tmp_path / "elsewhere"
    assert cli("init", str(other)).returncode == 0
    env = {"CONTENTGEN_CONFIG_DIR": str(other)}
    assert "summary" in tasks_of(cli("profiles", "check", "--json", env=env))
    broken = cli("profiles", "check", "--json")
    assert broken.returncode == 2 and "summary.md" in broken.stderr


def test_missing_postgres_driver_names_the_extra(cli: Run, tmp_path: Path) -> None:
    """A postgresql:// URL without psycopg installed is one line naming the extra, exit 2."""
    blocker = tmp_path / "no-psycopg" / "psycopg"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        'raise ModuleNotFoundError("No module named \'psycopg\'", name="psycopg")\n'
    )
    env = {
        "PYTHONPATH": str(blocker.parent),
        "CONTENTGEN_DATABASE_URL": "postgresql://127.0.0.1:1/none",
    }
    for args in (["jobs"], ["db", "upgrade"], ["results"], ["run", "--dry-run"]):
        result = cli(*args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip() == (
            "error: PostgreSQL URLs need the psycopg driver, which is not installed: "
            "pip install 'contentgen[postgres]'"
        ), args
    extras = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '\npostgres = ["psycopg' in extras
