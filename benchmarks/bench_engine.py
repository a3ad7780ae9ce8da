"""Engine benchmark: a naive loop vs ContentGen on a generated newsroom workload, in one run.

Both talk to the same simulator (a separate process, reset between the two) with a binding
TPM limit, small fault rates and a short latency scale. Each side runs in its own child
process so its CPU time and peak RSS are its own. Printed per side: wall s, % of the TPM limit
used, 429s, cached-token % and cache writes, cost and cost per job against the optimum,
failed / lost / duplicated jobs, client CPU per request, peak RSS. Two more rows are computed,
not run: "no cache" (the same jobs with every input token at the input rate) and "optimum"
(the workload's theoretical best for the model's cache regime: on grid models the perfect
cache's cached tokens; on breakpoint models one write per shared prefix and reads for the
rest). Both are priced on ContentGen's rendered prompts and its actual output tokens.

    python benchmarks/bench_engine.py                          # 400 articles, gpt-4.1-mini
    python benchmarks/bench_engine.py --model gpt-5.6-luna     # paid writes, breakpoints
    python benchmarks/bench_engine.py --articles 200           # a small ad-hoc batch
    python benchmarks/bench_engine.py --scale 100000           # ContentGen only: RSS at 100k
    python benchmarks/bench_engine.py --sections cost          # the cost table alone
    python benchmarks/bench_engine.py --tasks 4                # four tasks sharing the article
    python benchmarks/bench_engine.py --matrix                 # issue 19's rows (ContentGen only)
    python benchmarks/bench_engine.py --matrix --sizes 5000 --speeds full   # the long rows

``--matrix`` runs ContentGen alone per model x tasks (2, or the shipped config's 4 sharing the
style guide and the article) x articles x speed (full, or paced to ``--paced-deadline-h``) and
prints per row: wall, TPM used, spills (requests the simulator routed past a key's rate), cost
against the row's optimum (the article-shared one for 4 tasks), the in-run forecast's error,
the error of a dry run made after the run over the same jobs (what the next night would be
told), the live panel's projected cost and ETA errors once 10% of the run is done, the learnt
per-key rate, failed/lost/duplicated jobs, whether the recorded cost equals the bill, and the
client's CPU per request. The simulator's knobs (``--bill-tokens x0.53``, ``--overflow-rpm``,
``--overflow-per key|prefix``, ``--cache-machines``) make it a server that bills, routes or
spills differently.

After the cost table the same run prints the throughput sections of ``throughput.py``: % of
the binding TPM used when the server counts tokens differently from tiktoken, client CPU
against a plain AsyncOpenAI loop, results recorded per second, and 1 / 2 / 4 runners on one
account (``--sections`` picks; all by default, about 15 minutes on 2 cores).

The naive loop is what one writes first: jobs in article order, one prompt with the
instructions first, no grouping, no prompt_cache_key, a fixed number of workers, the SDK's
default retries. On GPT-5.6+ models it sends the instructions, style guide and brief as
top-level ``instructions`` and lets the API cache in its default (implicit) mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import claimed_jobs, free_port, http_json, prepare, tasks_for


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
        "--bill-tokens",
        args.bill_tokens,
        "--overflow-rpm",
        str(args.overflow_rpm),
        "--overflow-per",
        args.overflow_per,
        "--cache-machines",
        str(args.cache_machines),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60  # a loaded machine imports slowly
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            http_json(f"http://127.0.0.1:{port}/_sim/config")
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("simulator did not start: " + proc.stderr.read().decode()[-2000:])


# -- children -----------------------------------------------------------------------------


def naive_body(request: object, explicit: bool) -> dict:
    """The body a plain loop sends; on breakpoint models the system prompt goes top level."""
    body = request.body()  # type: ignore[attr-defined]
    if not explicit:
        return body
    system = [m["content"] for m in body["input"] if m["role"] == "developer"]
    body["instructions"] = "\n\n".join(system)
    body["input"] = [m for m in body["input"] if m["role"] != "developer"]
    return body


def child_naive(workdir: Path, base_url: str, concurrency: int) -> dict:
    """The plain loop; returns facts about its own side."""
    import openai

    from pipeline.money import load_pricing
    from pipeline.prompts import load_profiles, render

    url = f"sqlite:///{workdir}/bench.db"
    profiles = load_profiles(workdir / "config")
    prices = load_pricing(workdir / "config" / "pricing.toml")
    jobs = sorted(claimed_jobs(workdir, url), key=lambda j: (j.article_id, j.task))
    bodies = []
    for j in jobs:
        profile = profiles[j.task]
        request = render(j, profile, "instructions_first")
        bodies.append(naive_body(request, prices.policy(profile.model).explicit))
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


def child_contentgen(
    workdir: Path, base_url: str, tpm: int, rpm: int, concurrency: int, pace_h: float
) -> dict:
    from pydantic import SecretStr
    from sqlalchemy import func, select

    from pipeline.db import Generation, Job, Run, make_engine, session_factory
    from pipeline.run import RunOptions, run_batch
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
    seen: dict[str, float] = {}

    def watch(progress: object) -> None:
        # The live projection once a tenth of the run is done (the panel's figures).
        view = progress.view()  # type: ignore[attr-defined]
        if "at_s" not in seen and view.total and view.finished >= view.total / 10:
            seen["at_s"] = time.monotonic() - started
            seen["projected_usd"] = float(view.projected_usd or 0)
            seen["eta_s"] = view.eta_s if view.eta_s is not None else -1.0
            if os.environ.get("BENCH_DEBUG"):
                print("DEBUG", view, progress.limiter, file=sys.stderr)  # type: ignore[attr-defined]

    summary = run_batch(
        settings,
        RunOptions(kind="benchmark", pace=bool(pace_h) or None, pace_h=pace_h or None),
        progress=watch,
    )
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
        forecast_usd = s.execute(
            select(Run.forecast_cost_usd).where(Run.id == summary.run_id)
        ).scalar_one()
        # The next night's dry run over the same jobs: its forecast now knows each task's
        # output from this run's history.
        s.execute(Job.__table__.update().values(state="queued"))
        s.commit()
    engine.dispose()
    from pipeline.run import dry_run

    night2 = dry_run(settings, RunOptions(pace_h=pace_h or None))
    return {
        "projection": seen,
        "key_rates": summary.key_rates or {},
        "dry_run_cost_usd": str(night2.cost_usd),
        "dry_run_cached_ratio": night2.cached_ratio,
        "requests": jobs,
        "wall_s": wall,
        "failed": failed,
        "lost": jobs - done - failed,
        "duplicated": sum(n - 1 for _, n in per_job if n > 1),
        "recorded_cost_usd": str(summary.totals.cost_usd),
        "expected_cached_ratio": summary.expected_cached_ratio,
        "forecast_cost_usd": str(forecast_usd),
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
        import pipeline.run.runner  # noqa: F401
    before = resource.getrusage(resource.RUSAGE_SELF)
    if args.child == "naive":
        facts = child_naive(workdir, args.base_url, args.naive_concurrency)
    else:
        facts = child_contentgen(
            workdir, args.base_url, args.tpm, args.rpm, args.concurrency, args.pace_h
        )
    after = resource.getrusage(resource.RUSAGE_SELF)
    facts["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    facts["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(facts))


# -- parent -------------------------------------------------------------------------------


def breakpoint_optimum(requests: list, policy: object) -> tuple[int, int]:
    """(cached, written) tokens with one write per shared prefix and reads for the rest.

    Every node of the prefix tree that at least two requests pass through (and that reaches
    the minimum) is written once, by the first request through it, at its depth less what
    that request read; every later request reads the deepest such node on its path. Nodes
    whose child carries the same requests add nothing (the child is deeper and as shared).
    """
    from pipeline.planning import build_tree

    tree = build_tree(requests)
    same_child = {
        tree.parent[n]
        for n in range(len(tree.depth))
        if tree.parent[n] >= 0 and tree.count[n] == tree.count[tree.parent[n]]
    }
    shared = {
        n
        for n in range(len(tree.depth))
        if tree.parent[n] >= 0
        and tree.count[n] >= 2
        and tree.depth[n] >= policy.min_prefix  # type: ignore[attr-defined]
        and n not in same_child
    }
    written: set[int] = set()
    cached = writes = 0
    for path in tree.paths:
        nodes = [n for n in path if n in shared]
        read = next((n for n in reversed(nodes) if n in written), None)
        read_depth = 0 if read is None else tree.depth[read]
        cached += read_depth
        if nodes and nodes[-1] not in written:
            writes += tree.depth[nodes[-1]] - read_depth
        written.update(nodes)
    return cached, writes


def optimum(workdir: Path, queued: list, model: str) -> dict:
    """The workload's best case for ``model``'s cache regime, on its best layouts."""
    from pipeline.money import load_pricing
    from pipeline.planning import choose_layouts, optimal_cached_tokens
    from pipeline.prompts import load_profiles, render

    profiles = load_profiles(workdir / "config")
    prices = load_pricing(workdir / "config" / "pricing.toml")
    policy = prices.policy(model)
    layouts = choose_layouts(queued, profiles, policies={model: policy})
    requests = [render(j, profiles[j.task], layouts[j.task]) for j in queued]
    if policy.explicit:
        cached, writes = breakpoint_optimum(requests, policy)
    else:
        cached = optimal_cached_tokens(requests, min_cacheable=policy.min_prefix, step=policy.step)
        writes = 0
    return {
        "prompt_tokens": sum(r.prompt_tokens for r in requests),
        "cached_tokens": cached,
        "cache_write_tokens": writes,
        "price": prices.price(model),
    }


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
        "--pace-h",
        str(args.pace_h),
        "--tasks",
        str(args.tasks),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if os.environ.get("BENCH_DEBUG"):
        print("\n".join(x for x in out.stderr.splitlines() if x.startswith("DEBUG")))
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{name} child failed:\n{out.stderr[-3000:]}")
    facts = json.loads(lines[-1][len("RESULT ") :])
    facts["ledger"] = http_json(f"{base}/_sim/ledger")
    return facts


def jobs_done(ledger: dict) -> int:
    """Jobs the side got an answer for (prewarms are billed but answer no job)."""
    requests = ledger["totals"]["requests"]
    answered = requests.get("completed", 0) + requests.get("incomplete", 0)
    return max(1, answered - ledger.get("cache", {}).get("prewarms", 0))


def row(name: str, facts: dict, args: argparse.Namespace, best: Decimal | None) -> list[str]:
    ledger = facts["ledger"]
    totals = ledger["totals"]
    limits = next(iter(ledger.get("rate_limits", {}).values()), {})
    admitted = limits.get("tokens_admitted", 0)
    possible = args.tpm * (facts["wall_s"] / 60) + args.tpm  # refill over the run + full bucket
    cost = Decimal(totals["cost_usd"])
    per_job = cost / jobs_done(ledger)
    cached = totals["cached_tokens"] / totals["input_tokens"] if totals["input_tokens"] else 0
    writes = totals.get("cache_write_tokens", 0)
    return [
        name,
        f"{facts['wall_s']:.1f}",
        f"{100 * admitted / possible:.1f}%",
        str(totals["requests"].get("429", 0)),
        f"{100 * cached:.1f}%",
        f"{writes:,}",
        f"{cost:.4f}",
        f"{1000 * per_job:.4f}",
        "-" if best is None else f"{per_job / best:.3f}x",
        f"{facts['failed']}/{facts['lost']}/{facts['duplicated']}",
        f"{1000 * facts['cpu_s'] / facts['requests']:.2f}",
        f"{facts['peak_rss_mb']:.0f}",
    ]


def computed_row(
    name: str, cost: Decimal, jobs: int, cached: int, writes: int, prompt: int, best: Decimal
) -> list[str]:
    per_job = cost / jobs
    return [
        name,
        "-",
        "-",
        "-",
        f"{100 * cached / prompt:.1f}%",
        f"{writes:,}",
        f"{cost:.4f}",
        f"{1000 * per_job:.4f}",
        f"{per_job / best:.3f}x",
        "-",
        "-",
        "-",
    ]


def print_table(rows: list[list[str]]) -> None:
    headers = [
        "side",
        "wall s",
        "TPM used",
        "429s",
        "cached",
        "writes",
        "cost $",
        "m$/job",
        "vs optimum",
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
    parser.add_argument("--model", default="gpt-4.1-mini", help="The model of every profile.")
    parser.add_argument(
        "--tasks",
        type=int,
        choices=(2, 4),
        default=2,
        help="2: summary and headline; 4: the shipped config's shape (four tasks sharing the "
        "style guide and the article).",
    )
    parser.add_argument("--scale", type=int, default=0, help="Run ContentGen alone on N jobs.")
    parser.add_argument("--tpm", type=int, default=2_000_000)
    parser.add_argument("--rpm", type=int, default=10_000)
    parser.add_argument("--latency-scale", type=float, default=0.1)
    parser.add_argument("--fail-rate", type=float, default=0.01)
    parser.add_argument("--concurrency", type=int, default=96)
    parser.add_argument("--naive-concurrency", type=int, default=16)
    parser.add_argument(
        "--pace-h",
        type=float,
        default=0.0,
        help="ContentGen paces its run to finish within this many hours (0: unpaced).",
    )
    parser.add_argument(
        "--sections",
        default="cost,limits,cpu,process,recording,runners",
        help="Comma list of: cost (this table), limits, cpu, process (whole-process CPU, "
        "start-up included, against a plain loop process), recording, runners.",
    )
    parser.add_argument("--bill-tokens", default="o200k", help="Simulator: x0.53 bills fewer.")
    parser.add_argument("--overflow-rpm", type=int, default=15, help="Simulator: per-key rate.")
    parser.add_argument("--overflow-per", default="key", help="Simulator: key or prefix.")
    parser.add_argument("--cache-machines", type=int, default=8, help="Simulator machines.")
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="The rows of issue 19: ContentGen alone per model x tasks x articles x speed "
        "(--models, --task-counts, --sizes, --speeds pick them).",
    )
    parser.add_argument("--models", default="gpt-4.1-mini,gpt-5-mini,gpt-5.5,gpt-5.6-luna")
    parser.add_argument("--task-counts", default="2,4")
    parser.add_argument("--sizes", default="200,500")
    parser.add_argument("--speeds", default="full,paced")
    parser.add_argument(
        "--paced-deadline-h",
        type=float,
        default=0.05,
        help="Matrix: the deadline a paced row is paced to (hours).",
    )
    parser.add_argument("--child")
    parser.add_argument("--workdir")
    parser.add_argument("--base-url")
    args = parser.parse_args()
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(tempfile.gettempdir()) / "tiktoken-cg"))
    if args.child:
        run_child(args)
        return
    if args.matrix:
        matrix(args)
        return
    sections = args.sections.split(",")
    if "cost" in sections or args.scale:
        cost_table(args)
    others = [s for s in sections if s != "cost"]
    if others and not args.scale:
        import throughput

        throughput.run_sections(others, throughput.ARTICLES)


def cost_table(args: argparse.Namespace) -> None:
    """The cost table: naive loop, no cache, ContentGen and the optimum on one workload."""
    with tempfile.TemporaryDirectory(prefix="cg-bench-") as tmp:
        workdir = Path(tmp)
        names = tasks_for(args.tasks)
        articles = args.scale // len(names) if args.scale else args.articles
        queued = prepare(workdir, articles, args.model, args.tasks)
        port = free_port()
        sim = start_simulator(port, args)
        base = f"http://127.0.0.1:{port}"
        try:
            print(
                f"workload: {articles} articles x {names} = {len(queued)} jobs on {args.model}; "
                f"simulator TPM {args.tpm:,}, RPM {args.rpm:,}, latency x{args.latency_scale}, "
                f"faults {args.fail_rate:.1%} 500 + {args.fail_rate / 2:.1%} 503 + "
                f"{args.fail_rate / 2:.1%} dropped"
                + (f"; ContentGen paced to {args.pace_h} h" if args.pace_h else "")
            )
            if args.scale:
                facts = side("contentgen", workdir, base, args)
                print_table([row("contentgen", facts, args, None)])
                return
            best = optimum(workdir, queued, args.model)
            naive = side("naive", workdir, base, args)
            ours = side("contentgen", workdir, base, args)
            report(best, naive, ours, args)
        finally:
            sim.terminate()
            sim.wait(10)


def report(best: dict, naive: dict, ours: dict, args: argparse.Namespace) -> None:
    """Print the table and the checks: the optimum and no-cache rows use ContentGen's prompts
    (its layouts) and its actual output tokens, so only the prompt cache differs."""
    price = best["price"]
    totals = ours["ledger"]["totals"]
    jobs = jobs_done(ours["ledger"])
    output = totals["output_tokens"]
    prompt = best["prompt_tokens"]
    mtok = Decimal(1_000_000)

    def priced(cached: int, writes: int) -> Decimal:
        ordinary = prompt - cached - writes
        return (
            ordinary * price.input
            + cached * price.cached_rate
            + writes * price.write_rate
            + output * price.output
        ) / mtok

    opt_cost = priced(best["cached_tokens"], best["cache_write_tokens"])
    bare_cost = priced(0, 0)
    per_best = opt_cost / jobs
    print_table(
        [
            row("naive", naive, args, per_best),
            computed_row("no cache", bare_cost, jobs, 0, 0, prompt, per_best),
            row("contentgen", ours, args, per_best),
            computed_row(
                "optimum",
                opt_cost,
                jobs,
                best["cached_tokens"],
                best["cache_write_tokens"],
                prompt,
                per_best,
            ),
        ]
    )
    cost = Decimal(totals["cost_usd"])
    print(
        f"optimum: {best['cached_tokens']:,} cached + {best['cache_write_tokens']:,} written of "
        f"{prompt:,} prompt tokens; ContentGen cached {totals['cached_tokens']:,}, wrote "
        f"{totals.get('cache_write_tokens', 0):,}, sent {totals['input_tokens']:,} "
        f"({ours['ledger'].get('cache', {}).get('prewarms', 0)} prewarms)"
    )
    print(
        f"ContentGen ${cost:.4f} = {cost / opt_cost:.3f}x optimum ${opt_cost:.4f}; "
        f"{cost / bare_cost:.3f}x no-cache ${bare_cost:.4f}; naive "
        f"{Decimal(naive['ledger']['totals']['cost_usd']) / opt_cost:.3f}x optimum"
    )
    for name, facts in (("naive", naive), ("contentgen", ours)):
        print(f"{name} prompt cache: {json.dumps(facts['ledger'].get('cache', {}))}")
    recorded = Decimal(ours["recorded_cost_usd"])
    print(
        f"recorded ${recorded} vs simulator bill ${cost}: "
        f"{'equal' if recorded == cost else 'DIFFERENT'}; forecast cached "
        f"{ours.get('expected_cached_ratio', 0):.1%} vs achieved "
        f"{totals['cached_tokens'] / max(1, totals['input_tokens']):.1%}, forecast cost "
        f"${Decimal(ours['forecast_cost_usd']):.4f} = "
        f"{Decimal(ours['forecast_cost_usd']) / cost:.3f}x actual; "
        f"CPU/request vs naive {ours['cpu_s'] / naive['cpu_s']:.2f}x"
    )
    night2 = Decimal(ours["dry_run_cost_usd"])
    print(
        f"next dry run over the same jobs (output learned from history): cost ${night2:.4f} = "
        f"{night2 / cost:.3f}x this run, cached {ours['dry_run_cached_ratio']:.1%}"
    )


def matrix(args: argparse.Namespace) -> None:
    """ContentGen alone on each row, against the row's optimum, in one table."""
    print(
        f"simulator TPM {args.tpm:,}, RPM {args.rpm:,}, latency x{args.latency_scale}, faults "
        f"{args.fail_rate:.1%} 500 + {args.fail_rate / 2:.1%} 503 + {args.fail_rate / 2:.1%} "
        f"dropped; {args.cache_machines} cache machines, overflow {args.overflow_rpm}/min per "
        f"{args.overflow_per}, bills {args.bill_tokens}; paced rows to {args.paced_deadline_h} h"
    )
    rows = []
    for model in args.models.split(","):
        for tasks in (int(t) for t in args.task_counts.split(",")):
            for articles in (int(n) for n in args.sizes.split(",")):
                for speed in args.speeds.split(","):
                    row_args = argparse.Namespace(**vars(args))
                    row_args.model, row_args.tasks = model, tasks
                    row_args.pace_h = args.paced_deadline_h if speed == "paced" else 0.0
                    rows.append(matrix_row(row_args, articles, speed))
                    print_matrix(rows[-1:], header=len(rows) == 1)


