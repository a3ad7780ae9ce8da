"""config/ is data: profiles and prices are validated, and errors name the file and the key."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.db.models import Price
from pipeline.db.prices import sync_prices
from pipeline.errors import ConfigError, PricingError, TemplateError
from pipeline.money.pricing import load_pricing
from pipeline.prompts.profiles import load_profiles
from pipeline.prompts.tokens import count_tokens
from pipeline.run.config import load_config
from pipeline.settings import Settings

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config"
SECTIONS = ("politics", "business", "sport", "science", "culture", "world")


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A private copy of the repository's config/ that a test may edit."""
    target = tmp_path / "config"
    shutil.copytree(REPO_CONFIG, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must be there) with ``new`` in ``path``."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_shipped_config_loads() -> None:
    """The repository's profiles and prices are valid and every profile's model has a price."""
    profiles = load_profiles(REPO_CONFIG)
    prices = load_pricing(REPO_CONFIG / "pricing.toml")
    assert {"summary", "headline", "key_points", "fact_check"} <= set(profiles)
    for profile in profiles.values():
        assert prices.knows(profile.model), profile.model


def test_shared_prefix_is_long_enough_to_be_cached() -> None:
    """Instructions + style guide + a section brief pass OpenAI's 1,024-token cache minimum."""
    profile = load_profiles(REPO_CONFIG)["summary"]
    for section in (*SECTIONS, None):
        shared = [profile.instructions] + [c.for_section(section) or "" for c in profile.contexts]
        assert count_tokens("\n\n".join(shared), profile.model) >= 1024, section
    brief = next(c for c in profile.contexts if c.by_section)
    assert set(SECTIONS) <= set(brief.by_section)
    assert brief.fallback is not None


def test_unknown_profile_key_names_file_and_key(config_dir: Path) -> None:
    """A typo in a profile is refused, naming the file and the dotted key."""
    edit(
        config_dir / "profiles.toml",
        "max_output_tokens = 300",
        "max_output_tokens = 300\ncolour = 1",
    )
    with pytest.raises(ConfigError) as caught:
        load_profiles(config_dir)
    message = str(caught.value)
    assert str(config_dir / "profiles.toml") in message
    assert "profiles.summary.colour: unknown key" in message


def test_wrong_type_names_the_key(config_dir: Path) -> None:
    """A value of the wrong type names its key."""
    edit(config_dir / "profiles.toml", "max_output_tokens = 300", 'max_output_tokens = "lots"')
    with pytest.raises(ConfigError, match=r"profiles\.summary\.max_output_tokens"):
        load_profiles(config_dir)


def test_reasoning_profile_with_temperature_is_refused(config_dir: Path) -> None:
    """o-series models reject temperature, so the config may not set one."""
    edit(
        config_dir / "profiles.toml",
        'reasoning_effort = "low"',
        'reasoning_effort = "low"\ntemperature = 0.2',
    )
    with pytest.raises(ConfigError, match=r"profiles\.fact_check: .*reasoning model"):
        load_profiles(config_dir)


def test_per_job_value_in_shared_part_is_refused(config_dir: Path) -> None:
    """A {title} in the instructions would make every prompt's prefix different."""
    edit(
        config_dir / "prompts" / "headline.md",
        "You write the headline",
        "You write the headline for {title}",
    )
    with pytest.raises(TemplateError) as caught:
        load_profiles(config_dir)
    assert "profiles.toml" in str(caught.value) and "headline" in str(caught.value)


@pytest.mark.parametrize(
    "parts",
    [
        '["job", "instructions", "contexts", "article"]',
        '["instructions", "article", "contexts", "job"]',
    ],
)
def test_layout_with_per_job_or_article_before_shared_part_is_refused(
    config_dir: Path, parts: str
) -> None:
    """The per-job part must come last and the article after the shared contexts."""
    edit(
        config_dir / "profiles.toml",
        'job_template = "Write the summary',
        f'parts = {parts}\njob_template = "Write the summary',
    )
    with pytest.raises(TemplateError, match="profile 'summary'"):
        load_profiles(config_dir)


def test_missing_context_file_names_it(config_dir: Path) -> None:
    """A profile pointing at a file that is not there says which file and where."""
    (config_dir / "contexts" / "style_guide.md").unlink()
    with pytest.raises(ConfigError, match=r"contexts\.style_guide: file not found"):
        load_profiles(config_dir)


def test_invalid_toml_is_one_error(config_dir: Path) -> None:
    """Broken TOML is reported with the file and line, not as a traceback from tomllib."""
    (config_dir / "profiles.toml").write_text("[profiles.summary\nmodel = 1\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"profiles\.toml: line 1: invalid TOML: .* \(column \d+\)"
    ):
        load_profiles(config_dir)


