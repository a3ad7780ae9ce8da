"""GPT-5.6+ prompt caching on gpt-5.6-luna: breakpoints, exact boundaries, paid writes, TTL."""

from __future__ import annotations

from typing import Any

import openai
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.money.pricing import Usage
from pipeline.prompts.tokens import count_tokens
from pipeline.simulator import SimulatorConfig, SimulatorServer, prompt_token_ids
from pipeline.simulator.breakpoints import BreakpointCache, lookup_positions
from pipeline.simulator.cacheoptions import cache_request
from pipeline.simulator.clock import SimClock
from pipeline.simulator.prompt import render_prompt
from tests.simulator.support import PRICES, message, shared_prefix, text_block, usage_of, words

MODEL = "gpt-5.6-luna"
# A ~1,500-token developer block; the boundary after it is not a multiple of 128.
DEVELOPER = "House rules. " + words(1500)
# Header (2 ids) + message start, role, separator (3) + the block's text.
BOUNDARY = 5 + count_tokens(DEVELOPER, MODEL)


def developer(*, breakpoint: bool = True) -> dict[str, Any]:
    """The shared developer message, its block marked with a breakpoint unless told not to."""
    return message("developer", text_block(DEVELOPER, breakpoint=breakpoint))


def body(article: str, mode: str | None = "explicit", **extra: Any) -> dict[str, Any]:
    """A luna request: the developer block with a breakpoint, then ``article`` as the user."""
    options: dict[str, Any] = {} if mode is None else {"prompt_cache_options": {"mode": mode}}
    return {
        "model": MODEL,
        "input": [developer(), message("user", text_block(article))],
        **options,
        **extra,
    }


def send(client: openai.OpenAI, data: dict[str, Any]) -> Usage:
    """Send a request body; return its usage."""
    return usage_of(client.responses.create(**data))


def test_the_boundary_is_where_the_breakpoint_sits() -> None:
    """The position counts ids through the block's last token, before the message end."""
    assert BOUNDARY % 128 != 0 and 1024 < BOUNDARY < 1700
    ids = prompt_token_ids(body("Article one."))
    assert ids[BOUNDARY] == -5  # the developer message's end token comes right after


def test_explicit_breakpoint_writes_then_hits_the_exact_boundary(client: openai.OpenAI) -> None:
    """First request writes up to the breakpoint; the next one reads exactly that many tokens."""
    first = send(client, body("Article one: " + words(200, "rain")))
    assert (first.cached_tokens, first.cache_write_tokens) == (0, BOUNDARY)
    second = send(client, body("Article two: " + words(300, "snow")))
    assert (second.cached_tokens, second.cache_write_tokens) == (BOUNDARY, 0)


def test_explicit_mode_without_breakpoints_writes_nothing(client: openai.OpenAI) -> None:
    """mode explicit with no breakpoint: no write, so a repeat reads nothing either."""
    data = {
        "model": MODEL,
        "input": [developer(breakpoint=False), message("user", text_block("Article."))],
        "prompt_cache_options": {"mode": "explicit"},
    }
    for _ in range(2):
        usage = send(client, data)
        assert (usage.cached_tokens, usage.cache_write_tokens) == (0, 0)


def test_implicit_mode_writes_up_to_the_last_user_message(client: openai.OpenAI) -> None:
    """Implicit (the default) writes through the article: an article nobody reuses pays 1.25x."""
    plain = [developer(breakpoint=False), message("user", text_block("Article one. " + words(400)))]
    r = client.responses.create(model=MODEL, input=plain)
    usage = usage_of(r)
    user_end = usage.input_tokens - 2  # the user message's end token and the reply token follow
    assert r.prompt_cache_options is not None and r.prompt_cache_options.mode == "implicit"
    assert (usage.cached_tokens, usage.cache_write_tokens) == (0, user_end)
    price = PRICES.price(MODEL)
    written = user_end * price.input * 5 / 4 + 2 * price.input + usage.output_tokens * price.output
    assert PRICES.cost(MODEL, usage) == written / 1_000_000
    other = [developer(breakpoint=False), message("user", text_block("Article two. " + words(400)))]
    again = usage_of(client.responses.create(model=MODEL, input=other))
    assert again.cached_tokens == 0 and again.cache_write_tokens == again.input_tokens - 2
    repeat = usage_of(client.responses.create(model=MODEL, input=plain))
    assert (repeat.cached_tokens, repeat.cache_write_tokens) == (user_end, 0)