def matrix_row(args: argparse.Namespace, articles: int, speed: str) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="cg-bench-") as tmp:
        workdir = Path(tmp)
        queued = prepare(workdir, articles, args.model, args.tasks)
        port = free_port()
        sim = start_simulator(port, args)
        try:
            best = optimum(workdir, queued, args.model)
            ours = side("contentgen", workdir, f"http://127.0.0.1:{port}", args)
        finally:
            sim.terminate()
            sim.wait(10)
    ledger = ours["ledger"]
    totals = ledger["totals"]
    price = best["price"]
    mtok = Decimal(1_000_000)
    # The optimum in the server's tokens: our prompts at its billing factor.
    scale = Decimal(totals["input_tokens"]) / Decimal(max(1, best["prompt_tokens"]))
    prompt = best["prompt_tokens"] * scale
    cached = best["cached_tokens"] * scale
    writes = best["cache_write_tokens"] * scale
    opt = (
        (prompt - cached - writes) * price.input
        + cached * price.cached_rate
        + writes * price.write_rate
        + totals["output_tokens"] * price.output
    ) / mtok
    cost = Decimal(totals["cost_usd"])
    limits = next(iter(ledger.get("rate_limits", {}).values()), {})
    possible = args.tpm * (ours["wall_s"] / 60) + args.tpm
    projection = ours.get("projection") or {}
    remaining_s = ours["wall_s"] - projection.get("at_s", 0.0)
    eta = projection.get("eta_s", -1.0)
    rates = ours.get("key_rates") or {}
    rate = next(iter(rates.values()), {})
    recorded = Decimal(ours["recorded_cost_usd"])
    return [
        args.model,
        str(args.tasks),
        str(articles),
        speed,
        f"{ours['wall_s']:.0f}",
        f"{100 * limits.get('tokens_admitted', 0) / possible:.0f}%",
        str(ledger.get("cache", {}).get("overflow_routes", 0)),
        f"{cost / opt:.3f}x",
        f"{Decimal(ours['forecast_cost_usd']) / cost - 1:+.1%}",
        f"{Decimal(ours['dry_run_cost_usd']) / cost - 1:+.1%}",
        f"{Decimal(str(projection.get('projected_usd', 0))) / cost - 1:+.1%}"
        if projection
        else "-",
        f"{eta / remaining_s - 1:+.0%}" if projection and eta >= 0 and remaining_s > 0 else "-",
        f"{rate.get('rpm', '-')}",
        f"{ours['failed']}/{ours['lost']}/{ours['duplicated']}",
        "yes" if recorded == cost else "NO",
        f"{1000 * ours['cpu_s'] / ours['requests']:.2f}",
    ]


def print_matrix(rows: list[list[str]], *, header: bool) -> None:
    headers = [
        "model",
        "tasks",
        "articles",
        "speed",
        "wall s",
        "TPM used",
        "spills",
        "vs optimum",
        "forecast",
        "dry run after",
        "live @10%",
        "ETA @10%",
        "key rpm",
        "fail/lost/dup",
        "cost==bill",
        "CPU ms/req",
    ]
    widths = [max(len(h), 12 if i == 0 else 0) for i, h in enumerate(headers)]
    if header:
        print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)), flush=True)


if __name__ == "__main__":
    main()
