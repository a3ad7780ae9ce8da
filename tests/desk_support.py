"""Shared by the desk's tests: a database with outputs to review (made by a real run against
the simulator), an article whose text is an attack, and logging in."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from pipeline.db import Article, make_engine, session_factory
from pipeline.intake import ArticleIn
from pipeline.prompts import load_profiles
from tests.engine_support import (
    CONFIG_DIR,
    engine_settings,
    run_engine,
    sample_articles,
    seed,
    simulator,
)

SCRIPT = '<script>alert("xss")</script>'
IMG = '"><img src=x onerror=alert(1)>'
XSS_ARTICLE = ArticleIn(
    id="xss-1",
    title=f"Council {SCRIPT} vote",
    body=(
        f"The council voted 7 to 2 on Tuesday {IMG} to spend 4,500 pounds on {SCRIPT} new "
        "benches in the park, the mayor, Lilla Varga, said."
    ),
    section="politics",
)
TASKS = ["summary", "headline"]


def generate(database_url: str, tmp_path: Path, config: Path = CONFIG_DIR) -> dict[str, int]:
    """Two sample articles with plain outputs (pending), then one more and the attack article
    with a figure changed in every answer (flagged by the facts check). Article ids by
    source id."""
    engine = make_engine(database_url)
    try:
        seed(engine, TASKS, n=2)
        with simulator(obey_rate=1.0, hallucination_rate=0.0) as sim:
            run_engine(engine_settings(database_url, sim, tmp_path, config_dir=config))
        seed(engine, TASKS, articles=[sample_articles()[2], XSS_ARTICLE])
        with simulator(obey_rate=1.0, hallucination_rate=1.0) as sim:
            run_engine(engine_settings(database_url, sim, tmp_path / "second", config_dir=config))
        with session_factory(engine)() as session:
            return {sid: aid for sid, aid in session.execute(select(Article.source_id, Article.id))}
    finally:
        engine.dispose()


def follows(config: Path = CONFIG_DIR) -> dict[str, str | None]:
    """Each task's parent, as the desk's regenerate needs it."""
    return {task: p.follows for task, p in load_profiles(config).items()}


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)
