"""CLI conventions through the real `contentgen` script: --version, one-line usage errors,
unknown tasks, unknown CONTENTGEN_* variables, an empty queue, short flags, money."""

from __future__ import annotations

import re
from decimal import Decimal
from importlib import metadata
from pathlib import Path

import pytest
import typer
import typer._click as click

from pipeline.cli.common import validate_task_names
from pipeline.cli.main import app
from pipeline.errors import InputError
from pipeline.money import format_usd
from pipeline.settings import unknown_variables
from tests.test_cli_anywhere import Run, runner

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "articles.jsonl"


@pytest.fixture
def cli(tmp_path: Path) -> Run:
    """The real console script, run in an empty folder under ``tmp_path``."""
    return runner(tmp_path)


def test_version_comes_from_the_package_metadata(cli: Run) -> None:
    """`contentgen --version` prints the installed distribution's version."""
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"contentgen {metadata.version('contentgen')}"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "--bogus"], "No such option: --bogus"),
        (["enqueue"], "Missing argument 'FILE'"),
        (["run", "--limit", "abc"], "Invalid value for '--limit'"),
        (["run", "--limit", "0"], "Invalid value for '--limit'"),
        (["no-such-command"], "No such command 'no-such-command'"),
        (["jobs", "requeue", "--tasks"], "Option '--tasks' requires an argument"),
    ],
)
def test_usage_error_is_one_line_exit_2(cli: Run, args: list[str], says: str) -> None:
    """A usage error is one `error:` line on stderr pointing at --help, exit 2, no panel."""
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines
    assert "--help`)" in lines[0] and "╭" not in result.stderr and result.stdout == ""


