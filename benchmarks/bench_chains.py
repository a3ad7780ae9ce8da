"""Task chains benchmark: headline written after the summary as the next turn, vs independently.

One run, same articles, same simulator settings, two fresh databases:

- independent: summary and headline are separate requests (article-first layout shares the
  style guide, section brief and article between them);
- chain: headline ``follows`` summary, sent as the next turn of the summary's conversation
  (the summary's whole prompt, its answer, then the headline instruction).

Prints, per side, the headline requests' cached-token % and cost, and the totals.

    python benchmarks/bench_chains.py [--articles 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from workload import generate


def run_side(workdir: Path, n: int, *, chain: bool, base_url: str) -> dict[str, object]:
    from pydantic import SecretStr
    from sqlalchemy import func, select

    from pipeline.db import Generation, make_engine, queue, session_factory, upgrade
    from pipeline.intake import read_chunks
    from pipeline.run import RunOptions, run_batch
    from pipeline.settings import Settings

    workload = generate(workdir, n, chain=chain)
    url = f"sqlite:///{workdir}/chains.db"
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions() as session:
        for chunk in read_chunks(workload.articles):
            queue.enqueue(
                session,
                chunk.articles,
                ["summary", "headline"],
                start_states={"headline": "waiting"} if chain else None,
            )
    settings = Settings(
        database_url=url,
        config_dir=workload.config_dir,
        cache_dir=workdir / "cache",
        openai_api_key=SecretStr("sk-bench"),
        openai_base_url=base_url,
        concurrency=32,
    )
    summary = run_batch(settings, RunOptions(kind="benchmark"))
    with sessions() as session:
        rows = session.execute(
            select(
                Generation.task,
                func.count(),
                func.sum(Generation.input_tokens),
                func.sum(Generation.cached_tokens),
                func.sum(Generation.cost_usd),
            )
            .where(Generation.status == "completed")
            .group_by(Generation.task)
        ).all()
    engine.dispose()
    by_task = {task: (count, inp, cached, cost) for task, count, inp, cached, cost in rows}
    return {"summary": summary, "by_task": by_task}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(tempfile.gettempdir()) / "tiktoken-cg"))
    from pipeline.simulator import SimulatorConfig, SimulatorServer

    results = {}
    for chain in (False, True):
        with (
            tempfile.TemporaryDirectory(prefix="cg-chains-") as tmp,
            SimulatorServer(SimulatorConfig(latency_scale=0.02, seed=3)) as sim,
        ):
            results[chain] = run_side(Path(tmp), args.articles, chain=chain, base_url=sim.base_url)
            results[chain]["billed"] = Decimal(sim.ledger()["totals"]["cost_usd"])
    print(f"{args.articles} articles: summary + headline on gpt-4.1-mini (simulator)")
    print(
        f"{'side':12} {'headline cached':>16} {'headline $':>12} "
        f"{'total cached':>13} {'total $':>11}"
    )
    for chain, name in ((False, "independent"), (True, "chain")):
        r = results[chain]
        _count, inp, cached, cost = r["by_task"]["headline"]
        totals = r["summary"].totals
        print(
            f"{name:12} {cached / inp:>16.1%} {cost:>12.6f} "
            f"{totals.cached_ratio:>13.1%} {totals.cost_usd:>11.6f}"
        )
        assert totals.cost_usd == r["billed"], "recorded cost must equal the simulator's bill"
    base, chained = results[False]["summary"].totals, results[True]["summary"].totals
    print(
        f"chain cost vs independent: {chained.cost_usd / base.cost_usd:.3f}x "
        f"(recorded costs equal the simulator's bill on both sides)"
    )


if __name__ == "__main__":
    main()
