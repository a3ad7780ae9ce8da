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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.money import PromptCachePolicy, base_model_name
from pipeline.planning.breakpoints import plan_breakpoints, prewarm_positions
from pipeline.planning.keys import KEY_RATE_MARGIN, KeyBook
from pipeline.planning.tree import build_tree, cacheable, threshold
from pipeline.prompts import REQUEST_OVERHEAD_TOKENS, RenderedRequest

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
    breakpoints: tuple[int, ...] = ()
    expected_cache_write_tokens: int = 0
    prewarm: bool = False
    prewarm_tokens: int = 0
    # Grid groups: the cached tokens of the group's shared root, which any answered request on
    # the same key has put on the key's machine (what a later request there must at least read).
    root_tokens: int = 0
    # True when the expected read was written on this request's own key (or its warm root): a
    # short read then means the key spilled, not that another key's machine was elsewhere.
    own_read: bool = False

    @property
    def prompt_tokens(self) -> int:
        """Input tokens this request sends (a prewarm sends only the prefix it writes)."""
        if self.prewarm:
            return self.prewarm_tokens + REQUEST_OVERHEAD_TOKENS
        return self.request.prompt_tokens


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

    ``warmed`` holds the cache keys (and, on breakpoint models, the breakpoints) this plan
    primes; pass ``warm | plan.warmed`` as ``warm`` to the next chunk of the same run so its
    buckets skip their primers and its groups their prewarms. Prewarm requests are in
    ``requests`` (they are sent and billed); ``prompt_tokens`` and the expected tokens count them.
    """

    requests: tuple[PlannedRequest, ...]
    groups: tuple[GroupSummary, ...]
    prompt_tokens: int
    expected_cached_tokens: int
    warmed: frozenset[str]
    expected_cache_write_tokens: int = 0

    @property
    def prewarms(self) -> int:
        """How many prewarm requests the plan sends."""
        return sum(1 for p in self.requests if p.prewarm)

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
    run_total: float | None = None,
) -> int:
    """Buckets for a group: enough that none gets over ``max_bucket_rpm``, and no more.

    A group sent depth-first gets the whole send rate while it is sent, so ``planned_rpm /
    max_bucket_rpm`` buckets keep each under the limit; but a bucket that gets at most
    ``max_bucket_rpm`` requests in all can never exceed it, so a small group needs fewer, and
    every extra bucket costs one cold primer. That shortcut holds only if nothing else is sent
    with these keys within the minute: in a ``continuing`` run (the group's keys are already
    warm from an earlier chunk) the next chunk follows straight on, so the group gets what the
    rate needs. An article never spans buckets, so there are never more buckets than articles.
    ``run_total`` (the group's expected requests over the whole run) bounds a continuing
    group the same way: a key carries at most what the run will ever send with it.
    """
    by_rate = math.ceil(planned_rpm / max_bucket_rpm)
    if not continuing:
        by_size = math.ceil(size / max_bucket_rpm)
    elif run_total is not None:
        by_size = math.ceil(max(run_total, size) / max_bucket_rpm)
    else:
        by_size = by_rate
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
    policies: Mapping[str, PromptCachePolicy] | None = None,
    machines: int | None = None,
    run_scale: float | None = None,
    book: KeyBook | None = None,
) -> Plan:
    """Plan ``requests``: depth-first order, cache keys by group and bucket, and waits.

    ``expect_more`` says more chunks of the same run follow within the minute: the group's keys
    are then sized by rate alone, since the next chunk will reuse them straight away.

    ``policies`` gives each model's prompt-cache policy (``pipeline.money.cachepolicy``). Models on
    the ``grid`` regime are planned as below with their own minimum, step and key rate (``0.8 x
    key_rpm`` per bucket); models on the ``breakpoints`` regime (GPT-5.6+) get breakpoints,
    prewarms and exact expected reads and writes from ``planning.breakpoints``, and no keys.
    Without ``policies`` every model is a grid model with ``min_cacheable``, ``step`` and
    ``max_bucket_rpm``.

    ``run_scale`` is how many times this chunk's size the whole run is expected to be: a
    continuing group gets no more buckets than its share of the run needs, the same in every
    chunk of the run (its keys carry the group's requests of every chunk).

    ``book`` (a run's ``KeyBook``) deals articles to keys by the rate each key will really
    carry in any minute of the run's send schedule, over every chunk; it replaces
    ``bucket_count`` and round-robin dealing (``planned_rpm``, ``expect_more`` and
    ``run_scale`` then only matter to groups of models it does not key). The book is
    advanced past this chunk's requests.

    ``machines`` is how many cache machines one group's keys are expected to land on (None:
    each bucket its own). The provider routes a key by hash; when a group has more buckets than
    that, buckets share machines, and a bucket finds what another bucket wrote on its machine:
    expectations and waits are then kept per machine, not per bucket.

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
    threshold(min_cacheable, step)  # validates the defaults
    fallback = _GridRules(min_cacheable, step, max_bucket_rpm)
    rules: dict[str, _GridRules | PromptCachePolicy] = {}

    def rules_of(model: str) -> _GridRules | PromptCachePolicy:
        found = rules.get(model)
        if found is None:
            policy = _policy(policies, model)
            found = rules[model] = fallback if policy is None else policy
        return found

    tree = build_tree(requests)
    order = tree.dfs_order()
    depth = tree.depth
    size = len(order)
    keys: list[str | None] = [None] * size
    waits: list[int | tuple[str, int] | None] = [None] * size
    expected = [0] * size
    group_of: list[str | None] = [None] * size
    bucket_at: list[int | None] = [None] * size
    root_tokens = [0] * size
    own_read = [False] * size

    # Group membership by root node, in send order (a group is a subtree, so it is contiguous
    # but for chained requests, which are ordered by their segments and never grouped).
    members: dict[int, list[int]] = {}
    root_at = [0] * size
    explicit: list[tuple[int, int]] = []
    for pos, index in enumerate(order):
        request = requests[index]
        if request.previous_response_id is not None:
            continue
        model_rules = rules_of(request.model)
        if isinstance(model_rules, PromptCachePolicy) and model_rules.explicit:
            explicit.append((pos, index))
            continue
        low = model_rules.threshold
        for at, node in enumerate(tree.paths[index]):
            if depth[node] >= low:
                members.setdefault(node, []).append(pos)
                root_at[pos] = at
                break

    groups: list[GroupSummary] = []
    warmed: set[str] = set()
    ordered = [requests[i] for i in order] if book is not None else []
    for root, positions in members.items():
        model_rules = rules_of(requests[order[positions[0]]].model)
        grid_step = model_rules.step
        gid = f"cg-{tree.digest(root)[:12]}"
        model = requests[order[positions[0]]].model
        article_bucket: dict[int, int] = {}
        if book is not None:
            article_bucket = _deal(book, gid, model, positions, ordered)
            buckets = book.keys(gid)
        else:
            for pos in positions:
                article = requests[order[pos]].article_id
                if article not in article_bucket:
                    article_bucket[article] = len(article_bucket)
            buckets = bucket_count(
                len(positions),
                len(article_bucket),
                planned_rpm=planned_rpm,
                max_bucket_rpm=_bucket_rpm(model_rules),
                continuing=expect_more or f"{gid}-0" in warm,
                run_total=None if run_scale is None else len(positions) * run_scale,
            )
        bucket_keys = [f"{gid}-{b}" for b in range(buckets)]
        is_warm = [key in warm for key in bucket_keys]
        # Per cache machine: node -> position of the first request through it there (its
        # writer). Keys route to machines by hash; with more buckets than machines, buckets
        # share one (dealt round-robin here, the expected spread of a hash).
        shared_by = buckets if machines is None else max(1, min(buckets, machines))
        registries: list[dict[int, int]] = [{} for _ in range(shared_by)]
        for b, hot in enumerate(is_warm):
            if hot:
                registries[b % shared_by][root] = _WARM
        primers = [-1] * buckets
        for pos in positions:
            index = order[pos]
            bucket = article_bucket[requests[index].article_id] % buckets
            registry = registries[bucket % shared_by]
            path = tree.paths[index][root_at[pos] :]
            keys[pos], group_of[pos], bucket_at[pos] = bucket_keys[bucket], gid, bucket
            root_tokens[pos] = model_rules.cacheable(depth[root])
            at = len(path) - 1
            while at >= 0 and path[at] not in registry:
                at -= 1
            if at < 0:
                primers[bucket] = pos
                waits[pos] = _parent_primer(bucket, primers, is_warm)
            else:
                # Among the shared nodes that floor to the same cached tokens, the shallowest
                # has the earliest writer (or is the warm root: no wait at all).
                value = model_rules.cacheable(depth[path[at]])
                while at > 0 and depth[path[at - 1]] // grid_step * grid_step == value:
                    at -= 1
                writer = registry[path[at]]
                expected[pos] = value
                waits[pos] = None if writer == _WARM else writer
                own_read[pos] = writer == _WARM or keys[writer] == keys[pos]
            for node in path:
                registry.setdefault(node, pos)
        warmed.update(bucket_keys)
        groups.append(
            GroupSummary(
                key_prefix=gid,
                model=model,
                size=len(positions),
                articles=len(article_bucket),
                prefix_tokens=depth[root],
                buckets=buckets,
            )
        )

    def policy_of(model: str) -> PromptCachePolicy:
        found = rules_of(model)
        assert isinstance(found, PromptCachePolicy)
        return found

    bp = plan_breakpoints(tree, requests, explicit, policy_of, warm)
    for pos, value in bp.expected_cached.items():
        expected[pos] = value
        waits[pos] = bp.waits.get(pos)
        group_of[pos] = bp.group_of.get(pos)
    warmed.update(bp.written)
    for gid, stats in bp.groups.items():
        groups.append(
            GroupSummary(gid, stats.model, stats.size, len(stats.articles), stats.prefix_tokens, 0)
        )

    # Final order: each prewarm goes right before the first request that waits for it; plan
    # positions are renumbered, and every wait points to an earlier index.
    before = prewarm_positions(bp)
    final_index: dict[int, int] = {}
    prewarm_index: dict[int, int] = {}
    slots: list[tuple[str, int]] = []
    for pos in range(size):
        for number in before.get(pos, ()):
            prewarm_index[number] = len(slots)
            slots.append(("prewarm", number))
        final_index[pos] = len(slots)
        slots.append(("request", pos))

    def resolve_wait(wait: int | tuple[str, int] | None) -> int | None:
        if wait is None:
            return None
        if isinstance(wait, tuple):
            return prewarm_index[wait[1]]
        return final_index[wait]

    resolved = [resolve_wait(w) for w in waits]
    waited = {w for w in resolved if w is not None}
    planned: list[PlannedRequest] = []
    for slot, (kind, ref) in enumerate(slots):
        if kind == "prewarm":
            pre = bp.prewarms[ref]
            planned.append(
                PlannedRequest(
                    index=slot,
                    request=requests[pre.index],
                    cache_key=None,
                    wait_for=None,
                    is_primer=True,
                    expected_cached_tokens=0,
                    group=pre.group,
                    breakpoints=(pre.segment,),
                    expected_cache_write_tokens=pre.tokens,
                    prewarm=True,
                    prewarm_tokens=pre.tokens,
                )
            )
            continue
        pos = ref
        planned.append(
            PlannedRequest(
                index=slot,
                request=requests[order[pos]],
                cache_key=keys[pos],
                wait_for=resolved[pos],
                is_primer=slot in waited,
                expected_cached_tokens=expected[pos],
                group=group_of[pos],
                bucket=bucket_at[pos],
                root_tokens=root_tokens[pos],
                own_read=own_read[pos],
                breakpoints=bp.breakpoints.get(pos, ()),
                expected_cache_write_tokens=bp.expected_writes.get(pos, 0),
            )
        )
    if book is not None:
        book.advance(size)
    return Plan(
        requests=tuple(planned),
        groups=tuple(groups),
        prompt_tokens=sum(p.prompt_tokens for p in planned),
        expected_cached_tokens=sum(p.expected_cached_tokens for p in planned),
        warmed=frozenset(warmed),
        expected_cache_write_tokens=sum(p.expected_cache_write_tokens for p in planned),
    )


@dataclass(frozen=True)
class _GridRules:
    """The grid rules ``plan`` applies to a model without a policy (its arguments)."""

    min_cacheable: int
    step: int
    max_bucket_rpm: float

    @property
    def threshold(self) -> int:
        return threshold(self.min_cacheable, self.step)

    def cacheable(self, depth: int) -> int:
        return cacheable(depth, min_cacheable=self.min_cacheable, step=self.step)


def _policy(
    policies: Mapping[str, PromptCachePolicy] | None, model: str
) -> PromptCachePolicy | None:
    if policies is None:
        return None
    return policies.get(model) or policies.get(base_model_name(model))


def _bucket_rpm(rules: _GridRules | PromptCachePolicy) -> float:
    if isinstance(rules, PromptCachePolicy):
        return rules.key_rpm * KEY_RATE_MARGIN
    return rules.max_bucket_rpm


def _deal(
    book: KeyBook, gid: str, model: str, positions: list[int], ordered: list[RenderedRequest]
) -> dict[int, int]:
    """Each article of a group on a key from ``book``: all its requests in the group together,
    at the position of its first one."""
    first: dict[int, int] = {}
    count: dict[int, int] = {}
    for pos in positions:
        article = ordered[pos].article_id
        first.setdefault(article, pos)
        count[article] = count.get(article, 0) + 1
    return {a: book.assign(gid, model, first[a], count[a]) for a in first}


def _parent_primer(bucket: int, primers: list[int], is_warm: list[bool]) -> int | None:
    """The primer a cold bucket's primer waits for: its nearest cold, opened ancestor's.

    Buckets open in order, so an opened ancestor's primer (a lower bucket) is always earlier.
    """
    while bucket > 0:
        bucket = (bucket - 1) // 2
        if not is_warm[bucket] and primers[bucket] >= 0:
            return primers[bucket]
    return None