def test_unknown_task_is_exit_2_naming_the_known(cli: Run, tmp_path: Path) -> None:
    """An unknown task name stops `run`, `jobs`, `enqueue`, `demo` and `results` before any work."""
    env = {"CONTENTGEN_DATABASE_URL": f"sqlite:///{tmp_path / 'migrated.db'}"}
    assert cli("db", "upgrade", env=env).returncode == 0
    for args in (
        ["run", "--tasks", "nope,summary"],
        ["run", "-t", "nope", "--dry-run"],
        ["jobs", "--tasks", "nope"],
        ["jobs", "requeue", "--failed", "-t", "nope"],
        ["enqueue", str(SAMPLES), "--tasks", "nope"],
        ["demo", "--tasks", "nope"],
        ["results", "-t", "nope,summary"],
        ["results", "--tasks", "summary", "--tasks", "nope", "--format", "csv"],
        ["jobs", "regenerate", "-t", "nope"],
        ["jobs", "regenerate", "--task", "nope", "--dry-run"],
    ):
        result = cli(*args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: unknown task(s) nope:"), lines
        assert "fact_check, grade_summary, headline, key_points, summary" in lines[0]


def test_validate_task_names() -> None:
    """The shared helper accepts known names and nothing, and names the unknown ones."""
    validate_task_names([], ["summary"])
    validate_task_names(["summary"], ["summary", "headline"])
    with pytest.raises(InputError, match=r"unknown task\(s\) a, b: the known tasks are x, y$"):
        validate_task_names(["a", "x", "b"], ["y", "x"])


def test_unknown_variable_is_a_warning_with_the_closest_name(cli: Run) -> None:
    """A misspelt CONTENTGEN_ variable warns on stderr with the name it probably meant."""
    result = cli("profiles", "check", "--json", env={"CONTENTGEN_DATABSE_URL": "sqlite:///x.db"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == (
        "warning: unknown variable CONTENTGEN_DATABSE_URL is ignored; "
        "did you mean CONTENTGEN_DATABASE_URL?"
    )


def test_known_and_foreign_variables_are_not_warned_about() -> None:
    """Settings, their aliases, the simulator's prefix and the other readers are known."""
    environ = {
        "CONTENTGEN_DATABASE_URL": "x",
        "CONTENTGEN_OPENAI_API_KEY": "x",
        "CONTENTGEN_SIM_TPM": "1",
        "CONTENTGEN_MAX_BODY_CHARS": "9",
        "CONTENTGEN_TEST_PG_URL": "x",
        "CONTENTGEN_HOME": "/x",
        "CONTENTGEN_CONCURENCY": "3",
        "CONTENTGEN_ZZZZZZZZZZZZZZZZ": "3",
        "OTHER_THING": "x",
    }
    assert unknown_variables(environ) == [
        ("CONTENTGEN_CONCURENCY", "CONTENTGEN_CONCURRENCY"),
        ("CONTENTGEN_ZZZZZZZZZZZZZZZZ", None),
    ]


def test_empty_queue_says_so(cli: Run, tmp_path: Path) -> None:
    """`jobs`, `run` and `run --dry-run` on an empty queue say "nothing queued", no table."""
    env = {
        "CONTENTGEN_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
        "OPENAI_API_KEY": "sk-unused",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # never called: nothing to send
    }
    assert cli("db", "upgrade", env=env).returncode == 0
    for args in (
        ["jobs"],
        ["run"],
        ["run", "--quiet"],
        ["run", "--dry-run"],
    ):
        result = cli(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert "nothing queued" in result.stdout and "┃" not in result.stdout, result.stdout
        assert "│" not in result.stdout, (args, result.stdout)
        assert "done 0" not in result.stderr, (args, result.stderr)  # no progress of nothing
    # A label no job ever carried is a typo, not an empty queue (issue 22).
    typo = cli("run", "-q", "-b", "x", env=env)
    assert typo.returncode == 2 and "no job carries a batch label yet" in typo.stderr


def test_short_flags_mean_the_same_everywhere() -> None:
    """A short flag means one thing in every command: -t tasks, -b batch, -q quiet, -n a
    count, and any other (e.g. -o) the same long option wherever it appears."""
    families = {"-n": {"--limit", "--requests"}}
    uses: dict[str, set[str]] = {}
    seen: set[str] = set()

    def visit(command: click.Command, path: str) -> None:
        for param in command.params:
            longs = {o for o in param.opts if o.startswith("--")}
            for short in (o for o in param.opts if len(o) == 2):
                uses.setdefault(short, set()).update(longs)
                seen.add(f"{path} {short}")
        for name, sub in getattr(command, "commands", {}).items():
            visit(sub, f"{path} {name}")

    visit(typer.main.get_command(app), "contentgen")
    for short, longs in uses.items():
        assert longs <= families.get(short, longs) and (short in families or len(longs) == 1), (
            short,
            longs,
        )
    assert uses["-t"] == {"--tasks"} and uses["-b"] == {"--batch"} and uses["-q"] == {"--quiet"}
    for expected in ("run -t", "run -b", "run -q", "run -n", "demo -t", "demo -q"):
        assert f"contentgen {expected}" in seen
    for command in ("enqueue", "jobs", "jobs requeue", "jobs regenerate", "results"):
        assert {f"contentgen {command} -t", f"contentgen {command} -b"} <= seen


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0", "$0.00"),
        ("0.2963505", "$0.2964"),
        ("1234.56789", "$1,234.5679"),
        ("0.0012345", "$0.001234"),
        ("-0.03", "-$0.0300"),
    ],
)
def test_format_usd(value: str, text: str) -> None:
    """Money for people: four decimals, six below a cent, $0.00 for nothing."""
    assert format_usd(Decimal(value)) == text


def test_run_summary_prints_money_with_few_decimals(cli: Run, tmp_path: Path) -> None:
    """The demo's summary table shows costs as $0.1234, not a ten-decimal Decimal."""
    result = cli("demo", "--quiet", "--tasks", "headline")
    assert result.returncode == 0, result.stderr
    costs = re.findall(r"cost usd\s*│\s*(\S+)", result.stdout)
    assert costs and all(re.fullmatch(r"\$\d+\.\d{4,6}", c) for c in costs), result.stdout
