"""The planner: prefix tree, send order, cache keys, waits, layouts and forecasts.

Requests are built from segments with chosen token counts (no tokenizer): what the planner
sees of a prompt is its segment digests and token counts.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.db.jobs import ClaimedJob
from pipeline.money.pricing import ModelPrice, PriceTable, TierPrice
from pipeline.planning import (
    Plan,
    bucket_count,
    build_tree,
    cacheable,
    choose_layouts,
    forecast,
    optimal_cached_tokens,
    plan,
)
from pipeline.prompts.profiles import CachePolicy, Context, Profile
from pipeline.prompts.rendering import parts_for
from pipeline.prompts.requests import Layout, RenderedRequest, Segment, SegmentKind, digest

MODEL = "gpt-4.1-mini"

# -- helpers ---------------------------------------------------------------------------------


def make_profile(
    task: str = "summary",
    *,
    model: str = MODEL,
    instructions: str = "Summarise.",
    contexts: tuple[Context, ...] = (),
    layout: Any = "auto",
    parts: Any = None,
    max_output_tokens: int = 100,
    service_tier: str | None = None,
) -> Profile:
    """A profile with plain defaults; only what a test cares about is named."""
    return Profile(
        task=task,
        model=model,
        instructions=instructions,
        contexts=contexts,
        job_template="Task: {task}",
        parts=parts,
        layout=layout,
        temperature=None,
        top_p=None,
        max_output_tokens=max_output_tokens,
        reasoning_effort=None,
        reasoning_summary=None,
        output_schema=None,
        schema_name="output",
        article_token_budget=8000,
        input_token_budget=100_000,
        stream=False,
        store=False,
        service_tier=service_tier,
        cache=CachePolicy(),
        follows=None,
        chain_via="history",
    )


def seg(kind: SegmentKind, name: str, tokens: int) -> Segment:
    """A segment whose digest names its text and size (same name and size: same segment)."""
    role = "user" if kind in ("article", "job") else "developer"
    return Segment(kind, role, name, tokens, digest(kind, name, str(tokens)))


def fmt(model: str = MODEL) -> Segment:
    return Segment("format", "developer", "", 0, digest(model))


def req(
    job_id: int,
    article_id: int,
    segments: Sequence[Segment],
    *,
    task: str = "summary",
    profile: Profile | None = None,
    layout: Layout = "instructions_first",
    previous_response_id: str | None = None,
) -> RenderedRequest:
    """A rendered request of ``segments`` after the format pseudo-segment."""
    profile = profile or make_profile(task)
    return RenderedRequest(
        job_id=job_id,
        article_id=article_id,
        task=task,
        profile=profile,
        layout=layout,
        segments=(fmt(profile.model), *segments),
        previous_response_id=previous_response_id,
    )


def newsroom(
    articles: int,
    tasks: Sequence[str] = ("summary", "headline"),
    *,
    layout: Layout = "article_first",
    instructions: int = 300,
    style: int = 900,
    brief: int = 300,
    article_tokens: Sequence[int] = (1500,),
    sections: int = 3,
) -> list[RenderedRequest]:
    """Requests shaped like the real ones: instructions, style guide, section brief, article."""
    profiles = {t: make_profile(t) for t in tasks}
    out: list[RenderedRequest] = []
    job = 0
    for a in range(articles):
        contexts = [seg("context", "style", style), seg("context", f"brief{a % sections}", brief)]
        article = seg("article", f"article{a}", article_tokens[a % len(article_tokens)])
        for task in tasks:
            job += 1
            ins = seg("instructions", task, instructions)
            tail = seg("job", f"{task}-{a}", 12)
            body = (
                [ins, *contexts, article, tail]
                if layout == "instructions_first"
                else [*contexts, article, ins, tail]
            )
            out.append(req(job, a, body, task=task, profile=profiles[task], layout=layout))
    return out


def shared_depth(a: RenderedRequest, b: RenderedRequest) -> int:
    """Tokens of the leading segments two requests share (0 across models or formats)."""
    if a.model != b.model or a.segments[0].digest != b.segments[0].digest:
        return 0
    total = 0
    for x, y in zip(a.segments, b.segments, strict=False):
        if x.digest != y.digest:
            break
        total += x.tokens
    return total


def segment_depth(request: RenderedRequest) -> int:
    return sum(s.tokens for s in request.segments)


# -- hypothesis strategies ---------------------------------------------------------------------

TOKEN_SIZES = st.sampled_from([0, 5, 64, 128, 300, 500, 900, 1024, 1100, 1500, 2100])


@st.composite
def random_forests(draw: st.DrawFn) -> list[RenderedRequest]:
    """Requests drawn from small per-level alphabets so they share prefixes of every depth."""
    levels = draw(st.integers(1, 5))
    table = [[draw(TOKEN_SIZES) for _ in range(3)] for _ in range(levels)]
    models = [MODEL, "gpt-4o"]
    profiles = {m: make_profile(model=m) for m in models}
    n = draw(st.integers(0, 40))
    out = []
    job_ids = draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n, unique=True))
    for job in job_ids:
        length = draw(st.integers(0, levels))
        choice = [draw(st.integers(0, 2)) for _ in range(length)]
        segments = [seg("context", f"L{i}-{c}", table[i][c]) for i, c in enumerate(choice)]
        model = draw(st.sampled_from(models))
        article = draw(st.integers(0, 8))
        chained = draw(st.integers(0, 19)) == 0
        out.append(
            req(
                job,
                article,
                segments,
                profile=profiles[model],
                previous_response_id="resp_1" if chained else None,
            )
        )
    return out


@st.composite
def newsrooms(draw: st.DrawFn) -> list[RenderedRequest]:
    """Realistic workloads: several tasks over articles, either layout, varied sizes."""
    tasks = draw(st.sampled_from([("summary",), ("summary", "headline"), ("a", "b", "c")]))
    requests = newsroom(
        draw(st.integers(1, 60)),
        tasks,
        layout=draw(st.sampled_from(["article_first", "instructions_first"])),
        instructions=draw(st.sampled_from([10, 300, 1200])),
        style=draw(st.sampled_from([0, 600, 1030])),
        brief=draw(st.sampled_from([0, 200, 500])),
        article_tokens=draw(st.lists(TOKEN_SIZES, min_size=1, max_size=4)),
        sections=draw(st.integers(1, 4)),
    )
    return draw(st.permutations(requests))


workloads = st.one_of(random_forests(), newsrooms())
rates = st.sampled_from([1.0, 12.0, 30.0, 100.0, 600.0, 10_000.0])
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the prefix tree ---------------------------------------------------------------------------


def test_tree_counts_requests_and_depths() -> None:
    """Each node counts the requests through it and its depth is the tokens from the root."""
    a = seg("instructions", "i", 1000)
    requests = [
        req(1, 1, [a, seg("article", "x", 200)]),
        req(2, 2, [a, seg("article", "y", 300)]),
        req(3, 3, [seg("instructions", "other", 50)]),
    ]
    tree = build_tree(requests)
    assert len(tree.roots) == 1
    shared = tree.paths[0][1]
    assert tree.paths[1][1] == shared
    assert (tree.depth[shared], tree.count[shared]) == (1000, 2)
    assert [tree.depth[n] for n in tree.paths[1]] == [0, 1000, 1300]
    assert tree.count[tree.paths[0][0]] == 3


def test_tree_has_one_root_per_model_and_format() -> None:
    """Requests that differ in model or format share no node, even with identical messages."""
    a = seg("instructions", "i", 2000)
    schema = Segment("format", "developer", "", 0, digest(MODEL, "schema"))
    requests = [
        req(1, 1, [a]),
        req(2, 1, [a], profile=make_profile(model="gpt-4o")),
        replace(req(3, 1, [a]), segments=(schema, a)),
    ]
    tree = build_tree(requests)
    assert len(tree.roots) == 3
    assert len({path[-1] for path in tree.paths}) == 3


def test_path_digest_is_stable_and_distinct() -> None:
    """A node's digest depends on its path only: rebuilding or reordering keeps it."""
    requests = newsroom(4)
    tree = build_tree(requests)
    again = build_tree(list(reversed(requests)))
    digests = {tree.digest(path[-2]) for path in tree.paths}
    assert digests == {again.digest(path[-2]) for path in again.paths}
    assert len(digests) == 8  # article-first: (article, task) is unique below the article
    articles = {tree.digest(path[-3]) for path in tree.paths}
    assert len(articles) == 4


