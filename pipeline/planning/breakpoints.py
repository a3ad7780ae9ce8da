"""Breakpoints for GPT-5.6+ models: where a paid cache write is repaid by later reads.

On these models (API-NOTES §1.5) nothing is cached unless a request asks: an explicit
breakpoint on an ``input_text`` block writes the prefix up to it at ``w`` x the input price
(1.25), and a later request whose prompt reaches the same breakpoint reads it at ``r`` x
(0.1). Routing is automatic, so there are no key buckets; what the planner decides is which
prefixes to write and who waits for whom.

A breakpoint at tree node ``N`` (depth ``d``, ``c`` requests through it, nearest breakpoint
above at depth ``a``) costs its first request ``(w - 1) * (d - a)`` more than not caching, and
saves each of the other ``c - 1`` requests ``(1 - r) * (d - a)``. So it pays exactly when
``(c - 1) * (1 - r) > w - 1``: with 1.25 and 0.1, when one other request reads it. The planner
puts a breakpoint at every node that pays, is at least the model's minimum prefix deep, closes
a prompt part someone reuses (instructions, a shared context, the article: never the per-job
part nobody reuses, never an assistant turn, which cannot carry one), and where the sharing
stops (a child carrying every request through ``N`` is deeper and as shared: it gets the
breakpoint instead). At most ``max_writes`` per request: the deepest ones, as the API writes
"up to the latest four explicit breakpoints" (openai SDK 3.57, ``PromptCacheOptions.mode``).

Who writes: each group (the requests under one top-level breakpoint ``T``) is warmed by a
``prewarm`` request that writes ``T`` without generating anything, when at least
``PREWARM_MIN_GROUP`` requests will read it; every request of the group waits for it. A deeper
breakpoint is written by the first request through it, and the later ones wait for that one.
Breakpoints written by an earlier chunk of the run are ``warm``: nobody waits, everyone reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.money import PromptCachePolicy
from pipeline.planning.tree import PrefixTree
from pipeline.prompts import RenderedRequest

# Below this many requests under a top-level breakpoint, the group's first request writes it
# itself: a prewarm costs one more read of the prefix than that, and saves only a short wait.
PREWARM_MIN_GROUP = 3
_REUSABLE = frozenset({"instructions", "context", "article", "history"})
_WARM = -1


def warm_key(tree: PrefixTree, node: int) -> str:
    """The name a written breakpoint goes by in a run's ``warm`` set."""
    return f"bp-{tree.digest(node)[:16]}"


@dataclass
class Prewarm:
    """A prewarm to send before plan position ``before``: request ``index`` cut at ``segment``."""

    before: int
    index: int
    segment: int
    tokens: int
    group: str


@dataclass
class GroupStats:
    """A group's model, size, articles and top-level prefix depth (for ``GroupSummary``)."""

    model: str
    prefix_tokens: int
    size: int = 0
    articles: set[int] = field(default_factory=set)


@dataclass
class BreakpointPlan:
    """Per plan position (of breakpoint-model requests): breakpoints and expectations.

    ``waits`` holds a plan position, or ``("prewarm", k)`` for the k-th prewarm.
    """

    breakpoints: dict[int, tuple[int, ...]] = field(default_factory=dict)
    expected_cached: dict[int, int] = field(default_factory=dict)
    expected_writes: dict[int, int] = field(default_factory=dict)
    waits: dict[int, int | tuple[str, int]] = field(default_factory=dict)
    group_of: dict[int, str] = field(default_factory=dict)
    prewarms: list[Prewarm] = field(default_factory=list)
    written: set[str] = field(default_factory=set)
    groups: dict[str, GroupStats] = field(default_factory=dict)


def _segment_index(request: RenderedRequest, at: int) -> int:
    """The segment a path position stands for (a path starts at the root = format segment)."""
    has_format = bool(request.segments) and request.segments[0].kind == "format"
    return at if has_format else at - 1


def choose_nodes(
    tree: PrefixTree,
    requests: Sequence[RenderedRequest],
    indices: Sequence[int],
    policy_of: Callable[[str], PromptCachePolicy],
) -> set[int]:
    """The nodes that get a breakpoint (see the module docstring), over requests ``indices``."""
    eligible: set[int] = set()
    for index in indices:
        request = requests[index]
        policy = policy_of(request.model)
        path = tree.paths[index]
        for at in range(1, len(path)):
            node = path[at]
            if node in eligible:
                continue
            seg = request.segments[_segment_index(request, at)]
            if seg.kind not in _REUSABLE or seg.role == "assistant":
                continue
            if tree.depth[node] < policy.min_prefix:
                continue
            if (tree.count[node] - 1) * (1 - policy.read) > policy.write - 1:
                eligible.add(node)
    # Keep a node only where its sharing stops: a child as shared and eligible is better.
    covered = {tree.parent[n] for n in eligible if tree.count[n] == tree.count[tree.parent[n]]}
    return eligible - covered


def plan_breakpoints(
    tree: PrefixTree,
    requests: Sequence[RenderedRequest],
    positions: Sequence[tuple[int, int]],
    policy_of: Callable[[str], PromptCachePolicy],
    warm: frozenset[str],
) -> BreakpointPlan:
    """Breakpoints, expected reads and writes, waits and prewarms for ``positions``.

    ``positions`` are ``(plan position, request index)`` pairs in send order.
    """
    out = BreakpointPlan()
    chosen = choose_nodes(tree, requests, [index for _, index in positions], policy_of)
    registry: dict[int, int | tuple[str, int]] = {}
    for pos, index in positions:
        request = requests[index]
        policy = policy_of(request.model)
        path = tree.paths[index]
        ats = [at for at in range(1, len(path)) if path[at] in chosen][-policy.max_writes :]
        if not ats:
            continue
        nodes = [path[at] for at in ats]
        out.breakpoints[pos] = tuple(_segment_index(request, at) for at in ats)
        for node in nodes:
            if node not in registry and warm_key(tree, node) in warm:
                registry[node] = _WARM
        top = nodes[0]
        gid = f"bp-{tree.digest(top)[:12]}"
        out.group_of[pos] = gid
        stats = out.groups.setdefault(gid, GroupStats(request.model, tree.depth[top]))
        stats.size += 1
        stats.articles.add(request.article_id)
        if top not in registry and tree.count[top] >= PREWARM_MIN_GROUP:
            out.prewarms.append(
                Prewarm(
                    before=pos,
                    index=index,
                    segment=out.breakpoints[pos][0],
                    tokens=tree.depth[top],
                    group=gid,
                )
            )
            registry[top] = ("prewarm", len(out.prewarms) - 1)
        read = next((k for k in range(len(nodes) - 1, -1, -1) if nodes[k] in registry), None)
        read_depth = 0 if read is None else tree.depth[nodes[read]]
        out.expected_cached[pos] = read_depth
        if read is not None:
            writer = registry[nodes[read]]
            if writer != _WARM:
                out.waits[pos] = writer
        deepest = tree.depth[nodes[-1]]
        if read is None or read < len(nodes) - 1:
            out.expected_writes[pos] = deepest - read_depth
        for node in nodes:
            registry.setdefault(node, pos)
            out.written.add(warm_key(tree, node))
    return out


def prewarm_positions(plan: BreakpointPlan) -> Mapping[int, list[int]]:
    """Plan position -> the prewarms (their numbers) that go right before it."""
    before: dict[int, list[int]] = {}
    for number, prewarm in enumerate(plan.prewarms):
        before.setdefault(prewarm.before, []).append(number)
    return before
