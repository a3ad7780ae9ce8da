"""Task chains (issue 8): a follower is sent as the next turn after its parent's output.

Pure parts (``render_child``, ``followers_of``, config checks) are tested directly; the chain's
behaviour end to end runs the engine for real against the simulator over HTTP with the real
SDK, on SQLite and PostgreSQL, with no latency and a few sample articles. Witnesses: the jobs
and generations in the database, the request/response order and bodies on the SDK's HTTP
client, and the simulator's ledger.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, update
from typer.testing import CliRunner, Result

from pipeline.cli.enqueue_cmd import with_parents
from pipeline.cli.main import app
from pipeline.db import queue
from pipeline.db.engine import session_factory
from pipeline.db.jobs import ClaimedJob
from pipeline.db.models import Job
from pipeline.errors import ConfigError
from pipeline.intake.reader import ArticleIn
from pipeline.planning import cacheable
from pipeline.prompts.chains import MIN_ARTICLE_TOKENS, ParentOutput, followers_of, render_child
from pipeline.prompts.profiles import Profile, load_profiles
from pipeline.prompts.rendering import article_text, job_text, render, segment
from pipeline.prompts.requests import MESSAGE_OVERHEAD_TOKENS, RenderedRequest
from pipeline.prompts.tokens import count_tokens
from pipeline.run.runner import RunSummary
from pipeline.settings import get_settings
from pipeline.simulator.server import SimulatorServer
from tests.chain_support import (
    EventLog,
    by_article,
    chain_config,
    enqueue_chain,
    job_states,
)
from tests.engine_support import (
    engine_settings,
    generations,
    ledger_requests,
    run_engine,
    sample_articles,
    simulator,
)

# -- rendering a follower (pure) ------------------------------------------------------------


@functools.cache
def loaded_chain() -> dict[str, Profile]:
    """summary -> headline -> social, as loaded from a chained config (read once)."""
    with tempfile.TemporaryDirectory(prefix="chain-profiles-") as tmp:
        return load_profiles(chain_config(Path(tmp), social=True))


def claimed(task: str, *, job_id: int = 2, article: ArticleIn | None = None) -> ClaimedJob:
    """A claimed job of ``task`` about ``article`` (the first sample article by default)."""
    a = article or sample_articles()[0]
    return ClaimedJob(
        id=job_id,
        task=task,
        attempts=1,
        batch_label=None,
        article_id=1,
        source_id=a.source_id,
        title=a.title,
        body=a.body,
        section=a.section,
        url=a.url,
        published_at=a.published_at,
        metadata=a.metadata,
    )


def parent_output(task: str = "summary", answer: str = "The council approved it.") -> ParentOutput:
    """A completed parent's output as ``parent_outputs`` returns it."""
    return ParentOutput(job_id=1, task=task, answer=answer, response_id="resp_1", cache_key="k-0")


def message_texts(request: RenderedRequest) -> list[tuple[str, str]]:
    """(role, text) of every message of a rendered request."""
    return [(s.role, s.text) for s in request.segments if s.is_message]


def test_child_prompt_is_parent_prompt_then_its_answer_then_the_new_turn() -> None:
    """A follower's messages are the parent's, exactly, then the parent's answer, then its turn."""
    summary, headline = loaded_chain()["summary"], loaded_chain()["headline"]
    parent = render(claimed("summary", job_id=1), summary, "instructions_first")
    child = render_child(
        claimed("headline"), headline, summary, "instructions_first", parent_output()
    )
    request = child.request
    sent = message_texts(parent)
    assert message_texts(request)[: len(sent)] == sent
    assert message_texts(request)[len(sent) :] == [
        ("assistant", "The council approved it."),
        ("developer", headline.instructions),
        ("user", "Write the headline for the sport desk."),
    ]
    assert request.trimmed is None and request.previous_response_id is None
    assert (child.parent_cache_key, child.parent_prompt_tokens) == ("k-0", parent.prompt_tokens)
    assert request.metadata == {"job_id": "2", "task": "headline", "follows": "summary"}
    assert request.prompt_tokens > parent.prompt_tokens


