"""Cost of each mode against a naive realtime loop, on the newsroom workload (one run, one table).

Four ways to generate the same jobs (``summary`` and ``headline`` of every article, on a
flex-capable reasoning model), each against its own fresh simulator so no variant inherits
another's prompt cache:

- naive realtime: a plain loop in article order, the static prompt first but no
  ``prompt_cache_key``, a fixed concurrency, the SDK's default retries, the standard tier;
- ContentGen realtime: ``contentgen run`` (cache-aware plan, keys, primers, limiter);
- ContentGen flex: ``contentgen run --mode flex`` (the same plan at the flex tier);
- ContentGen batch: ``contentgen run --mode batch`` (the same plan as Batch API files).

Costs are what the simulator billed (its ledger), checked against what ContentGen recorded.
The goal is flex with cache-aware planning at <= 0.30x the naive cost.

    .venv/bin/python benchmarks/bench_modes.py [--articles 300] [--model gpt-5-mini]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.workload import Workload, generate
from pipeline.batchmode import run_batch_mode
from pipeline.db import (
    ClaimedJob,
    make_engine,
    queue,
    session_factory,
    upgrade,
)
from pipeline.intake import read_chunks
from pipeline.money import load_pricing
from pipeline.prompts import (
    load_profiles,
    render,
)
from pipeline.run import RunOptions, run_batch
from pipeline.settings import Settings
from pipeline.simulator import (
    SimulatorConfig,
    SimulatorServer,
)

TASKS = ("summary", "headline")
GOAL_FLEX_RATIO = Decimal("0.30")
NAIVE_CONCURRENCY = 16


@dataclass(frozen=True)
class Outcome:
    """One variant: what the simulator billed, what was recorded, and how long it took."""

    name: str
    requests: int
    completed: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    billed_usd: Decimal
    recorded_usd: Decimal | None
    wall_s: float


def tune_for_reasoning(work: Workload, model: str) -> None:
    """Give a reasoning model ``reasoning_effort = "minimal"``, as a newsroom would for short
    copy: at the default (medium) effort the reasoning alone fills the 40-200-token output
    caps, every answer comes back ``incomplete`` with no text, and the comparison is moot."""
    if not model.startswith(("gpt-5", "o")):
        return
    path = work.config_dir / "profiles.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        re.sub(r"(?m)^(max_output_tokens = \d+)$", r'\1\nreasoning_effort = "minimal"', text),
        encoding="utf-8",
    )


def sim_config(args: argparse.Namespace) -> SimulatorConfig:
    """The same account for every variant: a small latency, a little flex unavailability."""
    return SimulatorConfig(
        latency_scale=args.latency_scale,
        rpm=args.rpm,
        tpm=args.tpm,
        flex_unavailable_rate=0.02,
        batch_speed=500.0,
        seed=3,
    )


def settings_for(
    work: Workload, root: Path, sim: SimulatorServer, args: argparse.Namespace
) -> Settings:
    """A fresh migrated SQLite database with the workload queued, pointed at ``sim``."""
    db = root / "contentgen.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        for chunk in read_chunks(work.articles):
            queue.enqueue(session, chunk.articles, list(TASKS))
    engine.dispose()
    return Settings(
        database_url=url,
        config_dir=work.config_dir,
        cache_dir=root / "cache",
        openai_base_url=sim.base_url,
        openai_api_key=SecretStr("sk-bench"),
        rpm_limit=args.rpm,
        tpm_limit=args.tpm,
        batch_poll_s=0.05,
        batch_poll_max_s=0.2,
    )


def billed(sim: SimulatorServer) -> tuple[int, int, int, int, int, Decimal]:
    """Billed and completed requests, input, cached and output tokens, and cost (the
    simulator's ledger)."""
    totals: dict[str, Any] = sim.ledger()["totals"]
    done = totals["requests"]["completed"]
    paid = done + totals["requests"]["incomplete"]
    inp, cached, out = totals["input_tokens"], totals["cached_tokens"], totals["output_tokens"]
    return paid, done, inp, cached, out, Decimal(totals["cost_usd"])


async def naive_loop(work: Workload, sim: SimulatorServer) -> None:
    """A plain loop: article order, no cache key, fixed concurrency, SDK retries, standard."""
    profiles = load_profiles(work.config_dir)
    client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="sk-bench")  # default retries
    gate = asyncio.Semaphore(NAIVE_CONCURRENCY)
    bodies = []
    number = 0
    for chunk in read_chunks(work.articles):
        for article in chunk.articles:
            for task in TASKS:
                number += 1
                job = ClaimedJob(
                    number, task, 1, None, number, article.source_id, article.title,
                    article.body, article.section, None, None, None,
                )  # fmt: skip
                bodies.append(render(job, profiles[task], "instructions_first").body())

    async def send(body: dict[str, Any]) -> None:
        async with gate:
            await client.responses.create(**body)

    try:
        await asyncio.gather(*(send(b) for b in bodies))
    finally:
        await client.close()