def test_unfinished_toml_names_the_last_line(config_dir: Path) -> None:
    """TOML cut short ("at end of document" to tomllib) names the file's last line."""
    path = config_dir / "pricing.toml"
    lines = len(path.read_text(encoding="utf-8").splitlines())
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n[[prices]]\nmodel = [1,\n")
    with pytest.raises(ConfigError) as caught:
        load_pricing(path)
    assert str(caught.value) == (
        f"{path}: line {lines + 3}: invalid TOML: Invalid value (at the end)"
    )


@pytest.mark.parametrize("name", ["profiles.toml", "pricing.toml"])
def test_non_utf8_toml_names_file_line_and_byte(config_dir: Path, name: str) -> None:
    """Bytes that are not UTF-8 are one ConfigError with the line, not a UnicodeDecodeError."""
    path = config_dir / name
    path.write_bytes(b"# prices\n# caf\xe9\n" + path.read_bytes())
    with pytest.raises(ConfigError) as caught:
        load_profiles(config_dir) if name == "profiles.toml" else load_pricing(path)
    assert str(caught.value) == f"{path}: line 2: not valid UTF-8 (byte 0xe9 at column 6)"


def test_non_utf8_section_brief_names_the_file(config_dir: Path) -> None:
    """A per-section context file that is not UTF-8 names itself and the context."""
    path = config_dir / "contexts" / "sections" / "sport.md"
    path.write_bytes(b"\xff\n")
    with pytest.raises(ConfigError) as caught:
        load_profiles(config_dir)
    assert str(caught.value).startswith(f"{path}: line 1: not valid UTF-8 (byte 0xff at column 1)")
    assert "contexts.section_brief" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "output schema must be a JSON object (got an array)"),
        ('"x"', "output schema must be a JSON object (got a string)"),
        ("3", "output schema must be a JSON object (got a number)"),
        ('{"type": "object",\n', "line 2: invalid JSON: Expecting property name enclosed in"),
        ('{"type": 5}', "output schema is invalid at $.type: 5 is not valid under any of"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ],
)
def test_bad_output_schema_names_the_file(config_dir: Path, content: str, message: str) -> None:
    """A schema file must be a JSON object and a valid JSON Schema; errors name the file."""
    path = config_dir / "schemas" / "key_points.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_profiles(config_dir)
    assert str(caught.value).startswith(f"{path}: {message}")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("Summarise {title} {", "Single '{' encountered in format string"),
        ("Summarise {title} }", "Single '}' encountered in format string"),
        ("Summarise {title", "expected '}' before end of string"),
        ("Summarise {author}", "uses unknown field(s) ['author']"),
        ("Summarise {0}", "uses unknown field(s) ['0']"),
        ("Summarise {title.upper.x}", "cannot be formatted"),
        ("Summarise {title:d}", "cannot be formatted: Unknown format code 'd'"),
        ("Summarise {title!z}", "cannot be formatted"),
    ],
)
def test_job_template_that_cannot_be_formatted_is_refused_on_load(
    config_dir: Path, template: str, problem: str
) -> None:
    """A job_template str.format would fail on is refused when profiles.toml is loaded."""
    edit(
        config_dir / "profiles.toml",
        'job_template = "Write the summary for: {title}"',
        f"job_template = {json.dumps(template)}",
    )
    with pytest.raises(ConfigError) as caught:
        load_profiles(config_dir)
    prefix = f"{config_dir / 'profiles.toml'}: profiles.summary.job_template: "
    assert str(caught.value).startswith(prefix)
    assert problem in str(caught.value)


@pytest.mark.parametrize("template", ["Use {{braces}} for {title}", "{section}/{task}: {url}"])
def test_job_template_with_escaped_braces_loads(config_dir: Path, template: str) -> None:
    """Doubled braces are literal braces; every JOB_FIELDS placeholder is accepted."""
    edit(
        config_dir / "profiles.toml",
        'job_template = "Write the summary for: {title}"',
        f"job_template = {json.dumps(template)}",
    )
    assert load_profiles(config_dir)["summary"].job_template == template


def _config_settings(config_dir: Path, tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'never-opened.db'}",
        config_dir=config_dir,
        cache_dir=tmp_path / "cache",
    )


def test_price_only_in_the_future_is_refused(config_dir: Path, tmp_path: Path) -> None:
    """A model whose first price takes effect after today cannot be priced when it answers."""
    path = config_dir / "pricing.toml"
    edit(
        path,
        'model = "gpt-4.1-mini"\neffective_date = 2025-11-30',
        'model = "gpt-4.1-mini"\neffective_date = 2027-01-01',
    )
    with pytest.raises(PricingError) as caught:
        load_config(_config_settings(config_dir, tmp_path), today=dt.date(2026, 12, 1))
    assert str(caught.value) == (
        f"{path}: model gpt-4.1-mini has no price in effect on 2026-12-01 "
        "(its first price takes effect 2027-01-01)"
    )