def test_implicit_lookup_finds_the_developer_block_end(client: openai.OpenAI) -> None:
    """An implicit request reads a prefix written at the end of the initial developer block."""
    send(client, body("Article one."))  # explicit: writes BOUNDARY only
    plain = [developer(breakpoint=False), message("user", text_block("Article two."))]
    usage = usage_of(client.responses.create(model=MODEL, input=plain))
    assert usage.cached_tokens == BOUNDARY
    assert usage.cache_write_tokens == usage.input_tokens - 2 - BOUNDARY


def _six_blocks(*texts: str) -> list[dict[str, Any]]:
    """A developer message of blocks, each closed by a breakpoint."""
    return [message("developer", *(text_block(t, breakpoint=True) for t in texts))]


BLOCKS = ("Base. " + words(1100), *(f"Part {n}. " + words(200) for n in range(2, 7)))


def _positions() -> list[int]:
    ends, at = [], 5
    for text in BLOCKS:
        at += count_tokens(text, MODEL)
        ends.append(at)
    return ends


def test_at_most_four_writes_the_latest_breakpoints(
    sim: SimulatorServer, client: openai.OpenAI
) -> None:
    """Six explicit breakpoints: the latest four are written, billed up to the deepest."""
    positions = _positions()
    options = {"mode": "explicit"}
    first = send(
        client, {"model": MODEL, "input": _six_blocks(*BLOCKS), "prompt_cache_options": options}
    )
    assert (first.cached_tokens, first.cache_write_tokens) == (0, positions[-1])
    assert sim.ledger()["cache"]["entries"] == 4
    three = [*_six_blocks(*BLOCKS[:3]), message("user", text_block("Other."))]
    hit = send(client, {"model": MODEL, "input": three, "prompt_cache_options": options})
    assert (hit.cached_tokens, hit.cache_write_tokens) == (positions[2], 0)
    two = [*_six_blocks(*BLOCKS[:2]), message("user", text_block("Other."))]
    miss = send(client, {"model": MODEL, "input": two, "prompt_cache_options": options})
    assert miss.cached_tokens == 0  # the first two breakpoints never got a slot


def test_in_implicit_mode_the_implicit_breakpoint_takes_a_slot(
    sim: SimulatorServer, client: openai.OpenAI
) -> None:
    """Implicit mode: the end of the user message plus the latest three explicit breakpoints."""
    positions = _positions()
    data = {"model": MODEL, "input": [*_six_blocks(*BLOCKS), message("user", text_block("Go."))]}
    first = send(client, data)
    assert first.cache_write_tokens == first.input_tokens - 2
    assert sim.ledger()["cache"]["entries"] == 4
    explicit = {"mode": "explicit"}
    four = send(
        client,
        {"model": MODEL, "input": _six_blocks(*BLOCKS[:4]), "prompt_cache_options": explicit},
    )
    assert four.cached_tokens == positions[3]
    three = send(
        client,
        {"model": MODEL, "input": _six_blocks(*BLOCKS[:3]), "prompt_cache_options": explicit},
    )
    assert three.cached_tokens == 0


def test_prewarm_writes_without_generating(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """prewarm: completed, no output, billed as writes; the next request hits the prefix."""
    r = client.responses.create(
        model=MODEL,
        input=[developer()],
        prompt_cache_options={"mode": "explicit", "prewarm": True},
    )
    assert r.status == "completed" and r.output == []
    usage = usage_of(r)
    assert usage == Usage(BOUNDARY + 2, 0, 0, 0, BOUNDARY)
    assert (
        PRICES.cost(MODEL, usage)
        == (BOUNDARY * PRICES.price(MODEL).write_rate + 2 * PRICES.price(MODEL).input) / 1_000_000
    )
    after = send(client, body("Article one."))
    assert (after.cached_tokens, after.cache_write_tokens) == (BOUNDARY, 0)
    assert sim.ledger()["cache"]["prewarms"] == 1


def test_prewarm_can_stream(client: openai.OpenAI) -> None:
    """A streamed prewarm sends created, in_progress and completed with no output."""
    events = list(
        client.responses.create(
            model=MODEL,
            input=[developer()],
            prompt_cache_options={"mode": "explicit", "prewarm": True},
            stream=True,
        )
    )
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.completed",
    ]
    final = events[-1].response
    assert final.output == [] and usage_of(final).cache_write_tokens == BOUNDARY