def run_variant(name: str, work: Workload, args: argparse.Namespace) -> Outcome:
    """Run one variant against a fresh simulator and database."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-modes-") as tmp,
        SimulatorServer(sim_config(args)) as sim,
    ):
        settings = settings_for(work, Path(tmp), sim, args)
        started = time.monotonic()
        recorded: Decimal | None = None
        if name == "naive realtime":
            asyncio.run(naive_loop(work, sim))
        elif name == "batch":
            recorded = run_batch_mode(settings, RunOptions(mode="batch")).totals.cost_usd
        else:
            mode = "flex" if name == "flex" else "realtime"
            recorded = run_batch(settings, RunOptions(mode=mode)).totals.cost_usd
        wall = time.monotonic() - started
        paid, done, inp, cached, out, cost = billed(sim)
    return Outcome(name, paid, done, inp, cached, out, cost, recorded, wall)


def main() -> None:
    """Run the four variants and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--model", default="gpt-5-mini")
    parser.add_argument("--latency-scale", type=float, default=0.02)
    parser.add_argument("--rpm", type=int, default=5_000)
    parser.add_argument("--tpm", type=int, default=4_000_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-modes-work-") as tmp:
        work = generate(Path(tmp), args.articles, model=args.model)
        tune_for_reasoning(work, args.model)
        output_rate = load_pricing(work.config_dir / "pricing.toml").price(args.model).output
        outcomes = [
            run_variant(name, work, args)
            for name in ("naive realtime", "ContentGen realtime", "flex", "batch")
        ]
    base = outcomes[0].billed_usd
    print(f"\n{args.articles} articles x {len(TASKS)} tasks on {args.model}")
    header = (
        f"{'mode':<20} {'requests':>8} {'done':>5} {'cached %':>8} {'cost USD':>10}"
        f" {'vs naive':>9} {'wall s':>7}  recorded = billed"
    )
    print(header)
    print("-" * len(header))
    for o in outcomes:
        ratio = o.billed_usd / base if base else Decimal(0)
        cached = 100 * o.cached_tokens / o.input_tokens if o.input_tokens else 0.0
        check = (
            "-"
            if o.recorded_usd is None
            else ("yes" if o.recorded_usd == o.billed_usd else f"NO ({o.recorded_usd})")
        )
        print(
            f"{o.name:<20} {o.requests:>8} {o.completed:>5} {cached:>7.1f}% {o.billed_usd:>10.6f}"
            f" {ratio:>8.3f}x {o.wall_s:>7.1f}  {check}"
        )
    flex = next(o for o in outcomes if o.name == "flex")
    ratio = flex.billed_usd / base if base else Decimal(0)
    verdict = "met" if ratio <= GOAL_FLEX_RATIO else "NOT met"
    print(f"\ngoal: flex <= {GOAL_FLEX_RATIO}x naive realtime: {ratio:.3f}x ({verdict})")
    naive = outcomes[0]
    output_share = naive.output_tokens * output_rate / 1_000_000 / base if base else Decimal(0)
    print(
        f"output (incl. reasoning) is {output_share:.0%} of the naive bill: no cache discounts it,"
        f" so at half price it alone is {output_share / 2:.3f}x"
    )


if __name__ == "__main__":
    main()