def test_flex_price_only_in_the_future_is_refused_for_a_flex_profile(
    config_dir: Path, tmp_path: Path
) -> None:
    """A flex profile needs a flex price in effect today, not only a future one."""
    path = config_dir / "pricing.toml"
    flex_row = 'flex = { input = "0.55", cached_input = "0.1375", output = "2.20" }'
    edit(path, flex_row + "\n", "")
    with path.open("a", encoding="utf-8") as fh:
        fh.write(
            '\n[[prices]]\nmodel = "o4-mini"\neffective_date = 2027-01-01\n'
            'standard = { input = "1.10", cached_input = "0.275", output = "4.40" }\n'
            + flex_row
            + "\n"
        )
    edit(
        config_dir / "profiles.toml",
        'model = "o4-mini"',
        'model = "o4-mini"\nservice_tier = "flex"',
    )
    with pytest.raises(PricingError) as caught:
        load_config(_config_settings(config_dir, tmp_path), today=dt.date(2026, 12, 1))
    assert str(caught.value) == (
        f"{path}: model o4-mini has no flex price in effect on 2026-12-01 "
        "(its first flex price takes effect 2027-01-01)"
    )


def test_pricing_unknown_key_and_negative_price(config_dir: Path) -> None:
    """Price rows reject unknown keys and negative numbers, naming the row and field."""
    path = config_dir / "pricing.toml"
    edit(path, 'standard = { input = "2.00"', 'standard = { inptu = "1", input = "2.00"')
    with pytest.raises(
        ConfigError, match=r"pricing\.toml: prices\.0\.standard\.inptu: unknown key"
    ):
        load_pricing(path)
    shutil.copy(REPO_CONFIG / "pricing.toml", path)
    edit(path, 'output = "8.00"', 'output = "-8.00"')
    with pytest.raises(ConfigError, match=r"prices\.0\.standard\.output"):
        load_pricing(path)


def test_missing_pricing_file(tmp_path: Path) -> None:
    """A missing file is one line naming it."""
    with pytest.raises(ConfigError, match="file not found"):
        load_pricing(tmp_path / "pricing.toml")


# --- pricing.toml -> the prices table ------------------------------------------------------


def price_rows(sessions: sessionmaker[Session]) -> dict[tuple[str, str, dt.date], tuple[Any, ...]]:
    """Stored prices by (model, tier, effective_date)."""
    with sessions() as session:
        return {
            (p.model, p.tier, p.effective_date): (
                p.input_usd_per_mtok,
                p.cached_input_usd_per_mtok,
                p.output_usd_per_mtok,
            )
            for p in session.scalars(select(Price))
        }


def test_sync_prices_adds_each_tier_once(sessions: sessionmaker[Session]) -> None:
    """Each (model, tier, date) of pricing.toml is stored exactly; a second sync adds nothing."""
    table = load_pricing(REPO_CONFIG / "pricing.toml")
    tiers = sum(1 for p in table.entries for t in ("standard", "batch", "flex") if p.tier(t))
    with sessions() as session:
        assert sync_prices(session, table) == tiers
        assert sync_prices(session, table) == 0
    stored = price_rows(sessions)
    assert len(stored) == tiers
    mini = stored[("gpt-4.1-mini", "standard", dt.date(2025, 11, 30))]
    assert mini == (Decimal("0.40"), Decimal("0.10"), Decimal("1.60"))
    assert stored[("gpt-4.1-mini", "batch", dt.date(2025, 11, 30))][1] is None


def test_changed_price_is_refused_and_new_date_is_added(
    sessions: sessionmaker[Session], config_dir: Path
) -> None:
    """History is never rewritten: changed numbers fail naming the row; a new date is added."""
    path = config_dir / "pricing.toml"
    with sessions() as session:
        sync_prices(session, load_pricing(path))
    before = price_rows(sessions)
    edit(path, 'cached_input = "0.10", output = "1.60"', 'cached_input = "0.10", output = "1.70"')
    with sessions() as session, pytest.raises(PricingError) as caught:
        sync_prices(session, load_pricing(path))
    assert "gpt-4.1-mini (standard) effective 2025-11-30" in str(caught.value)
    assert "output 1.6" in str(caught.value) and "output 1.7" in str(caught.value)
    assert price_rows(sessions) == before
    text = path.read_text(encoding="utf-8").replace(
        'model = "gpt-4.1-mini"\neffective_date = 2025-11-30',
        'model = "gpt-4.1-mini"\neffective_date = 2026-01-01',
    )
    path.write_text(text, encoding="utf-8")
    with sessions() as session:
        assert sync_prices(session, load_pricing(path)) == 2  # standard and batch of the new date
    assert price_rows(sessions)[("gpt-4.1-mini", "standard", dt.date(2026, 1, 1))][2] == Decimal(
        "1.70"
    )