def test_entries_live_30_minutes_after_the_last_write_or_read(
    sim: SimulatorServer, client: openai.OpenAI
) -> None:
    """ttl 30m: a read at 29 min refreshes the entry; 31 idle minutes expire it."""
    send(client, body("Article one."))
    for article in ("two", "three"):
        sim.advance(29 * 60)
        assert send(client, body(f"Article {article}.")).cached_tokens == BOUNDARY
    sim.advance(31 * 60)
    expired = send(client, body("Article four."))
    assert (expired.cached_tokens, expired.cache_write_tokens) == (0, BOUNDARY)


def test_routing_is_automatic_and_the_key_is_accounting_only(client: openai.OpenAI) -> None:
    """Different keys share one cache; a burst never overflows."""
    send(client, body("Article 0.", prompt_cache_key="a"))
    for n in range(1, 31):
        usage = send(client, body(f"Article {n}.", prompt_cache_key=f"key-{n % 3}"))
        assert usage.cached_tokens == BOUNDARY


def test_a_follow_up_turn_reads_the_earlier_user_message_end(client: openai.OpenAI) -> None:
    """previous_response_id: the earlier turn's implicit write is an earlier message ending."""
    first = client.responses.create(
        model=MODEL,
        input=[developer(breakpoint=False), message("user", text_block("Hi. " + words(1200)))],
    )
    turn_one = usage_of(first).input_tokens - 2
    second = client.responses.create(
        model=MODEL, previous_response_id=first.id, input="And the headline?"
    )
    usage = usage_of(second)
    assert usage.cached_tokens == turn_one
    assert usage.cache_write_tokens == usage.input_tokens - 2 - turn_one


def test_the_response_echoes_the_applied_options(client: openai.OpenAI) -> None:
    """prompt_cache_options comes back with its mode and default ttl; no retention."""
    r = client.responses.create(**body("x"))
    assert r.prompt_cache_options is not None
    assert (r.prompt_cache_options.mode, r.prompt_cache_options.ttl) == ("explicit", "30m")
    assert r.prompt_cache_retention is None


def _blocks_body(sizes: list[int], marks: list[bool], word: str, mode: str) -> dict[str, Any]:
    blocks = [
        text_block(f"Part {i}. " + words(size, word), breakpoint=mark)
        for i, (size, mark) in enumerate(zip(sizes, marks, strict=False))
    ]
    return {
        "model": MODEL,
        "input": [message("developer", *blocks), message("user", text_block("Go."))],
        "prompt_cache_options": {"mode": mode},
    }


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=900), min_size=1, max_size=8),
    marks=st.lists(st.booleans(), min_size=8, max_size=8),
    modes=st.tuples(*[st.sampled_from(["implicit", "explicit"])] * 2),
    keep=st.integers(min_value=0, max_value=8),
)
def test_breakpoint_rules_hold_for_any_prompts(
    sizes: list[int], marks: list[bool], modes: tuple[str, str], keep: int
) -> None:
    """cached is 0 or a candidate >= 1024 within the shared prefix; <= 4 writes, deeper than it."""
    cache = BreakpointCache(SimulatorConfig(), SimClock(frozen=True))
    policy = PRICES.policy(MODEL)
    first = _blocks_body(sizes, marks, "word", modes[0])
    second = _blocks_body(sizes[:keep], marks, "word", modes[1])
    second["input"][0]["content"] += [text_block("Other. " + words(300, "zed"), breakpoint=True)]
    shared = shared_prefix(first, second)
    written: list[int] = []
    for data in (first, second):
        prompt = render_prompt(data)
        request = cache_request(data, prompt, policy)
        found = cache.lookup(MODEL, prompt, request)
        cached = found.cached_tokens
        assert cached == 0 or (cached >= 1024 and cached in lookup_positions(prompt, request))
        assert cached + found.cache_write_tokens < len(prompt.ids)
        assert len(found.writes) <= 4 and all(w.position > cached for w in found.writes)
        if data is second:
            assert cached <= shared
            reachable = [
                p for p in written if p <= shared and p in lookup_positions(prompt, request)
            ]
            assert cached == max(reachable, default=0)
        cache.write(MODEL, found.writes)
        written = [w.position for w in found.writes]
