"""What the checks cost in CPU per request, against the same path without them, in one run.

Two sections:

- **recording path** (in process, no network): the shipped summary, headline and key_points
  profiles render the 36 sample articles; each gets a simulated answer (word limits kept or
  not, the article's figures and names, now and then one changed). Timed per request: what the
  send path does with an answer (``judge``: price, schema, generation row; the journal entry
  as JSON), once with the profiles' checks and once without, alternating rounds, medians.
- **end to end**: a whole ``contentgen run`` in a child process against a simulator process,
  limits off and latency 0, on the benchmark workload with and without checks declared
  (bounds, banned words, facts; ``on_fail = "flag"`` so both sides send the same requests).
  Each run starts from a copy of the same queued database. Printed: the client's CPU ms per
  request of each side (alternating runs), median and minimum, and the ratios; and, less
  noisy on a shared machine, the CPU spent inside the checks as a share of the run's CPU,
  timed in the same process.

    python benchmarks/bench_checks.py                   # both sections (about 2 minutes)
    python benchmarks/bench_checks.py --only recording --rounds 20
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import harness
import throughput

CHECKS_TOML = """
[profiles.summary.checks]
max_words = 70
banned = ["shocking", "horrific", "stunning", "going forward", "in terms of", "!"]
facts = true

[profiles.headline.checks]
max_words = 12
max_chars = 100
banned = ["shocking", "horrific", "stunning", "going forward", "in terms of", "!"]
facts = true
"""


def answers() -> list[tuple[object, object]]:
    """(request, result) pairs: every sample article for summary, headline and key_points."""
    from pipeline.client import APIResult
    from pipeline.intake import read_chunks
    from pipeline.money import Usage
    from pipeline.prompts import ArticleJob, load_profiles, render
    from pipeline.simulator.following import article_facts, schema_asked, word_limit
    from pipeline.simulator.text import GenerationRequest, generate

    profiles = load_profiles(ROOT / "config")
    articles = [a for c in read_chunks(ROOT / "samples" / "articles.jsonl") for a in c.articles]
    pairs = []
    for n, article in enumerate(articles):
        for task in ("summary", "headline", "key_points"):
            profile = profiles[task]
            job = ArticleJob(
                id=n * 3 + len(pairs) % 3,
                task=task,
                attempts=0,
                batch_label=None,
                article_id=n,
                source_id=article.source_id,
                title=article.title,
                body=article.body,
                section=article.section,
                url=article.url,
                published_at=None,
                metadata=None,
                content_hash=article.content_hash,
            )
            request = render(job, profile, "instructions_first")
            body = request.body()
            fmt = (body.get("text") or {}).get("format") or None
            asked = schema_asked(body)
            if fmt is None and asked is not None:
                fmt = {"type": "json_schema", "schema": asked}
            generation = generate(
                GenerationRequest(
                    model=profile.model,
                    key=len(pairs) * 7919,
                    max_output_tokens=profile.max_output_tokens,
                    temperature=profile.temperature or 1.0,
                    top_p=profile.top_p or 1.0,
                    effort=None,
                    summary=False,
                    text_format=fmt,
                    word_limit=word_limit(body),
                    facts=article_facts(body),
                ),
                obey_rate=0.85,
                hallucination_rate=0.03,
            )
            result = APIResult(
                response_id=f"resp_{len(pairs)}",
                model=profile.model,
                status="completed",
                output_text=generation.text,
                usage=Usage(
                    input_tokens=request.prompt_tokens,
                    cached_tokens=1024,
                    output_tokens=generation.output_tokens,
                ),
                latency_s=0.5,
                service_tier="default",
            )
            pairs.append((request, result))
    return pairs


def section_recording(rounds: int) -> tuple[float, float]:
    """Medians of µs per answer through the recording path, without and with checks."""
    from pipeline.checks.facts import source_index
    from pipeline.money import load_pricing
    from pipeline.run.recording import judge
    from pipeline.run.recovery import journal_entry

    prices = load_pricing(ROOT / "config" / "pricing.toml")
    with_checks = answers()
    plain_profiles = {}
    without = []
    for request, result in with_checks:
        profile = request.profile  # type: ignore[attr-defined]
        if profile.task not in plain_profiles:
            plain_profiles[profile.task] = replace(profile, checks=None)
        without.append((replace(request, profile=plain_profiles[profile.task]), result))  # type: ignore[type-var]

    def recorded(request: object, result: object) -> object:
        """What the send path does with one answer: judge it, write its journal entry."""
        verdict = judge(
            request,  # type: ignore[arg-type]
            result,  # type: ignore[arg-type]
            run_id=1,
            prices=prices,
            attempts=1,
            from_cache=False,
            cache_key="k",
        )
        json.dumps(journal_entry(verdict, ()), default=str)
        return verdict

    def one_round(pairs: list[tuple[object, object]]) -> float:
        source_index.cache_clear()  # each round reads every article anew, as a run would
        started = time.process_time()
        for request, result in pairs:
            recorded(request, result)
        return (time.process_time() - started) / len(pairs) * 1e6

    one_round(without)  # warm up imports and caches
    one_round(with_checks)
    off: list[float] = []
    on: list[float] = []
    for _ in range(rounds):
        off.append(one_round(without))
        on.append(one_round(with_checks))
    base, checked = statistics.median(off), statistics.median(on)
    flagged = sum(
        1
        for request, result in with_checks
        if recorded(request, result).generation.flagged  # type: ignore[attr-defined]
    )
    print(
        f"\nrecording path: {len(with_checks)} answers (summary, headline, key_points of the "
        f"36 sample articles), {rounds} alternating rounds, medians; {flagged} flagged"
    )
    throughput.table(
        ["side", "µs/answer", "vs without"],
        [
            ["without checks", f"{base:.1f}", "1.000x"],
            ["with checks", f"{checked:.1f}", f"{checked / base:.3f}x"],
        ],
    )
    print(f"checks add {checked - base:.1f} µs per answer")
    return base, checked


def section_end_to_end(articles: int, repeats: int) -> dict[str, list[float]]:
    """Client CPU ms per request of whole runs, with and without checks, alternating."""
    root = Path(tempfile.mkdtemp(prefix="bench-checks-"))
    try:
        plain = root / "plain"
        plain.mkdir()
        harness.prepare(plain, articles, "gpt-4.1-mini")
        checked = root / "checked"
        checked.mkdir()
        shutil.copytree(plain / "config", checked / "config")
        with (checked / "config" / "profiles.toml").open("a", encoding="utf-8") as fh:
            fh.write(CHECKS_TOML)
        pristine = root / "queued.db"
        conn = sqlite3.connect(plain / "bench.db")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # one file holds everything
        conn.close()
        shutil.copyfile(plain / "bench.db", pristine)
        url = f"sqlite:///{root}/run.db"
        per: dict[str, list[float]] = {"without checks": [], "with checks": []}
        shares: list[float] = []
        requests = 0
        for _ in range(repeats):
            for name, workdir in (("without checks", plain), ("with checks", checked)):
                # Every run starts from the same queued database, so neither side pays for
                # the other's history.
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{root}/run.db{suffix}").unlink(missing_ok=True)
                shutil.copyfile(pristine, root / "run.db")
                with throughput.Simulator(
                    tpm=10**9, rpm=10**8, latency=0.0, counting="o200k"
                ) as sim:
                    facts = throughput.collect(spawn(workdir, sim.base, url), name)
                requests = facts["requests"]
                per[name].append(1000 * facts["cpu_s"] / facts["requests"])
                if name == "with checks":
                    shares.append(facts["checks_s"] / facts["cpu_s"])
        base = statistics.median(per["without checks"])
        print(
            f"\nend to end: {requests} requests a run, limits off, latency 0, concurrency 64, "
            f"{repeats} runs each side (alternating), medians"
        )
        throughput.table(
            ["side", "CPU ms/req", "min", "runs", "vs without (median)", "(min)"],
            [
                [
                    name,
                    f"{statistics.median(v):.3f}",
                    f"{min(v):.3f}",
                    " ".join(f"{x:.2f}" for x in v),
                    f"{statistics.median(v) / base:.3f}x",
                    f"{min(v) / min(per['without checks']):.3f}x",
                ]
                for name, v in per.items()
            ],
        )
        print(
            f"the checks' own CPU (timed around each answer's checks, in the runs with them): "
            f"median {statistics.median(shares):.2%} of the client's CPU "
            f"(runs: {' '.join(f'{x:.2%}' for x in shares)})"
        )
        print("goal: checks add < 5% CPU per request")
        return per
    finally:
        shutil.rmtree(root, ignore_errors=True)


def spawn(workdir: Path, base: str, url: str) -> subprocess.Popen[str]:
    """A ``contentgen run`` child (``child``) against the simulator at ``base``."""
    cmd = [sys.executable, __file__, "--child", str(workdir), f"{base}/v1", url]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def child(workdir: Path, base_url: str, url: str) -> None:
    """One run over the queue; its CPU, and the CPU spent inside the checks."""
    import pipeline.run.recording as recording
    from pipeline.run import RunOptions, run_batch

    spent = [0.0]
    check = recording.check

    def timed(*args: object, **kwargs: object) -> object:
        started = time.process_time()
        try:
            return check(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            spent[0] += time.process_time() - started

    recording.check = timed  # type: ignore[assignment]
    settings = throughput.settings_for(url, workdir, base_url, 64)
    before = throughput.cpu_s()
    summary = run_batch(settings, RunOptions(kind="benchmark"))  # type: ignore[arg-type]
    cpu = throughput.cpu_s() - before
    facts = {"requests": summary.totals.requests, "cpu_s": cpu, "checks_s": spent[0]}
    print("RESULT " + json.dumps(facts))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        import openai  # noqa: F401

        import pipeline.run.runner  # noqa: F401  (imports are not the work measured)

        child(Path(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="recording,end-to-end")
    parser.add_argument("--rounds", type=int, default=15, help="Recording-path rounds a side.")
    parser.add_argument("--articles", type=int, default=750, help="End to end: x 2 tasks.")
    parser.add_argument("--repeats", type=int, default=5, help="End to end: runs a side.")
    args = parser.parse_args()
    sections = args.only.split(",")
    if "recording" in sections:
        section_recording(args.rounds)
    if "end-to-end" in sections:
        section_end_to_end(args.articles, args.repeats)


if __name__ == "__main__":
    main()
