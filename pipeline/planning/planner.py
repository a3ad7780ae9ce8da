"""The plan: send order, prompt-cache keys and waits that turn shared prefixes into cache hits.

A provider caches a prompt prefix only after a request carrying it has finished, on the machine
that served it, and routes a request by a hash of its first ~256 tokens plus its
``prompt_cache_key``; past ~15 requests a minute per prefix and key, requests spill onto cold
machines. So the planner (1) orders requests depth-first over the prefix tree, (2) gives each
group of requests sharing a cacheable prefix one key per bucket, with enough buckets to keep
each under ``max_bucket_rpm``, and (3) makes each request wait for the request that writes the
longest prefix it can reuse on its bucket's machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.planning.tree import build_tree, cacheable, threshold
from pipeline.requests import REQUEST_OVERHEAD_TOKENS, RenderedRequest

# In a bucket's registry: the node is already cached from an earlier chunk (the key is warm).
_WARM = -1


@dataclass(frozen=True)
class PlannedRequest:
    """One request in send order, with its cache key and what it must wait for.

    ``wait_for`` is the ``index`` of an earlier request that must complete before this one is
    sent (None: send at once). ``is_primer`` is True when some later request waits for this
    one. ``group`` is the group's key prefix (``cg-<12 hex>``) and ``bucket`` its bucket;
    both None for requests that share no cacheable prefix (they get no ``cache_key``).
    """

    index: int
    request: RenderedRequest
    cache_key: str | None
    wait_for: int | None
    is_primer: bool
    expected_cached_tokens: int
    group: str | None
    bucket: int | None = None


@dataclass(frozen=True)
class GroupSummary:
    """A group: its key prefix, model, size, articles, cacheable prefix depth and buckets."""

    key_prefix: str
    model: str
    size: int
    articles: int
    prefix_tokens: int
    buckets: int


@dataclass(frozen=True)
class Plan:
    """The requests in send order, their groups, and the cached tokens the plan expects.

    ``warmed`` holds the cache keys this plan primes; pass ``warm | plan.warmed`` as ``warm``
    to the next chunk of the same run so its buckets skip their primers.
    """

    requests: tuple[PlannedRequest, ...]
    groups: tuple[GroupSummary, ...]
    prompt_tokens: int
    expected_cached_tokens: int
    warmed: frozenset[str]

    @property
    def expected_cached_ratio(self) -> float:
        """Expected cached share of all prompt tokens (0.0 for an empty plan)."""
        return self.expected_cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


def bucket_count(
    size: int,
    articles: int,
    *,
    planned_rpm: float,
    max_bucket_rpm: float,
    continuing: bool = False,
) -> int:
    """Buckets for a group: enough that none gets over ``max_bucket_rpm``, and no more.

    A group sent depth-first gets the whole send rate while it is sent, so ``planned_rpm /
    max_bucket_rpm`` buckets keep each under the limit; but a bucket that gets at most
    ``max_bucket_rpm`` requests in all can never exceed it, so a small group needs fewer, and
    every extra bucket costs one cold primer. That shortcut holds only if nothing else is sent
    with these keys within the minute: in a ``continuing`` run (the group's keys are already
    warm from an earlier chunk) the next chunk follows straight on, so the group gets what the
    rate needs. An article never spans buckets, so there are never more buckets than articles.
    """
    by_rate = math.ceil(planned_rpm / max_bucket_rpm)
    by_size = by_rate if continuing else math.ceil(size / max_bucket_rpm)
    return max(1, min(by_rate, by_size, articles))


def plan(
    requests: Sequence[RenderedRequest],
    *,
    planned_rpm: float,
    warm: frozenset[str] = frozenset(),
    max_bucket_rpm: float = 12.0,
    min_cacheable: int = 1024,
    step: int = 128,
    expect_more: bool = False,
) -> Plan:
    """Plan ``requests``: depth-first order, cache keys by group and bucket, and waits.

    ``expect_more`` says more chunks of the same run follow within the minute: the group's keys
    are then sized by rate alone, since the next chunk will reuse them straight away.

    Definitions (depths in segment tokens, see ``planning.tree``):

    - A request's *group root* is the shallowest node on its path whose depth is cacheable
      (``>= min_cacheable`` once floored to ``step``). Requests with the same group root form
      a group (possibly of one: the key still lets a later chunk reuse a warm cache); requests
      with no such node, or with ``previous_response_id``, are in no group and get no key,
      wait or expected cache. Choosing the shallowest cacheable node makes the key depend on
      the request alone, so every chunk of a run names the same group the same way, and puts
      everything that can share a cached prefix on one set of machines.
    - The group is split into ``bucket_count`` buckets, key ``cg-<root digest[:12]>-<bucket>``
      (a group whose bucket 0 is in ``warm`` is a continuing one: it gets the buckets the rate
      needs, not just what this chunk's size needs). Articles, in send order, are dealt
      round-robin to buckets; all requests of an article share a bucket, so the article itself
      is shared in cache, and consecutive articles go to different buckets, spreading the rate.
    - In each bucket, a request waits for the first request of the bucket that passed through
      the deepest node it shares with an earlier request of the bucket, and expects that
      node's depth cached (floored); of nodes that floor alike, the shallowest (its writer was
      sent first). The bucket's first request (its *primer*) shares nothing yet: in bucket
      ``b > 0`` it waits for the primer of bucket ``(b - 1) // 2`` so cold primers fan out as
      a binary tree instead of a storm, and expects nothing (its key may route to a machine
      that has never seen the prefix). A bucket whose key is in ``warm`` starts with its group
      root cached: no primer wait, and every request expects at least the root.

    Every ``wait_for`` points to an earlier index, so an executor sending in order never waits
    on something it has not sent. ``planned_rpm`` is the rate the requests will be sent at.
    ``warm`` only ever raises expectations; ``expected_cached_tokens`` never exceeds
    ``optimal_cached_tokens`` without it.
    """
    if planned_rpm <= 0 or max_bucket_rpm <= 0:
        raise ValueError(f"rates must be > 0, got {planned_rpm=}, {max_bucket_rpm=}")
    low = threshold(min_cacheable, step)
    tree = build_tree(requests)
    order = tree.dfs_order()
    depth = tree.depth
    size = len(order)
    keys: list[str | None] = [None] * size
    waits: list[int | None] = [None] * size
    expected = [0] * size
    group_of: list[str | None] = [None] * size
    bucket_at: list[int | None] = [None] * size

    # Group membership by root node, in send order (a group is a subtree, so it is contiguous
    # but for chained requests, which are ordered by their segments and never grouped).
    members: dict[int, list[int]] = {}
    root_at = [0] * size
    for pos, index in enumerate(order):
        if requests[index].previous_response_id is not None:
            continue
        for at, node in enumerate(tree.paths[index]):
            if depth[node] >= low:
                members.setdefault(node, []).append(pos)
                root_at[pos] = at
                break

    groups: list[GroupSummary] = []
    warmed: set[str] = set()
    for root, positions in members.items():
        gid = f"cg-{tree.digest(root)[:12]}"
        article_bucket: dict[int, int] = {}
        for pos in positions:
            article = requests[order[pos]].article_id
            if article not in article_bucket:
                article_bucket[article] = len(article_bucket)
        buckets = bucket_count(
            len(positions),
            len(article_bucket),
            planned_rpm=planned_rpm,
            max_bucket_rpm=max_bucket_rpm,
            continuing=expect_more or f"{gid}-0" in warm,
        )
        bucket_keys = [f"{gid}-{b}" for b in range(buckets)]
        is_warm = [key in warm for key in bucket_keys]
        # Per bucket: node -> position of the first request through it there (its writer).
        registries: list[dict[int, int]] = [{root: _WARM} if hot else {} for hot in is_warm]
        primers = [-1] * buckets
        for pos in positions:
            index = order[pos]
            bucket = article_bucket[requests[index].article_id] % buckets
            registry = registries[bucket]
            path = tree.paths[index][root_at[pos] :]
            keys[pos], group_of[pos], bucket_at[pos] = bucket_keys[bucket], gid, bucket
            at = len(path) - 1
            while at >= 0 and path[at] not in registry:
                at -= 1
            if at < 0:
                primers[bucket] = pos
                waits[pos] = _parent_primer(bucket, primers, is_warm)
            else:
                # Among the shared nodes that floor to the same cached tokens, the shallowest
                # has the earliest writer (or is the warm root: no wait at all).
                value = cacheable(depth[path[at]], min_cacheable=min_cacheable, step=step)
                while at > 0 and depth[path[at - 1]] // step * step == value:
                    at -= 1
                writer = registry[path[at]]
                expected[pos] = value
                waits[pos] = None if writer == _WARM else writer
            for node in path:
                registry.setdefault(node, pos)
        warmed.update(bucket_keys)
        groups.append(
            GroupSummary(
                key_prefix=gid,
                model=requests[order[positions[0]]].model,
                size=len(positions),
                articles=len(article_bucket),
                prefix_tokens=depth[root],
                buckets=buckets,
            )
        )

    waited = {w for w in waits if w is not None}
    planned = tuple(
        PlannedRequest(
            index=pos,
            request=requests[index],
            cache_key=keys[pos],
            wait_for=waits[pos],
            is_primer=pos in waited,
            expected_cached_tokens=expected[pos],
            group=group_of[pos],
            bucket=bucket_at[pos],
        )
        for pos, index in enumerate(order)
    )
    return Plan(
        requests=planned,
        groups=tuple(groups),
        # The leaf depth is every segment's tokens: the same sum as ``prompt_tokens``, cheaper.
        prompt_tokens=sum(depth[path[-1]] for path in tree.paths)
        + REQUEST_OVERHEAD_TOKENS * len(requests),
        expected_cached_tokens=sum(expected),
        warmed=frozenset(warmed),
    )


def _parent_primer(bucket: int, primers: list[int], is_warm: list[bool]) -> int | None:
    """The primer a cold bucket's primer waits for: its nearest cold, opened ancestor's.

    Buckets open in order, so an opened ancestor's primer (a lower bucket) is always earlier.
    """
    while bucket > 0:
        bucket = (bucket - 1) // 2
        if not is_warm[bucket] and primers[bucket] >= 0:
            return primers[bucket]
    return None