# -- plan: concrete scenarios ------------------------------------------------------------------


def test_headline_waits_for_the_summary_of_its_article() -> None:
    """Article-first: the second task of an article waits for the first and expects its prefix."""
    requests = newsroom(1, layout="article_first", style=900, brief=300, article_tokens=[1500])
    p = plan(requests, planned_rpm=600)
    summary, headline = p.requests
    assert (summary.request.task, headline.request.task) == ("summary", "headline")
    assert summary.wait_for is None and summary.is_primer
    assert summary.expected_cached_tokens == 0
    assert headline.wait_for == summary.index
    assert headline.expected_cached_tokens == cacheable(900 + 300 + 1500) == 2688
    assert summary.cache_key == headline.cache_key
    assert summary.cache_key is not None and summary.cache_key.startswith("cg-")
    assert summary.cache_key.endswith("-0") and len(summary.cache_key) == len("cg-") + 12 + 2


def test_other_articles_wait_for_the_bucket_primer() -> None:
    """Instructions-first, one task: the first request primes the group, the rest wait for it."""
    requests = newsroom(10, ("summary",), layout="instructions_first", sections=1)
    p = plan(requests, planned_rpm=12)
    assert len(p.groups) == 1 and p.groups[0].buckets == 1
    first, *rest = p.requests
    assert first.wait_for is None and first.is_primer
    assert {r.wait_for for r in rest} == {0}
    # instructions + style + brief, floored
    assert {r.expected_cached_tokens for r in rest} == {cacheable(300 + 900 + 300)}