def test_previous_response_id_child_carries_only_its_own_turn(tmp_path: Path) -> None:
    """With chain_via = previous_response_id the request names the parent's response, no history."""
    config = chain_config(
        tmp_path,
        overrides={
            "summary": {"store": True},
            "headline": {"store": True, "chain_via": "previous_response_id"},
        },
    )
    profiles = load_profiles(config)
    child = render_child(
        claimed("headline"),
        profiles["headline"],
        profiles["summary"],
        "instructions_first",
        parent_output(),
    )
    assert child.request.previous_response_id == "resp_1"
    assert message_texts(child.request) == [
        ("developer", profiles["headline"].instructions),
        ("user", "Write the headline for the sport desk."),
    ]
    assert child.request.body()["previous_response_id"] == "resp_1"


def article_body_tokens(request: RenderedRequest, job: ClaimedJob) -> int:
    """Tokens of the article's body in ``request`` (its segment minus header and overhead)."""
    article = next(s for s in request.segments if s.kind == "article")
    header = count_tokens(article_text(job, ""), request.model)
    return article.tokens - header - MESSAGE_OVERHEAD_TOKENS


@settings(max_examples=25, deadline=None)
@given(
    answer_words=st.integers(min_value=0, max_value=250),
    over=st.integers(min_value=1, max_value=600),
)
def test_over_budget_child_trims_only_the_article_to_fit(answer_words: int, over: int) -> None:
    """Over its input budget, a child keeps every other message and trims the article to fit."""
    chain_profiles = loaded_chain()
    summary, job = chain_profiles["summary"], claimed("headline")
    parent = parent_output(answer=" ".join(["budget"] * answer_words) or "Yes.")
    full = render_child(
        job, chain_profiles["headline"], summary, "instructions_first", parent
    ).request
    budget = max(256, full.prompt_tokens - over)
    headline = replace(chain_profiles["headline"], input_token_budget=budget)
    trimmed = render_child(job, headline, summary, "instructions_first", parent).request

    assert [s.kind for s in trimmed.segments] == [s.kind for s in full.segments]
    for before, after in zip(full.segments, trimmed.segments, strict=True):
        if before.kind != "article":
            assert after == before
    article_before = next(s for s in full.segments if s.kind == "article")
    article_after = next(s for s in trimmed.segments if s.kind == "article")
    assert article_before.text.startswith(article_after.text)
    removed = article_body_tokens(full, job) - article_body_tokens(trimmed, job)
    assert removed > 0 and trimmed.trimmed == {"article_tokens_removed": removed}
    # Never below the minimum; above it, the prompt fits the budget.
    assert article_body_tokens(trimmed, job) >= MIN_ARTICLE_TOKENS
    if article_body_tokens(trimmed, job) > MIN_ARTICLE_TOKENS:
        assert trimmed.prompt_tokens <= budget, (trimmed.prompt_tokens, budget)


def test_followers_and_parents_of_a_chain() -> None:
    """followers_of maps each task to its direct followers; with_parents adds every ancestor."""
    chain_profiles = loaded_chain()
    assert followers_of(chain_profiles) == {"summary": ("headline",), "headline": ("social",)}
    assert with_parents(["social"], chain_profiles) == ["summary", "headline", "social"]
    assert with_parents(["summary"], chain_profiles) == ["summary"]


# -- configuration --------------------------------------------------------------------------


def test_a_cycle_in_follows_is_a_config_error_naming_file_and_key(tmp_path: Path) -> None:
    """A cycle in follows is refused naming the file and the profiles.<task>.follows key."""
    config = chain_config(tmp_path, overrides={"summary": {"follows": "headline"}})
    with pytest.raises(ConfigError) as caught:
        load_profiles(config)
    message = str(caught.value)
    assert str(config / "profiles.toml") in message
    assert ".follows" in message and "cycle" in message
    assert "profiles.summary.follows" in message or "profiles.headline.follows" in message


def test_following_an_unknown_task_or_itself_is_a_config_error(tmp_path: Path) -> None:
    """follows must name another profile: an unknown task and a self-loop are refused."""
    unknown = chain_config(tmp_path, overrides={"headline": {"follows": "sumary"}}, name="a")
    with pytest.raises(ConfigError, match=r"profiles\.headline\.follows: unknown task 'sumary'"):
        load_profiles(unknown)
    itself = chain_config(tmp_path, overrides={"headline": {"follows": "headline"}}, name="b")
    with pytest.raises(ConfigError, match=r"profiles\.headline\.follows: a cycle"):
        load_profiles(itself)


def test_previous_response_id_without_store_is_refused(tmp_path: Path) -> None:
    """chain_via = previous_response_id needs store = true (the API must keep the parent)."""
    config = chain_config(tmp_path, overrides={"headline": {"chain_via": "previous_response_id"}})
    with pytest.raises(ConfigError, match="needs store = true"):
        load_profiles(config)


