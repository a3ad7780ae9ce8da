"""Engine benchmark: a naive loop vs ContentGen on a generated newsroom workload, in one run.

Both talk to the same simulator (a separate process, reset between the two) with a binding
TPM limit, small fault rates and a short latency scale. Each side runs in its own child
process so its CPU time and peak RSS are its own. Printed per side: wall s, % of the TPM limit
used, 429s, cached-token %, cost and cost vs naive, failed / lost / duplicated jobs, client CPU
s per request, peak RSS; plus the workload's theoretical optimum of cached tokens and cost.

    python benchmarks/bench_engine.py                  # 400 articles x (summary, headline)
    python benchmarks/bench_engine.py --scale 100000   # ContentGen only: a 100k-job run's RSS

The naive loop is what one writes first: jobs in article order, the plain instructions-first
prompt, no grouping, no prompt_cache_key, a fixed number of workers, the SDK's default retries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from workload import generate  # noqa: E402

MODEL = "gpt-4.1-mini"
TASKS = ["summary", "headline"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, method: str = "GET") -> dict:
    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def start_simulator(port: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    cmd = [
        str(ROOT / ".venv" / "bin" / "contentgen"),
        "simulate",
        "--port",
        str(port),
        "--tpm",
        str(args.tpm),
        "--rpm",
        str(args.rpm),
        "--latency-scale",
        str(args.latency_scale),
        "--fail-rate",
        str(args.fail_rate),
        "--overload-rate",
        str(args.fail_rate / 2),
        "--drop-rate",
        str(args.fail_rate / 2),
        "--seed",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            http_json(f"http://127.0.0.1:{port}/_sim/config")
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("simulator did not start: " + proc.stderr.read().decode()[-2000:])


# -- children -----------------------------------------------------------------------------


def _claimed_jobs(workdir: Path, url: str) -> list:
    from pipeline.db.engine import make_engine, session_factory
    from pipeline.db.queries import peek_queued

    engine = make_engine(url)
    with session_factory(engine)() as session:
        jobs, _ = peek_queued(session, 10**9)
    engine.dispose()
    return jobs


def child_naive(workdir: Path, base_url: str, concurrency: int) -> dict:
    """The plain loop; returns facts about its own side."""
    import openai

    from pipeline.profiles import load_profiles
    from pipeline.prompts import render

    url = f"sqlite:///{workdir}/bench.db"
    profiles = load_profiles(workdir / "config")
    jobs = sorted(_claimed_jobs(workdir, url), key=lambda j: (j.article_id, j.task))
    bodies = [render(j, profiles[j.task], "instructions_first").body() for j in jobs]
    results: dict[int, int] = {}
    failed = 0

    async def main() -> None:
        nonlocal failed
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench")  # default retries
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(bodies)):
            queue.put_nowait(i)

        async def worker() -> None:
            nonlocal failed
            while not queue.empty():
                i = queue.get_nowait()
                try:
                    response = await client.responses.create(**bodies[i])
                    results[i] = results.get(i, 0) + 1
                    _ = response.output_text
                except openai.OpenAIError:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        await client.close()

    started = time.monotonic()
    asyncio.run(main())
    return {
        "requests": len(bodies),
        "wall_s": time.monotonic() - started,
        "failed": failed,
        "lost": len(bodies) - len(results) - failed,
        "duplicated": sum(n - 1 for n in results.values() if n > 1),
        "recorded_cost_usd": None,
    }


def child_contentgen(workdir: Path, base_url: str, tpm: int, rpm: int, concurrency: int) -> dict:
    from pydantic import SecretStr
    from sqlalchemy import func, select

    from pipeline.db.engine import make_engine, session_factory
    from pipeline.db.models import Generation, Job
    from pipeline.runner import RunOptions, run_batch
    from pipeline.settings import Settings

    url = f"sqlite:///{workdir}/bench.db"
    settings = Settings(
        database_url=url,
        config_dir=workdir / "config",
        cache_dir=workdir / "cache",
        openai_api_key=SecretStr("sk-bench"),
        openai_base_url=base_url,
        tpm_limit=tpm,
        rpm_limit=rpm,
        concurrency=concurrency,
    )
    started = time.monotonic()
    summary = run_batch(settings, RunOptions(kind="benchmark"))
    wall = time.monotonic() - started
    engine = make_engine(url)
    with session_factory(engine)() as s:
        jobs = s.execute(select(func.count()).select_from(Job)).scalar_one()
        failed = s.execute(
            select(func.count()).select_from(Job).where(Job.state == "failed")
        ).scalar_one()
        done = s.execute(
            select(func.count()).select_from(Job).where(Job.state == "succeeded")
        ).scalar_one()
        per_job = s.execute(
            select(Generation.job_id, func.count())
            .where(Generation.status == "completed")
            .group_by(Generation.job_id)
        ).all()
    engine.dispose()
    return {
        "requests": jobs,
        "wall_s": wall,
        "failed": failed,
        "lost": jobs - done - failed,
        "duplicated": sum(n - 1 for _, n in per_job if n > 1),
        "recorded_cost_usd": str(summary.totals.cost_usd),
        "expected_cached_ratio": summary.expected_cached_ratio,
    }


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: on Linux that keeps the high-water
    mark of the forked parent's memory across exec, so a child would report its parent's RSS."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir)
    # Start counting CPU after the imports both sides need, so the figure is per request
    # of the work itself, not of loading Python packages.
    import openai  # noqa: F401

    if args.child != "naive":
        import pipeline.runner  # noqa: F401
    before = resource.getrusage(resource.RUSAGE_SELF)
    if args.child == "naive":
        facts = child_naive(workdir, args.base_url, args.naive_concurrency)
    else:
        facts = child_contentgen(workdir, args.base_url, args.tpm, args.rpm, args.concurrency)
    after = resource.getrusage(resource.RUSAGE_SELF)
    facts["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    facts["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(facts))


# -- parent -------------------------------------------------------------------------------


def prepare(workdir: Path, n_articles: int) -> list:
    from pipeline.db import jobs
    from pipeline.db.engine import make_engine, session_factory
    from pipeline.db.migrate import upgrade
    from pipeline.intake import read_chunks

    workload = generate(workdir, n_articles, model=MODEL)
    url = f"sqlite:///{workdir}/bench.db"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        for chunk in read_chunks(workload.articles, chunk_size=5000):
            jobs.enqueue(session, chunk.articles, TASKS)
    engine.dispose()
    return _claimed_jobs(workdir, url)


def optimum(workdir: Path, queued: list) -> tuple[int, int]:
    """(optimal cached tokens, prompt tokens) for the workload with its best layouts."""
    from pipeline.planning import choose_layouts, optimal_cached_tokens
    from pipeline.profiles import load_profiles
    from pipeline.prompts import render

    profiles = load_profiles(workdir / "config")
    layouts = choose_layouts(queued, profiles)
    requests = [render(j, profiles[j.task], layouts[j.task]) for j in queued]
    return optimal_cached_tokens(requests), sum(r.prompt_tokens for r in requests)


def side(name: str, workdir: Path, base: str, args: argparse.Namespace) -> dict:
    http_json(f"{base}/_sim/reset", "POST")
    cmd = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--workdir",
        str(workdir),
        "--base-url",
        f"{base}/v1",
        "--tpm",
        str(args.tpm),
        "--rpm",
        str(args.rpm),
        "--concurrency",
        str(args.concurrency),
        "--naive-concurrency",
        str(args.naive_concurrency),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{name} child failed:\n{out.stderr[-3000:]}")
    facts = json.loads(lines[-1][len("RESULT ") :])
    facts["ledger"] = http_json(f"{base}/_sim/ledger")
    return facts


def row(name: str, facts: dict, args: argparse.Namespace, naive_cost: Decimal | None) -> list[str]:
    ledger = facts["ledger"]
    totals = ledger["totals"]
    limits = next(iter(ledger.get("rate_limits", {}).values()), {})
    admitted = limits.get("tokens_admitted", 0)
    possible = args.tpm * (facts["wall_s"] / 60) + args.tpm  # refill over the run + full bucket
    cost = Decimal(totals["cost_usd"])
    completed = totals["requests"].get("completed", 0) or 1
    per_job = cost / completed
    cached = totals["cached_tokens"] / totals["input_tokens"] if totals["input_tokens"] else 0
    return [
        name,
        f"{facts['wall_s']:.1f}",
        f"{100 * admitted / possible:.1f}%",
        str(totals["requests"].get("429", 0)),
        f"{100 * cached:.1f}%",
        f"{cost:.4f}",
        f"{1000 * per_job:.4f}",
        "1.00x" if naive_cost is None else f"{per_job / naive_cost:.3f}x",
        f"{facts['failed']}/{facts['lost']}/{facts['duplicated']}",
        f"{1000 * facts['cpu_s'] / facts['requests']:.2f}",
        f"{facts['peak_rss_mb']:.0f}",
    ]


def print_table(rows: list[list[str]]) -> None:
    headers = [
        "side",
        "wall s",
        "TPM used",
        "429s",
        "cached",
        "cost $",
        "m$/job",
        "vs naive",
        "fail/lost/dup",
        "CPU ms/req",
        "RSS MB",
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=400)
    parser.add_argument("--scale", type=int, default=0, help="Run ContentGen alone on N jobs.")
    parser.add_argument("--tpm", type=int, default=2_000_000)
    parser.add_argument("--rpm", type=int, default=10_000)
    parser.add_argument("--latency-scale", type=float, default=0.1)
    parser.add_argument("--fail-rate", type=float, default=0.01)
    parser.add_argument("--concurrency", type=int, default=96)
    parser.add_argument("--naive-concurrency", type=int, default=16)
    parser.add_argument("--child")
    parser.add_argument("--workdir")
    parser.add_argument("--base-url")
    args = parser.parse_args()
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(tempfile.gettempdir()) / "tiktoken-cg"))
    if args.child:
        run_child(args)
        return
    with tempfile.TemporaryDirectory(prefix="cg-bench-") as tmp:
        workdir = Path(tmp)
        articles = args.scale // len(TASKS) if args.scale else args.articles
        queued = prepare(workdir, articles)
        port = free_port()
        sim = start_simulator(port, args)
        base = f"http://127.0.0.1:{port}"
        try:
            print(
                f"workload: {articles} articles x {TASKS} = {len(queued)} jobs on {MODEL}; "
                f"simulator TPM {args.tpm:,}, RPM {args.rpm:,}, latency x{args.latency_scale}, "
                f"faults {args.fail_rate:.1%} 500 + {args.fail_rate / 2:.1%} 503 + "
                f"{args.fail_rate / 2:.1%} dropped"
            )
            if args.scale:
                facts = side("contentgen", workdir, base, args)
                print_table([row("contentgen", facts, args, None)])
                return
            opt_cached, prompt_tokens = optimum(workdir, queued)
            naive = side("naive", workdir, base, args)
            ours = side("contentgen", workdir, base, args)
            # Compared per completed job: the naive loop gives up on jobs after its retries.
            naive_totals = naive["ledger"]["totals"]
            naive_cost = Decimal(naive_totals["cost_usd"]) / (
                naive_totals["requests"].get("completed", 0) or 1
            )
            print_table(
                [row("naive", naive, args, None), row("contentgen", ours, args, naive_cost)]
            )
            totals = ours["ledger"]["totals"]
            price_in, price_cached = Decimal("0.40"), Decimal("0.10")  # gpt-4.1-mini, per 1M
            opt_cost = Decimal(totals["cost_usd"]) - (
                (opt_cached - totals["cached_tokens"]) * (price_in - price_cached) / 1_000_000
            )
            print(
                f"optimum cached tokens {opt_cached:,} of {prompt_tokens:,} prompt tokens "
                f"({opt_cached / prompt_tokens:.1%}); achieved {totals['cached_tokens']:,} "
                f"= {totals['cached_tokens'] / opt_cached:.1%} of optimum"
            )
            print(
                f"optimum cost ${opt_cost:.4f}; ContentGen ${Decimal(totals['cost_usd']):.4f} "
                f"= {Decimal(totals['cost_usd']) / opt_cost:.3f}x optimum"
            )
            for name, facts in (("naive", naive), ("contentgen", ours)):
                print(f"{name} prompt cache: {json.dumps(facts['ledger'].get('cache', {}))}")
            recorded = Decimal(ours["recorded_cost_usd"])
            billed = Decimal(totals["cost_usd"])
            print(
                f"recorded ${recorded} vs simulator bill ${billed}: "
                f"{'equal' if recorded == billed else 'DIFFERENT'}; "
                f"CPU/request vs naive {ours['cpu_s'] / naive['cpu_s']:.2f}x"
            )
        finally:
            sim.terminate()
            sim.wait(10)


if __name__ == "__main__":
    main()
