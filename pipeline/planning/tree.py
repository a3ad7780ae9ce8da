"""The prefix tree of rendered requests, and the best any cache could do with them.

A request's prompt is its segments in order, so two requests share a cached prefix exactly as
far as they share leading segments. The tree has one root per model and output format (the
``format`` pseudo-segment: requests that differ there share nothing) and one node per distinct
segment path below it; a node's ``depth`` is the tokens of every segment from the root down to
and including it.

Depth leaves out ``REQUEST_OVERHEAD_TOKENS`` (and whatever a server puts before the first
message): we cannot know where those tokens sit, so depths are a lower bound of the shared
prefix and every estimate built on them errs on the side of fewer cached tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.prompts import RenderedRequest, digest


def threshold(min_cacheable: int, step: int) -> int:
    """The smallest depth that caches anything: ``min_cacheable`` rounded up to ``step``."""
    if min_cacheable < 1 or step < 1:
        raise ValueError(f"min_cacheable and step must be >= 1, got {min_cacheable}, {step}")
    return -(-min_cacheable // step) * step


def cacheable(depth: int, *, min_cacheable: int = 1024, step: int = 128) -> int:
    """Tokens a cache serves of a ``depth``-token shared prefix: floored to ``step``, 0 if short."""
    cached = depth // step * step
    return cached if cached >= min_cacheable else 0


def root_key(request: RenderedRequest) -> str:
    """What a request's tree root is keyed by: its model and its ``format`` segment digest.

    The model is part of the key even when the format segment already encodes it, so requests
    rendered without a format segment never share a root across models.
    """
    first = request.segments[0] if request.segments else None
    fmt = first.digest if first is not None and first.kind == "format" else ""
    return f"{request.model}|{fmt}"


@dataclass(frozen=True)
class PrefixTree:
    """The tree over ``requests``, as parallel arrays indexed by node id.

    Node ``n`` has ``depth[n]`` tokens, ``count[n]`` requests passing through it (ending there
    or below) and ``parent[n]`` (-1 for a root); ``segment[n]`` is the digest of the segment
    it adds (the root key for a root). ``paths[i]`` lists the nodes of request ``i`` from its
    root to the node where its prompt ends; ``rank[n]`` is the lowest ``job_id * len(requests)
    + index`` of the requests through ``n``, which orders siblings. Flat arrays rather than
    node objects: a tree of 100k requests has a few hundred thousand nodes, and objects would
    make the garbage collector walk them over and over.
    """

    requests: Sequence[RenderedRequest]
    depth: list[int]
    parent: list[int]
    count: list[int]
    segment: list[str]
    roots: dict[str, int]
    paths: list[tuple[int, ...]]
    rank: list[int] = field(repr=False)
    _digests: dict[int, str] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.depth)

    def digest(self, node: int) -> str:
        """A stable hash of node ``node``'s whole path (root key and segment digests)."""
        chain: list[int] = []
        cursor = node
        while cursor >= 0 and cursor not in self._digests:
            chain.append(cursor)
            cursor = self.parent[cursor]
        value = self._digests.get(cursor)
        for current in reversed(chain):
            # A root hashes its key; a child, its parent's digest and its segment's.
            parts = (self.segment[current],) if value is None else (value, self.segment[current])
            value = self._digests[current] = digest(*parts)
        assert value is not None
        return value

    def dfs_order(self) -> list[int]:
        """Request indices depth-first, so requests sharing a prefix are contiguous.

        At a node, requests ending there come first (their prompt is a prefix of everything
        below, so they warm it), by job id; then each child, the one holding the lowest job id
        first (``rank``); roots likewise. The order depends on the requests, not on their
        input order.
        """
        reqs = self.requests
        by_job = sorted(range(len(reqs)), key=lambda i: (reqs[i].job_id, i))
        rank = self.rank
        paths = self.paths
        # A path's ranks sort like the depth-first walk: siblings by rank, and a path that is
        # a prefix of another (a request ending higher up) first. The sort is stable, so
        # requests ending at the same node keep their job order.
        at = rank.__getitem__
        return sorted(by_job, key=lambda i: tuple(map(at, paths[i])))

    def shared_children_excess(self) -> list[int]:
        """Per node, the sum over its children of ``count - 1`` (see ``optimal_cached_tokens``)."""
        excess = [0] * len(self.depth)
        for node, up in enumerate(self.parent):
            if up >= 0:
                excess[up] += self.count[node] - 1
        return excess


def build_tree(requests: Sequence[RenderedRequest]) -> PrefixTree:
    """Build the prefix tree of ``requests`` in one pass (linear in their segment count)."""
    depth: list[int] = []
    parent: list[int] = []
    count: list[int] = []
    segment: list[str] = []
    rank: list[int] = []
    roots: dict[str, int] = {}
    edges: dict[tuple[int, str], int] = {}
    paths: list[tuple[int, ...]] = []
    n = len(requests)
    for index, request in enumerate(requests):
        # Unique per request, ordered by job id: siblings never tie on their lowest rank.
        own_rank = request.job_id * n + index
        key = root_key(request)
        segments = request.segments
        has_format = bool(segments) and segments[0].kind == "format"
        node = roots.get(key)
        if node is None:
            node = roots[key] = len(depth)
            depth.append(segments[0].tokens if has_format else 0)
            parent.append(-1)
            count.append(0)
            segment.append(key)
            rank.append(own_rank)
        count[node] += 1
        if own_rank < rank[node]:
            rank[node] = own_rank
        path = [node]
        for seg in segments[1:] if has_format else segments:
            edge = (node, seg.digest)
            child = edges.get(edge)
            if child is None:
                child = edges[edge] = len(depth)
                depth.append(depth[node] + seg.tokens)
                parent.append(node)
                count.append(0)
                segment.append(seg.digest)
                rank.append(own_rank)
            node = child
            count[node] += 1
            if own_rank < rank[node]:
                rank[node] = own_rank
            path.append(node)
        paths.append(tuple(path))
    return PrefixTree(requests, depth, parent, count, segment, roots, paths, rank)


def _eligible(requests: Sequence[RenderedRequest]) -> list[RenderedRequest]:
    # A request continuing a stored conversation (previous_response_id) is preceded on the
    # server by turns its segments do not show: its place in the tree says nothing.
    return [r for r in requests if r.previous_response_id is None]


def optimal_cached_tokens(
    requests: Sequence[RenderedRequest], *, min_cacheable: int = 1024, step: int = 128
) -> int:
    """The cached tokens of ``requests`` on one perfect cache (never evicts, never misroutes).

    On such a cache a request gets the deepest node it shares with any request sent before
    it, floored to ``step`` (0 below ``min_cacheable``). Whatever the order, at node N that
    happens to ``(count(N) - 1) - sum(count(child) - 1)`` requests (all but the first through
    N, less those that find a deeper node), so the total is order-independent and is the
    ceiling any plan can reach. Requests with ``previous_response_id`` are left out.
    """
    low = threshold(min_cacheable, step)
    tree = build_tree(_eligible(requests))
    excess = tree.shared_children_excess()
    total = 0
    for node, depth in enumerate(tree.depth):
        if depth >= low:
            served = tree.count[node] - 1 - excess[node]
            total += served * cacheable(depth, min_cacheable=min_cacheable, step=step)
    return total