def test_bucket_primers_fan_out_as_a_binary_tree() -> None:
    """Bucket b's primer waits for bucket (b-1)//2's primer; bucket 0's for nothing."""
    requests = newsroom(200, ("summary",), layout="instructions_first", sections=1)
    p = plan(requests, planned_rpm=120, max_bucket_rpm=12)
    (group,) = p.groups
    assert group.buckets == 10
    primers: dict[int, int] = {}
    for r in p.requests:
        assert r.bucket is not None
        primers.setdefault(r.bucket, r.index)
    assert sorted(primers) == list(range(10))
    for bucket, index in primers.items():
        expected_wait = None if bucket == 0 else primers[(bucket - 1) // 2]
        assert p.requests[index].wait_for == expected_wait
        assert p.requests[index].expected_cached_tokens == 0
        assert p.requests[index].cache_key == f"{group.key_prefix}-{bucket}"
    loads = defaultdict(int)
    for r in p.requests:
        loads[r.bucket] += 1
    assert max(loads.values()) - min(loads.values()) <= 1


def test_bucket_count_follows_rate_size_and_articles() -> None:
    """Enough buckets for the rate, never more than the group's size or articles need."""
    assert bucket_count(1000, 1000, planned_rpm=600, max_bucket_rpm=12) == 50
    assert bucket_count(100, 100, planned_rpm=600, max_bucket_rpm=12) == 9
    assert bucket_count(100, 3, planned_rpm=600, max_bucket_rpm=12) == 3
    assert bucket_count(5, 5, planned_rpm=0.5, max_bucket_rpm=12) == 1
    assert bucket_count(1, 1, planned_rpm=10_000, max_bucket_rpm=12) == 1
    assert bucket_count(100, 100, planned_rpm=600, max_bucket_rpm=12, continuing=True) == 50
    assert bucket_count(100, 30, planned_rpm=600, max_bucket_rpm=12, continuing=True) == 30


def test_short_prompts_get_no_key_and_no_wait() -> None:
    """Prompts under the cacheable minimum share nothing worth waiting for."""
    requests = [
        req(i, i, [seg("instructions", "i", 900), seg("job", f"j{i}", 100)]) for i in (1, 2)
    ]
    p = plan(requests, planned_rpm=60)
    assert [(r.cache_key, r.wait_for, r.expected_cached_tokens) for r in p.requests] == [
        (None, None, 0),
        (None, None, 0),
    ]
    assert p.groups == () and p.warmed == frozenset()


def test_chained_requests_are_not_grouped() -> None:
    """A request continuing a stored conversation is planned without key or wait."""
    a = seg("instructions", "i", 2000)
    requests = [req(1, 1, [a]), req(2, 2, [a], previous_response_id="resp_x")]
    p = plan(requests, planned_rpm=60)
    chained = next(r for r in p.requests if r.request.previous_response_id)
    assert (chained.cache_key, chained.wait_for, chained.expected_cached_tokens) == (None, None, 0)


def test_warm_keys_skip_the_primer_wait() -> None:
    """A key primed by an earlier chunk: nobody waits for a primer and all expect the root."""
    first = newsroom(30, ("summary",), layout="instructions_first", sections=1, brief=0)
    chunk1 = plan(first, planned_rpm=24)
    second = [replace(r, job_id=r.job_id + 1000, article_id=r.article_id + 1000) for r in first]
    chunk2 = plan(second, planned_rpm=24, warm=chunk1.warmed)
    assert {r.cache_key for r in chunk2.requests} <= chunk1.warmed
    assert all(r.wait_for is None for r in chunk2.requests)
    assert {r.expected_cached_tokens for r in chunk2.requests} == {cacheable(300 + 900)}
    assert chunk2.expected_cached_tokens > chunk1.expected_cached_tokens


def test_a_continuing_group_gets_the_buckets_its_rate_needs() -> None:
    """A small first chunk uses few buckets; once warm, the next chunks spread over the rate's."""
    first = newsroom(24, ("summary",), layout="instructions_first", sections=1)
    chunk1 = plan(first, planned_rpm=600)
    assert [g.buckets for g in chunk1.groups] == [2]  # 24 requests: 2 buckets can take them
    second = [replace(r, job_id=r.job_id + 1000, article_id=r.article_id + 1000) for r in first]
    chunk2 = plan(second, planned_rpm=600, warm=chunk1.warmed)
    assert [g.buckets for g in chunk2.groups] == [24]  # 600 rpm needs 50; one per article
    cold = [r for r in chunk2.requests if r.cache_key not in chunk1.warmed]
    assert len(cold) == 22 and all(r.expected_cached_tokens == 0 for r in cold)
    # cold primers fan out below the nearest cold ancestor bucket; under warm ones, at once
    waits = {r.bucket: r.wait_for for r in cold}
    assert waits[2] is None and waits[5] == next(r.index for r in cold if r.bucket == 2)


def test_warm_bucket_still_waits_for_deeper_sharing() -> None:
    """In a warm bucket, the article's second task still waits for its first."""
    requests = newsroom(2, style=1100, brief=0, layout="article_first")
    cold = plan(requests, planned_rpm=12)
    hot = plan(requests, planned_rpm=12, warm=cold.warmed)
    waits = [(r.request.task, r.wait_for) for r in hot.requests]
    assert waits == [("summary", None), ("headline", 0), ("summary", None), ("headline", 2)]


def test_plan_is_independent_of_input_order() -> None:
    """Shuffling the input yields the same send order, keys and waits."""
    requests = newsroom(40, ("a", "b", "c"), sections=3)

    def shape(p: Plan) -> list[tuple[int, str | None, int | None, int]]:
        return [
            (r.request.job_id, r.cache_key, r.wait_for, r.expected_cached_tokens)
            for r in p.requests
        ]

    baseline = shape(plan(requests, planned_rpm=100))
    shuffled = list(requests)
    random.Random(7).shuffle(shuffled)
    assert shape(plan(shuffled, planned_rpm=100)) == baseline


def test_empty_plan() -> None:
    """No requests: an empty plan with a zero ratio."""
    p = plan([], planned_rpm=60)
    assert (p.requests, p.groups, p.prompt_tokens, p.expected_cached_ratio) == ((), (), 0, 0.0)


@pytest.mark.parametrize("rpm", [0.0, -1.0])
def test_plan_refuses_a_non_positive_rate(rpm: float) -> None:
    """A rate of zero would mean infinitely many buckets: refused."""
    with pytest.raises(ValueError, match="rates"):
        plan(newsroom(1), planned_rpm=rpm)


def test_optimal_on_identical_requests() -> None:
    """Three identical 2000-token prompts: the second and third each get 1920 on a perfect cache."""
    a = [seg("instructions", "i", 2000)]
    assert optimal_cached_tokens([req(i, i, a) for i in (1, 2, 3)]) == 2 * 1920


def test_optimal_counts_each_request_at_its_deepest_shared_node() -> None:
    """The perfect cache gives each request its deepest prefix shared with an earlier one."""
    root = seg("context", "c", 1100)
    requests = [
        req(1, 1, [root, seg("article", "x", 200), seg("job", "a", 10)]),
        req(2, 1, [root, seg("article", "x", 200), seg("job", "b", 10)]),
        req(3, 2, [root, seg("article", "y", 200), seg("job", "c", 10)]),
    ]
    # first: 0; one of the x pair: 1300 -> 1280; y: 1100 -> 1024.
    assert optimal_cached_tokens(requests) == 1280 + 1024
    assert plan(requests, planned_rpm=1).expected_cached_tokens == 1280 + 1024


# -- plan: properties --------------------------------------------------------------------------


@PROPERTY
@given(requests=workloads, rpm=rates)
def test_plan_is_a_partition_in_send_order(requests: list[RenderedRequest], rpm: float) -> None:
    """Every input request is planned exactly once and indices are send positions."""
    p = plan(requests, planned_rpm=rpm)
    assert sorted(id(r.request) for r in p.requests) == sorted(id(r) for r in requests)
    assert [r.index for r in p.requests] == list(range(len(requests)))
    assert p.prompt_tokens == sum(r.prompt_tokens for r in requests)
    assert p.expected_cached_tokens == sum(r.expected_cached_tokens for r in p.requests)


@PROPERTY
@given(requests=workloads, rpm=rates)
def test_waits_point_earlier_at_primers(requests: list[RenderedRequest], rpm: float) -> None:
    """wait_for always names an earlier request, which is flagged as a primer."""
    p = plan(requests, planned_rpm=rpm)
    waited = {r.wait_for for r in p.requests if r.wait_for is not None}
    for r in p.requests:
        if r.wait_for is not None:
            assert 0 <= r.wait_for < r.index
            assert p.requests[r.wait_for].group == r.group
        if r.request.prompt_tokens < 1024:
            assert r.wait_for is None and r.cache_key is None
    assert {r.index for r in p.requests if r.is_primer} == waited


@PROPERTY
@given(requests=workloads, rpm=rates)
def test_group_members_share_the_group_prefix(requests: list[RenderedRequest], rpm: float) -> None:
    """All members of a group share its prefix (>= 1024 tokens); groups are contiguous."""
    p = plan(requests, planned_rpm=rpm)
    by_group: dict[str, list[int]] = defaultdict(list)
    for r in p.requests:
        if r.group is not None:
            by_group[r.group].append(r.index)
    assert set(by_group) == {g.key_prefix for g in p.groups}
    # Chained requests (previous_response_id) are ordered by their segments but never grouped.
    unchained = [r.index for r in p.requests if r.request.previous_response_id is None]
    for g in p.groups:
        positions = by_group[g.key_prefix]
        assert len(positions) == g.size
        start = unchained.index(positions[0])
        assert positions == unchained[start : start + g.size]
        assert g.prefix_tokens >= 1024
        members = [p.requests[i].request for i in positions]
        assert all(shared_depth(members[0], m) >= g.prefix_tokens for m in members)
        assert len({m.article_id for m in members}) == g.articles
    # requests in no group could not have joined one
    for r in p.requests:
        if r.group is None and r.request.previous_response_id is None:
            assert segment_depth(r.request) < 1024


@PROPERTY
@given(requests=workloads, rpm=rates)
def test_buckets_are_bounded_and_keep_articles_together(
    requests: list[RenderedRequest], rpm: float
) -> None:
    """Bucket count respects rate, size and articles; an article never spans buckets."""
    p = plan(requests, planned_rpm=rpm, max_bucket_rpm=12)
    for g in p.groups:
        assert 1 <= g.buckets <= max(1, math.ceil(rpm / 12))
        assert g.buckets <= max(1, math.ceil(g.size / 12))
        assert g.buckets <= g.articles
    keys: dict[tuple[str, int], set[str]] = defaultdict(set)
    for r in p.requests:
        if r.group is not None:
            assert r.cache_key == f"{r.group}-{r.bucket}"
            keys[r.group, r.request.article_id].add(r.cache_key)
    assert all(len(k) == 1 for k in keys.values())
    assert p.warmed == {r.cache_key for r in p.requests if r.cache_key is not None}


@PROPERTY
@given(requests=workloads, rpm=rates)
def test_expected_cache_is_stepped_justified_and_at_most_optimal(
    requests: list[RenderedRequest], rpm: float
) -> None:
    """Expected cached tokens are 0 or >= 1024 in 128 steps, backed by the awaited request."""
    p = plan(requests, planned_rpm=rpm)
    for r in p.requests:
        e = r.expected_cached_tokens
        assert e % 128 == 0 and (e == 0 or e >= 1024)
        assert e <= segment_depth(r.request)
        if e:
            assert r.wait_for is not None
            writer = p.requests[r.wait_for]
            assert writer.cache_key == r.cache_key
            assert shared_depth(writer.request, r.request) >= e
    assert p.expected_cached_tokens <= optimal_cached_tokens(requests)


@PROPERTY
@given(requests=workloads)
def test_send_order_keeps_every_shared_prefix_contiguous(requests: list[RenderedRequest]) -> None:
    """Depth-first: the requests under any prefix are sent one after the other."""
    p = plan(requests, planned_rpm=60)
    positions: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for r in p.requests:
        digests = (r.request.model, *(s.digest for s in r.request.segments))
        for k in range(1, len(digests) + 1):
            positions[digests[:k]].append(r.index)
    for where in positions.values():
        assert where == list(range(where[0], where[0] + len(where)))


@PROPERTY
@given(requests=workloads, rpm=rates)
def test_warm_buckets_expect_their_root_without_waiting_for_it(
    requests: list[RenderedRequest], rpm: float
) -> None:
    """In a warm bucket every request expects the group root; it waits only to get more."""
    cold = plan(requests, planned_rpm=rpm)
    hot = plan(requests, planned_rpm=rpm, warm=cold.warmed)
    root = {g.key_prefix: cacheable(g.prefix_tokens) for g in hot.groups}
    for r in hot.requests:
        assert r.wait_for is None or r.wait_for < r.index
        if r.cache_key in cold.warmed:
            assert r.group is not None
            assert r.expected_cached_tokens >= root[r.group]
            if r.wait_for is not None:
                assert r.expected_cached_tokens > root[r.group]


@PROPERTY
@given(requests=workloads)
def test_optimal_matches_a_brute_force_perfect_cache(requests: list[RenderedRequest]) -> None:
    """The closed form equals replaying the requests in any order against a perfect cache."""
    eligible = [r for r in requests if r.previous_response_id is None]
    total = 0
    for i, r in enumerate(eligible):
        best = max((shared_depth(r, other) for other in eligible[:i]), default=0)
        total += cacheable(best)
    assert optimal_cached_tokens(requests) == total


# -- layouts -----------------------------------------------------------------------------------


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def job(job_id: int, article_id: int, task: str, article_tokens: int) -> ClaimedJob:
    return ClaimedJob(
        id=job_id,
        task=task,
        attempts=1,
        batch_label=None,
        article_id=article_id,
        source_id=f"src-{article_id}",
        title=f"Article {article_id}",
        body=words(article_tokens, f"a{article_id}w"),
        section="news",
        url=None,
        published_at=None,
        metadata=None,
    )


def fake_render(job: ClaimedJob, profile: Profile, layout: Layout) -> RenderedRequest:
    """Like prompts.render, with one token per word and no message overhead."""
    segments = [Segment("format", "developer", "", 0, digest(profile.model))]
    for part in parts_for(profile, layout):
        if part == "instructions":
            segments.append(
                seg("instructions", profile.instructions, len(profile.instructions.split()))
            )
        elif part == "contexts":
            for ctx in profile.contexts:
                text = ctx.for_section(job.section) or ""
                segments.append(seg("context", text, len(text.split())))
        elif part == "article":
            segments.append(seg("article", job.body, len(job.body.split())))
        else:
            segments.append(seg("job", f"{job.task}:{job.id}", 5))
    return RenderedRequest(job.id, job.article_id, job.task, profile, layout, tuple(segments))


STYLE = Context("style", text=words(1024, "s"))


def desk(tasks: Sequence[str]) -> dict[str, Profile]:
    return {t: make_profile(t, instructions=words(50, t), contexts=(STYLE,)) for t in tasks}


def jobs_for(tasks: Sequence[str], articles: int, article_tokens: int) -> list[ClaimedJob]:
    ids = iter(range(1, 10_000))
    return [job(next(ids), a, t, article_tokens) for a in range(articles) for t in tasks]


@pytest.mark.parametrize("article_tokens", [128, 400, 3000])
def test_two_tasks_of_one_article_go_article_first(article_tokens: int) -> None:
    """Summary and headline of the same articles share contexts and article: article-first."""
    tasks = ("summary", "headline")
    layouts = choose_layouts(jobs_for(tasks, 10, article_tokens), desk(tasks), render=fake_render)
    assert layouts == {"summary": "article_first", "headline": "article_first"}


@pytest.mark.parametrize("article_tokens", [128, 3000])
def test_one_task_goes_instructions_first(article_tokens: int) -> None:
    """With one task per article, instructions-first also shares the instructions."""
    layouts = choose_layouts(
        jobs_for(["summary"], 10, article_tokens), desk(["summary"]), render=fake_render
    )
    assert layouts == {"summary": "instructions_first"}


def test_tasks_on_different_models_do_not_share_the_article() -> None:
    """The article is shared only within a model and format: each task alone -> instr-first."""
    profiles = desk(["summary"]) | {
        "headline": make_profile(
            "headline", model="gpt-4o", instructions=words(50, "h"), contexts=(STYLE,)
        )
    }
    layouts = choose_layouts(
        jobs_for(["summary", "headline"], 10, 400), profiles, render=fake_render
    )
    assert layouts == {"summary": "instructions_first", "headline": "instructions_first"}


def test_explicit_layouts_and_parts_are_kept() -> None:
    """Only ``auto`` profiles are decided; tasks with no jobs get instructions-first."""
    profiles = {
        "summary": make_profile("summary", layout="instructions_first"),
        "headline": make_profile("headline", layout="article_first"),
        "key_points": make_profile("key_points", parts=("contexts", "article", "instructions")),
        "idle": make_profile("idle"),
    }
    layouts = choose_layouts(
        jobs_for(["summary", "headline", "key_points"], 3, 2000), profiles, render=fake_render
    )
    assert layouts == {
        "summary": "instructions_first",
        "headline": "article_first",
        "key_points": "instructions_first",
        "idle": "instructions_first",
    }


def test_layout_choice_can_use_the_plan_at_a_rate() -> None:
    """Scoring by the plan's expectation agrees on the clear case."""
    tasks = ("summary", "headline")
    layouts = choose_layouts(
        jobs_for(tasks, 30, 1500), desk(tasks), render=fake_render, planned_rpm=60
    )
    assert layouts == {"summary": "article_first", "headline": "article_first"}


def test_many_auto_tasks_use_the_greedy_search() -> None:
    """Beyond max_exhaustive tasks the search flips one task at a time and still finds it."""
    tasks = ("a", "b", "c", "d")
    layouts = choose_layouts(
        jobs_for(tasks, 6, 800), desk(tasks), render=fake_render, max_exhaustive=1
    )
    assert set(layouts.values()) == {"article_first"}


@settings(max_examples=40, deadline=None)
@given(
    tasks=st.sampled_from([("s",), ("s", "h"), ("s", "h", "k")]),
    articles=st.integers(1, 8),
    article_tokens=st.sampled_from([10, 128, 700, 2000]),
    instructions=st.sampled_from([5, 200, 1100]),
    style=st.sampled_from([100, 1024, 1500]),
)
def test_chosen_layouts_never_score_below_instructions_first(
    tasks: tuple[str, ...], articles: int, article_tokens: int, instructions: int, style: int
) -> None:
    """Whatever the sizes, the choice caches at least as much as the default layout."""
    context = Context("style", text=words(style, "s"))
    profiles = {
        t: make_profile(t, instructions=words(instructions, t), contexts=(context,)) for t in tasks
    }
    jobs = jobs_for(tasks, articles, article_tokens)
    layouts = choose_layouts(jobs, profiles, render=fake_render)

    def score(chosen: dict[str, Layout]) -> int:
        return optimal_cached_tokens(
            [fake_render(j, profiles[j.task], chosen[j.task]) for j in jobs]
        )

    assert score(layouts) >= score(dict.fromkeys(tasks, "instructions_first"))


# -- forecast ----------------------------------------------------------------------------------


def prices() -> PriceTable:
    return PriceTable(
        [
            ModelPrice(
                model=MODEL,
                effective_date=dt.date(2025, 1, 1),
                standard=TierPrice(
                    input=Decimal("0.40"), cached_input=Decimal("0.10"), output=Decimal("1.60")
                ),
                flex=TierPrice(
                    input=Decimal("0.20"), cached_input=Decimal("0.05"), output=Decimal("0.80")
                ),
            )
        ]
    )


def test_forecast_prices_tokens_with_and_without_cache() -> None:
    """Cost adds up per request at list price, with the cached share at the cached rate."""
    requests = newsroom(20, ("summary",), layout="instructions_first", sections=1)
    p = plan(requests, planned_rpm=12)
    f = forecast(p, prices(), output_ratio=0.5)
    assert (f.requests, f.input_tokens) == (20, p.prompt_tokens)
    assert f.cached_tokens == p.expected_cached_tokens > 0
    assert f.output_tokens == 20 * 50
    expected = (
        (f.input_tokens - f.cached_tokens) * Decimal("0.40")
        + f.cached_tokens * Decimal("0.10")
        + f.output_tokens * Decimal("1.60")
    ) / 1_000_000
    assert f.cost_usd == expected
    assert (
        f.uncached_cost_usd
        == (f.input_tokens * Decimal("0.40") + f.output_tokens * Decimal("1.60")) / 1_000_000
    )
    assert f.savings_usd > 0
    assert f.cached_ratio == pytest.approx(p.expected_cached_ratio)


def test_forecast_uses_the_flex_tier() -> None:
    """A flex profile is priced at flex rates: half of standard here."""
    flex = make_profile(service_tier="flex")
    requests = [replace(r, profile=flex) for r in newsroom(5, ("summary",))]
    standard = forecast(plan(newsroom(5, ("summary",)), planned_rpm=60), prices())
    halved = forecast(plan(requests, planned_rpm=60), prices())
    assert halved.cost_usd * 2 == standard.cost_usd


@PROPERTY
@given(requests=workloads, ratio=st.sampled_from([0.0, 0.5, 1.0]))
def test_forecast_never_costs_more_than_uncached(
    requests: list[RenderedRequest], ratio: float
) -> None:
    """Caching only lowers the forecast cost; both are exact Decimals."""
    table = PriceTable(
        [
            replace_model(prices().entries[0], MODEL),
            replace_model(prices().entries[0], "gpt-4o"),
        ]
    )
    f = forecast(plan(requests, planned_rpm=60), table, output_ratio=ratio)
    assert isinstance(f.cost_usd, Decimal)
    assert Decimal(0) <= f.cost_usd <= f.uncached_cost_usd


def replace_model(price: ModelPrice, model: str) -> ModelPrice:
    return price.model_copy(update={"model": model})


# -- scale -------------------------------------------------------------------------------------


def test_plan_scales_to_thousands() -> None:
    """10k requests plan in seconds at most (linear tree build, one sort); 500 in a blink."""
    requests = newsroom(5000, ("summary", "headline"), sections=7)
    start = time.perf_counter()
    p = plan(requests, planned_rpm=600)
    elapsed = time.perf_counter() - start
    assert len(p.requests) == 10_000
    assert elapsed < 5, f"10k requests took {elapsed:.2f} s"