# -- the chain end to end ---------------------------------------------------------------------


def run_chain(
    database_url: str,
    tmp_path: Path,
    config: Path,
    sim: SimulatorServer,
    log: EventLog | None = None,
) -> RunSummary:
    """One run of the engine with ``config`` against ``sim`` (recording HTTP when ``log``)."""
    settings = engine_settings(database_url, sim, tmp_path, config_dir=config)
    return run_engine(settings, sdk=log.sdk(settings) if log is not None else None)


def test_headline_is_sent_only_after_its_summary_completed_and_continues_it(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Each headline request leaves after its summary's response, and carries that summary."""
    config = chain_config(tmp_path)
    enqueue_chain(engine, sample_articles()[:4])
    log = EventLog()
    with simulator() as sim:
        run_chain(database_url, tmp_path, config, sim, log)

    summaries, headlines = by_article(engine, "summary"), by_article(engine, "headline")
    assert sorted(summaries) == sorted(headlines) == [1, 2, 3, 4]
    for article_id, [headline] in headlines.items():
        [summary] = summaries[article_id]
        assert headline.id > summary.id and headline.created_at >= summary.created_at
        assert log.index("request", headline.job_id) > log.index("response", summary.job_id)
        [summary_sent] = [e.body for e in log.requests("summary") if e.job_id == summary.job_id]
        [headline_sent] = [e.body for e in log.requests("headline") if e.job_id == headline.job_id]
        prefix = summary_sent["input"]
        assert headline_sent["input"][: len(prefix)] == prefix
        assert headline_sent["input"][len(prefix)] == {
            "role": "assistant",
            "content": summary.output_text,
        }
        assert headline.input_tokens > summary.input_tokens + summary.output_tokens
    assert {s.state for s in job_states(engine).values()} == {"succeeded"}


@pytest.mark.parametrize(
    ("fault", "status"),
    [("incomplete", "summary incomplete"), ("invalid_prompt", "summary failed")],
)
def test_summary_cut_short_or_failed_leaves_headline_waiting_and_unsent(
    database_url: str, engine: Engine, tmp_path: Path, fault: str, status: str
) -> None:
    """A summary that ends incomplete or fails for good keeps its headline waiting, never sent."""
    config = chain_config(tmp_path)
    enqueue_chain(engine, sample_articles()[:1])
    log = EventLog()
    with simulator() as sim:
        sim.script(fault)
        run_chain(database_url, tmp_path, config, sim, log)
        run_chain(database_url, tmp_path, config, sim, log)  # a later run changes nothing
        counts = ledger_requests(sim)

    state = job_states(engine)
    assert state[1, "summary"].state == "failed"
    headline = state[1, "headline"]
    assert (headline.state, headline.attempts) == ("waiting", 0)
    assert headline.wait_reason is not None and headline.wait_reason.startswith(status)
    assert [e.task for e in log.requests()] == ["summary"]
    assert sum(counts.values()) == 1
    assert [g.task for g in generations(engine)] == ["summary"]


def test_requeued_failed_summary_then_releases_its_headline(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Once the failed summary is re-queued and succeeds, the waiting headline runs after it."""
    config = chain_config(tmp_path)
    enqueue_chain(engine, sample_articles()[:2])
    with simulator() as sim:
        # (An incomplete summary would come back from the response cache, incomplete again.)
        sim.script("invalid_prompt")
        run_chain(database_url, tmp_path, config, sim)
        with session_factory(engine)() as session:
            assert queue.requeue_failed(session, tasks=["summary"]) == 1
        log = EventLog()
        run_chain(database_url, tmp_path, config, sim, log)

    assert {(s.state, s.wait_reason) for s in job_states(engine).values()} == {("succeeded", None)}
    assert [e.task for e in log.requests()] == ["summary", "headline"]
    headlines = by_article(engine, "headline")
    assert sorted(len(gs) for gs in headlines.values()) == [1, 1]


def test_changed_article_regenerates_summary_then_headline_once(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A changed article re-queues the summary; its headline waits, then is regenerated once."""
    config = chain_config(tmp_path)
    articles = list(sample_articles()[:3])
    enqueue_chain(engine, articles)
    with simulator() as sim:
        run_chain(database_url, tmp_path, config, sim)
        changed = [
            a.model_copy(update={"body": a.body + "\n\nUpdate: the vote was postponed."})
            for a in articles
        ]
        enqueue_chain(engine, changed)
        state = job_states(engine)
        assert {state[a, "summary"].state for a in (1, 2, 3)} == {"queued"}
        assert {state[a, "headline"].state for a in (1, 2, 3)} == {"waiting"}
        log = EventLog()
        second = run_chain(database_url, tmp_path, config, sim, log)

    run_id = second.run_id
    summaries, headlines = by_article(engine, "summary"), by_article(engine, "headline")
    for article_id in (1, 2, 3):
        new_summary = [g for g in summaries[article_id] if g.run_id == run_id]
        new_headline = [g for g in headlines[article_id] if g.run_id == run_id]
        assert len(new_summary) == 1 and len(new_headline) == 1
        assert new_headline[0].id > new_summary[0].id
        assert new_summary[0].output_text != summaries[article_id][0].output_text
        [sent] = [e.body for e in log.requests("headline") if e.job_id == new_headline[0].job_id]
        answers = [m["content"] for m in sent["input"] if m["role"] == "assistant"]
        assert answers == [new_summary[0].output_text]
        assert "the vote was postponed" in json.dumps(sent["input"])
    assert {s.state for s in job_states(engine).values()} == {"succeeded"}


def test_changed_article_enqueued_for_the_parent_only_regenerates_the_follower_once(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """After `enqueue --tasks summary` of a changed article, enqueueing it for both is a no-op."""
    config = chain_config(tmp_path)
    [article] = sample_articles()[:1]
    changed = article.model_copy(update={"body": article.body + "\n\nUpdate: it was delayed."})
    enqueue_chain(engine, [article])
    with simulator() as sim:
        run_chain(database_url, tmp_path, config, sim)
        enqueue_chain(engine, [changed], ("summary",))  # what the CLI does for --tasks summary
        run_chain(database_url, tmp_path, config, sim)
        assert [len(gs) for gs in by_article(engine, "headline").values()] == [2]
        enqueue_chain(engine, [changed])  # the same file again, now for both tasks
        assert {s.state for s in job_states(engine).values()} == {"succeeded"}
        run_chain(database_url, tmp_path, config, sim)

    assert [len(gs) for gs in by_article(engine, "headline").values()] == [2]


def test_summary_requeued_by_hand_requeues_its_succeeded_headline(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A summary put back in the queue re-queues its (succeeded) headline when it completes."""
    config = chain_config(
        tmp_path,
        overrides={
            "summary": {"cache": {"enabled": False}},
            "headline": {"cache": {"enabled": False}},
        },
    )
    enqueue_chain(engine, sample_articles()[:2])
    with simulator() as sim:
        run_chain(database_url, tmp_path, config, sim)
        with session_factory(engine)() as session:
            session.execute(
                update(Job).where(Job.task == "summary").values(state="queued", attempts=0)
            )
            session.commit()
        log = EventLog()
        second = run_chain(database_url, tmp_path, config, sim, log)

    run_id = second.run_id
    assert second.claimed == 4
    for gs in by_article(engine, "headline").values():
        assert len([g for g in gs if g.run_id == run_id and not g.from_cache]) == 1
    for job_id in (e.job_id for e in log.requests("headline")):
        summary_job = job_id - 1  # jobs are made per article in task order
        assert log.index("request", job_id) > log.index("response", summary_job)
    assert {s.state for s in job_states(engine).values()} == {"succeeded"}


def test_next_run_releases_a_waiting_follower_whose_parent_already_succeeded(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A follower left waiting after its parent succeeded runs next time, planned as cached."""
    config = chain_config(tmp_path)
    articles = sample_articles()[:2]
    enqueue_chain(engine, articles, ("summary",))
    log = EventLog()
    with simulator() as sim:
        run_chain(database_url, tmp_path, config, sim)
        enqueue_chain(engine, articles)  # headline jobs start waiting; nothing releases them
        assert {s.state for (_, t), s in job_states(engine).items() if t == "headline"} == {
            "waiting"
        }
        second = run_chain(database_url, tmp_path, config, sim, log)

    assert [e.task for e in log.requests()] == ["headline", "headline"]
    # Planned at their summaries' keys, expecting the summaries' prompts cached: and so it was.
    assert second.totals.cached_ratio > 0.8
    assert second.expected_cached_ratio == pytest.approx(second.totals.cached_ratio, abs=0.01)
    summaries = by_article(engine, "summary")
    for article_id, [headline] in by_article(engine, "headline").items():
        [sent] = [e.body for e in log.requests() if e.job_id == headline.job_id]
        assert sent["input"][-3] == {
            "role": "assistant",
            "content": summaries[article_id][0].output_text,
        }
    assert {s.state for s in job_states(engine).values()} == {"succeeded"}


def test_headline_reads_the_summary_prompt_from_the_prompt_cache(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """The second turn is served the whole cacheable summary prompt, with no overflow routing."""
    config = chain_config(tmp_path)
    enqueue_chain(engine, sample_articles()[:5])
    with simulator() as sim:
        summary = run_chain(database_url, tmp_path, config, sim)
        ledger = sim.ledger()

    summaries, headlines = by_article(engine, "summary"), by_article(engine, "headline")
    for article_id, [headline] in headlines.items():
        [parent] = summaries[article_id]
        expected = cacheable(parent.input_tokens)
        assert expected >= 1024 and expected % 128 == 0
        assert headline.cached_tokens >= expected
        assert headline.prompt_cache_key == parent.prompt_cache_key
    assert ledger["cache"]["overflow_routes"] == 0
    assert summary.totals.cached_tokens == ledger["totals"]["cached_tokens"]


def test_headline_over_its_input_budget_is_trimmed_and_still_sent(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A chained prompt over input_token_budget loses article tokens, records it, and succeeds."""
    article = sample_articles()[0]
    plain = chain_config(tmp_path, name="plain")
    profiles = load_profiles(plain)
    parent_tokens = render(
        claimed("summary", article=article), profiles["summary"], "instructions_first"
    ).prompt_tokens
    budget = parent_tokens - 50
    config = chain_config(
        tmp_path,
        overrides={
            "summary": {"max_output_tokens": 100},
            "headline": {"input_token_budget": budget},
        },
    )
    enqueue_chain(engine, [article])
    with simulator() as sim:
        run_chain(database_url, tmp_path, config, sim)
        counts = ledger_requests(sim)

    [[summary]], [[headline]] = (
        by_article(engine, "summary").values(),
        by_article(engine, "headline").values(),
    )
    assert summary.trimmed is None
    assert headline.trimmed is not None
    assert headline.trimmed["article_tokens_removed"] > 0
    assert "history_turns_dropped" not in headline.trimmed
    assert headline.status == "completed"
    assert headline.input_tokens <= budget < summary.input_tokens
    assert counts["completed"] == 2


def social_budget(profiles: dict[str, Profile], article: ArticleIn) -> int:
    """An input budget for ``social`` that the chain passes by less than the summary's answer.

    The full third turn is summary prompt + summary answer (40-70 tokens at max 100) +
    headline turn + headline answer (24-42 at max 60) + social turn; dropping the summary's
    answer alone makes it fit.
    """
    summary = render(claimed("summary", article=article), profiles["summary"], "instructions_first")
    turns = 0
    for task in ("headline", "social"):
        profile, job = profiles[task], claimed(task, article=article)
        turns += segment("instructions", "developer", profile.instructions, profile.model).tokens
        turns += segment("job", "user", job_text(job, profile), profile.model).tokens
    # Room for the headline's longest answer (42 tokens + message overhead) and a little more.
    return summary.prompt_tokens + turns + 50


def test_third_step_continues_the_conversation_as_it_was_sent(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """social (after headline after summary) starts with the headline's prompt exactly as sent."""
    config = chain_config(tmp_path, social=True)
    enqueue_chain(engine, sample_articles()[:2], ("summary", "headline", "social"))
    log = EventLog()
    with simulator() as sim:
        run_chain(database_url, tmp_path, config, sim, log)

    headlines = by_article(engine, "headline")
    for article_id, [social] in by_article(engine, "social").items():
        [headline] = headlines[article_id]
        [headline_sent] = [e.body for e in log.requests("headline") if e.job_id == headline.job_id]
        [social_sent] = [e.body for e in log.requests("social") if e.job_id == social.job_id]
        prefix = headline_sent["input"]
        assert social_sent["input"][: len(prefix)] == prefix, "the summary turn is missing"
        assert social_sent["input"][len(prefix)] == {
            "role": "assistant",
            "content": headline.output_text,
        }
        assert social.cached_tokens >= cacheable(headline.input_tokens)


def test_third_step_over_budget_drops_the_oldest_answer_before_the_article(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Over budget, a three-step chain drops the summary's answer first and keeps the article."""
    article = sample_articles()[0]
    profiles = load_profiles(chain_config(tmp_path, social=True, name="plain"))
    budget = social_budget(profiles, article)
    config = chain_config(
        tmp_path,
        social=True,
        overrides={"summary": {"max_output_tokens": 100}, "social": {"input_token_budget": budget}},
    )
    enqueue_chain(engine, [article], ("summary", "headline", "social"))
    with simulator() as sim:
        run_chain(database_url, tmp_path, config, sim)

    [[social]] = by_article(engine, "social").values()
    assert social.status == "completed"
    assert social.trimmed == {"history_turns_dropped": 1}
    assert social.input_tokens <= budget


def test_previous_response_id_chain_is_stored_and_served_by_the_api(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """With chain_via = previous_response_id the headline names the stored summary and succeeds."""
    config = chain_config(
        tmp_path,
        overrides={
            "summary": {"store": True},
            "headline": {"store": True, "chain_via": "previous_response_id"},
        },
    )
    enqueue_chain(engine, sample_articles()[:2])
    log = EventLog()
    with simulator() as sim:
        run_chain(database_url, tmp_path, config, sim, log)
        counts = ledger_requests(sim)

    summaries = by_article(engine, "summary")
    for article_id, [headline] in by_article(engine, "headline").items():
        [summary] = summaries[article_id]
        assert summary.response_id and headline.previous_response_id == summary.response_id
        [sent] = [e.body for e in log.requests("headline") if e.job_id == headline.job_id]
        assert sent["previous_response_id"] == summary.response_id and sent["store"] is True
        assert [m["role"] for m in sent["input"]] == ["developer", "user"]
        # The API prepends the stored conversation: the summary's prompt and answer.
        assert headline.input_tokens > summary.input_tokens + summary.output_tokens
        assert headline.cached_tokens >= cacheable(summary.input_tokens)
    assert counts["completed"] == 4 and sum(counts.values()) == 4


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> Iterator[CliRunner]:
    """`contentgen` against ``database_url`` with the chained config."""
    monkeypatch.setenv("CONTENTGEN_DATABASE_URL", database_url)
    monkeypatch.setenv("CONTENTGEN_CONFIG_DIR", str(chain_config(tmp_path, name="cli-config")))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def articles_file(tmp_path: Path, n: int) -> Path:
    """A JSONL file of the first ``n`` sample articles."""
    path = tmp_path / "articles.jsonl"
    rows = [
        {"id": a.source_id, "title": a.title, "body": a.body, "section": a.section}
        for a in sample_articles()[:n]
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def invoke(cli: CliRunner, *args: str) -> Result:
    """Run `contentgen ARGS`; fail with its output on a non-zero exit."""
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_cli_enqueue_of_a_follower_adds_its_parent_and_waits(
    cli: CliRunner, engine: Engine, tmp_path: Path
) -> None:
    """`enqueue --tasks headline` also queues summary, and the headline jobs start waiting."""
    result = invoke(
        cli, "enqueue", str(articles_file(tmp_path, 2)), "--tasks", "headline", "--json"
    )
    assert json.loads(result.stdout)["accepted"] == 4
    state = job_states(engine)
    assert {(a, t): s.state for (a, t), s in state.items()} == {
        (1, "summary"): "queued",
        (1, "headline"): "waiting",
        (2, "summary"): "queued",
        (2, "headline"): "waiting",
    }
    counts = json.loads(invoke(cli, "jobs", "--json").stdout)
    assert counts["by_state"]["waiting"] == 2 and counts["by_state"]["queued"] == 2


def test_cli_enqueue_of_a_follower_after_its_parent_ran_queues_it(
    cli: CliRunner, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A follower added after its parent succeeded is queued at once and continues that parent."""
    file = articles_file(tmp_path, 2)
    invoke(cli, "enqueue", str(file), "--tasks", "summary")
    config = Path(str(get_settings().config_dir))
    with simulator() as sim:
        run_chain(database_url, tmp_path, config, sim)
        invoke(cli, "enqueue", str(file), "--tasks", "headline")
        assert {s.state for (_, t), s in job_states(engine).items() if t == "headline"} == {
            "queued"
        }
        run_chain(database_url, tmp_path, config, sim)

    summaries = by_article(engine, "summary")
    for article_id, [headline] in by_article(engine, "headline").items():
        assert headline.cached_tokens >= cacheable(summaries[article_id][0].input_tokens)
    assert {s.state for s in job_states(engine).values()} == {"succeeded"}
