"""Choosing each task's prompt layout by the cached tokens it would earn on the actual jobs.

``instructions_first`` shares a task's instructions and contexts across all its articles;
``article_first`` shares the contexts and the article across all tasks of one article (of the
same model and output format). Which wins depends on the mix of tasks and on token counts, so
for profiles with ``layout = "auto"`` we render the jobs both ways and measure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import combinations

from pipeline.money import PromptCachePolicy, base_model_name
from pipeline.planning.planner import plan
from pipeline.planning.tree import optimal_cached_tokens, root_key
from pipeline.prompts import ArticleJob, Layout, Profile, RenderedRequest
from pipeline.prompts import render as render_job

RenderFn = Callable[[ArticleJob, Profile, Layout], RenderedRequest]


def _fixed_layout(profile: Profile) -> Layout | None:
    """The layout of a profile that does not ask for a choice, else None."""
    if profile.parts is not None:
        return "instructions_first"  # explicit parts decide the order; the layout is unused
    if profile.layout == "auto":
        return None
    return profile.layout


def _sample(jobs: Sequence[ArticleJob], max_articles: int) -> list[ArticleJob]:
    """All jobs of the first ``max_articles`` articles (by id): sharing within an article stays."""
    kept = set(sorted({job.article_id for job in jobs})[:max_articles])
    return [job for job in jobs if job.article_id in kept]


def _assignments(tasks: Sequence[str]) -> Iterable[frozenset[str]]:
    """Non-empty sets of tasks to lay out article-first, fewest first (ties keep the fewer)."""
    for size in range(1, len(tasks) + 1):
        for chosen in combinations(tasks, size):
            yield frozenset(chosen)


def choose_layouts(
    jobs: Sequence[ArticleJob],
    profiles: Mapping[str, Profile],
    *,
    render: RenderFn = render_job,
    planned_rpm: float | None = None,
    max_articles: int = 64,
    max_exhaustive: int = 8,
    min_cacheable: int = 1024,
    step: int = 128,
    policies: Mapping[str, PromptCachePolicy] | None = None,
) -> dict[str, Layout]:
    """The layout for every task in ``profiles``, chosen for cached tokens over ``jobs``.

    A profile with explicit ``parts`` or a fixed ``layout`` keeps it. For the ``auto`` ones,
    every job is rendered both ways and each combination of layouts is scored; ties (and
    tasks with no jobs here) go to ``instructions_first``. Only tasks with the same model and
    format can share a prefix, so each such cluster is decided on its own: exhaustively over
    its ``2**k`` combinations when ``k <= max_exhaustive``, else by flipping one task at a time
    while that helps (from both all-instructions-first and all-article-first).

    The score is ``optimal_cached_tokens`` (one perfect cache); with ``planned_rpm`` it is the
    expected cached tokens of ``plan(...)`` at that rate, which also counts bucket primers.
    Only the jobs of the first ``max_articles`` articles are rendered, to bound the cost of
    tokenizing every article twice. Jobs of tasks missing from ``profiles`` are ignored.

    With ``policies``, each cluster is scored by its model's policy: on grid models with its
    minimum and step; on breakpoint models (GPT-5.6+, paid writes) by what the plan saves in
    input-price tokens, reads at ``1 - r`` less the writes' ``w - 1`` premium.
    """

    def score(requests: list[RenderedRequest]) -> float:
        policy = None
        if policies is not None and requests:
            model = requests[0].model
            policy = policies.get(model) or policies.get(base_model_name(model))
        if policy is not None and policy.explicit:
            chosen = plan(requests, planned_rpm=planned_rpm or 600.0, policies=policies)
            reads = chosen.expected_cached_tokens * (1 - policy.read)
            return float(reads - chosen.expected_cache_write_tokens * (policy.write - 1))
        low, grid = (policy.min_prefix, policy.step) if policy else (min_cacheable, step)
        if planned_rpm is None:
            return optimal_cached_tokens(requests, min_cacheable=low, step=grid)
        chosen = plan(
            requests, planned_rpm=planned_rpm, min_cacheable=low, step=grid, policies=policies
        )
        return chosen.expected_cached_tokens

    layouts: dict[str, Layout] = {}
    rendered: dict[tuple[str, Layout], list[RenderedRequest]] = {}
    sample = [job for job in _sample(jobs, max_articles) if job.task in profiles]
    both: tuple[Layout, ...] = ("instructions_first", "article_first")
    for task, profile in profiles.items():
        fixed = _fixed_layout(profile)
        layouts[task] = fixed or "instructions_first"
        for layout in (fixed,) if fixed else both:
            rendered[task, layout] = [
                render(job, profile, layout) for job in sample if job.task == task
            ]

    clusters: dict[str, list[str]] = {}
    for task in profiles:
        requests = rendered[task, layouts[task]]
        if requests:
            clusters.setdefault(root_key(requests[0]), []).append(task)
    for tasks in clusters.values():
        auto = [t for t in tasks if _fixed_layout(profiles[t]) is None]
        if not auto:
            continue
        fixed_requests = [r for t in tasks if t not in auto for r in rendered[t, layouts[t]]]

        def total(
            article_first: frozenset[str],
            auto: list[str] = auto,
            fixed_requests: list[RenderedRequest] = fixed_requests,
        ) -> float:
            requests = list(fixed_requests)
            for task in auto:
                layout: Layout = "article_first" if task in article_first else "instructions_first"
                requests.extend(rendered[task, layout])
            return score(requests)

        best = _best(auto, total, exhaustive=len(auto) <= max_exhaustive)
        for task in auto:
            layouts[task] = "article_first" if task in best else "instructions_first"
    return layouts


def _best(
    tasks: Sequence[str], total: Callable[[frozenset[str]], float], *, exhaustive: bool
) -> frozenset[str]:
    """The set of tasks to lay out article-first that scores highest (first found on ties).

    Beyond ``exhaustive`` search, flip one task at a time while that helps, from both
    all-instructions-first and all-article-first: sharing the article pays only when several
    tasks move together, which single flips from one end would never find.
    """
    best = frozenset[str]()
    best_score = total(best)
    if exhaustive:
        for candidate in _assignments(tasks):
            value = total(candidate)
            if value > best_score:
                best, best_score = candidate, value
        return best
    for start in (frozenset[str](), frozenset(tasks)):
        current, current_score = start, total(start)
        improved = True
        while improved:
            improved = False
            for task in tasks:
                candidate = current ^ {task}
                value = total(candidate)
                if value > current_score:
                    current, current_score, improved = candidate, value, True
        if current_score > best_score:
            best, best_score = current, current_score
    return best
