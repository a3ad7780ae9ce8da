"""Profile versions: a hash of exactly what shapes a task's requests, and the config that
declares checks, review and graders."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.prompts import Profile, load_profiles, version_label
from tests.conftest import CONFIG_DIR


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A copy of the shipped config to edit."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    return target


def versions(config: Path) -> dict[str, str]:
    return {task: p.version for task, p in load_profiles(config).items()}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_version_is_stable_and_shown_short() -> None:
    """The same config gives the same 64-hex version; people see task@7 characters."""
    first, second = versions(CONFIG_DIR), versions(CONFIG_DIR)
    assert first == second
    assert all(len(v) == 64 for v in first.values())
    summary = load_profiles(CONFIG_DIR)["summary"]
    assert summary.version_label == f"summary@{summary.version[:7]}"
    assert version_label("summary", None) == "summary@?"


@pytest.mark.parametrize(
    ("file", "old", "new", "changed"),
    [
        ("prompts/summary.md", "Write two or three", "Write two", {"summary"}),
        ("prompts/headline.md", "at most 12 words", "at most 10 words", {"headline"}),
        (
            "contexts/sections/sport.md",
            "",
            "One more line.\n",
            {"summary", "headline", "key_points"},
        ),
        (
            "contexts/style_guide.md",
            "# Newsroom",
            "# The newsroom",
            {"summary", "headline", "key_points", "fact_check"},
        ),
        (
            "checks/banned.txt",
            "shocking",
            "shocking\nsensational",
            {"summary", "headline", "key_points"},
        ),
        ("profiles.toml", "max_words = 12", "max_words = 11", {"headline"}),
        ("profiles.toml", "temperature = 0.3", "temperature = 0.4", {"summary"}),
        (
            "profiles.toml",
            'reasoning_effort = "low"',
            'reasoning_effort = "medium"',
            {"fact_check"},
        ),
    ],
)
def test_a_change_makes_new_versions_of_exactly_the_tasks_it_shapes(
    config: Path, file: str, old: str, new: str, changed: set[str]
) -> None:
    """Instructions, contexts (shared or per section), banned words, checks and sampling each
    change the version of the tasks that use them, and of no other task."""
    before = versions(config)
    path = config / file
    if old:
        edit(path, old, new)
    else:
        path.write_text(path.read_text(encoding="utf-8") + new, encoding="utf-8")
    after = versions(config)
    assert {task for task in before if before[task] != after[task]} == changed


def test_transport_and_review_settings_keep_the_version() -> None:
    """Tier (realtime, flex, batch), streaming, store, caches, review and enabled are not part
    of what a request asks, so outputs made under them are not stale."""
    profile: Profile = load_profiles(CONFIG_DIR)["summary"]
    for changed in (
        replace(profile, service_tier="flex"),
        replace(profile, stream=True),
        replace(profile, review="none", enabled=False),
        replace(profile, prompt_cache_lifetime="default", accounting_key="none"),
    ):
        assert changed.version == profile.version
    assert replace(profile, max_output_tokens=301).version != profile.version


def test_shipped_config_declares_checks_review_and_an_off_grader() -> None:
    """Headlines retry once, fact checks need no editor, the summary grader is off."""
    profiles = load_profiles(CONFIG_DIR)
    headline = profiles["headline"].checks
    assert headline is not None and headline.retries == 1 and headline.max_words == 12
    assert "shocking" in headline.banned
    assert profiles["fact_check"].review == "none"
    grader = profiles["grade_summary"]
    assert grader.grader is not None and not grader.enabled and grader.follows == "summary"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[profiles.g]\nmodel = "gpt-4.1-mini"\ninstructions = "x"\n'
            'output_schema_file = "schemas/grade.json"\n[profiles.g.grader]\n',
            "a grader follows the task it grades",
        ),
        (
            '[profiles.g]\nmodel = "gpt-4.1-mini"\ninstructions = "x"\nfollows = "summary"\n'
            'output_schema_file = "schemas/grade.json"\n[profiles.g.grader]\n'
            'criteria = ["accurate", "kind"]\n',
            "['kind'] are not properties of schemas/grade.json",
        ),
        (
            '[profiles.g]\nmodel = "gpt-4.1-mini"\ninstructions = "x"\n'
            '[profiles.g.checks]\nbanned_file = "checks/nope.txt"\n',
            "profiles.g.checks.banned_file: file not found",
        ),
        (
            '[profiles.g]\nmodel = "gpt-4.1-mini"\ninstructions = "x"\n'
            '[profiles.g.checks]\non_fail = "shout"\n',
            "on_fail",
        ),
    ],
)
def test_bad_editorial_config_is_one_line_naming_the_place(
    config: Path, toml: str, message: str, capsys: Callable[..., object]
) -> None:
    """A grader without its parent or criteria, a missing banned file or a bad on_fail is a
    config error naming the file and key."""
    with (config / "profiles.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n" + toml)
    with pytest.raises(ConfigError) as err:
        load_profiles(config)
    assert message in str(err.value)
    assert "profiles.toml" in str(err.value)
