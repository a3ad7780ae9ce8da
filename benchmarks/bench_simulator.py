"""Throughput of the Responses API simulator (loopback only, zero simulated latency).

Starts ``contentgen simulate --port 0 --latency-scale 0`` in a subprocess (so the load
generator does not share its GIL), then drives ``POST /v1/responses`` from an aiohttp client
with many concurrent workers, non-streaming and streaming, in a few short rounds each. Every
request has a distinct ~300-token prompt (shared instructions + a unique article snippet), so
the server tokenizes for real. Prints requests/s and latency percentiles per round, then the
median and best round per mode: the machine is shared, so other work shows up as slow rounds.

    .venv/bin/python benchmarks/bench_simulator.py [--seconds 1.5] [--rounds 3] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
GOAL_RPS = 1500
_TOPICS = (
    "council budget river bridge housing transport election market energy school health water "
    "climate museum festival league coach players research survey inflation banks workers "
    "factory supply chain exports farmers harvest storm coast airport rail"
)
_WORDS = _TOPICS.split()


@dataclass
class Result:
    """Outcome of one load run."""

    mode: str
    concurrency: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile in milliseconds."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def start_server() -> tuple[subprocess.Popen[str], str]:
    """Start the simulator subprocess; returns it and its base URL."""
    code = "from pipeline.cli.main import app; app()"
    args = [
        sys.executable,
        "-c",
        code,
        "simulate",
        "--port",
        "0",
        "--latency-scale",
        "0",
        "--rpm",
        "100000000",
        "--tpm",
        "100000000000",
    ]
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    url = line.split("http://", 1)[1].split()[0]
    return proc, "http://" + url


def make_body(rng: random.Random, number: int, stream: bool) -> bytes:
    """A request with ~300 prompt tokens: shared instructions plus a unique snippet."""
    instructions = "You are a careful news editor. " + " ".join(_WORDS) * 2
    article = " ".join(rng.choices(_WORDS, k=200))
    return json.dumps(
        {
            "model": "gpt-4.1-mini",
            "instructions": instructions,
            "input": f"Article {number}: {article}\nWrite the summary.",
            "max_output_tokens": 200,
            "temperature": 0.3,
            "store": False,
            "stream": stream,
        }
    ).encode()


async def drive(base_url: str, mode: str, concurrency: int, seconds: float) -> Result:
    """Run ``concurrency`` workers for ``seconds`` against ``/responses``."""
    stream = mode == "streaming"
    result = Result(mode, concurrency)
    rng = random.Random(7)
    bodies = [make_body(rng, i, stream) for i in range(2000)]
    headers = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
    url = base_url + "/responses"
    counter = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        deadline = 0.0

        async def worker() -> None:
            nonlocal counter
            while time.perf_counter() < deadline:
                body = bodies[counter % len(bodies)]
                counter += 1
                began = time.perf_counter()
                async with session.post(url, data=body) as resp:
                    await resp.read()
                    ok = resp.status == 200
                if ok:
                    result.latencies.append(time.perf_counter() - began)
                else:
                    result.errors += 1

        deadline = time.perf_counter() + 0.5  # warm-up: connections, tokenizer, vocabulary
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.latencies.clear()
        result.errors = 0
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def print_table(results: list[Result]) -> None:
    """One line per round."""
    print(
        f"{'mode':<14}{'conc':>6}{'requests':>10}{'seconds':>9}{'req/s':>9}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
    )
    for r in results:
        print(
            f"{r.mode:<14}{r.concurrency:>6}{len(r.latencies):>10}{r.seconds:>9.2f}"
            f"{r.rps:>9.0f}{r.percentile(0.5):>9.1f}{r.percentile(0.99):>9.1f}{r.errors:>8}"
        )


async def run(seconds: float, rounds: int, concurrency: int) -> list[Result]:
    """All rounds of both modes against one simulator process."""
    proc, base_url = start_server()
    results = []
    try:
        for mode in ("non-streaming", "streaming"):
            for _ in range(rounds):
                results.append(await drive(base_url, mode, concurrency, seconds))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return results


def main() -> None:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="Length of one round.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds per mode.")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"simulator benchmark: {os.cpu_count()} CPUs (load {load:.2f} before start), "
        f"{args.rounds} x {args.seconds:g}s per mode, loopback, latency_scale 0"
    )
    results = asyncio.run(run(args.seconds, args.rounds, args.concurrency))
    print_table(results)
    print()
    summary: dict[str, tuple[float, float]] = {}
    for mode in ("non-streaming", "streaming"):
        rates = [r.rps for r in results if r.mode == mode]
        summary[mode] = (statistics.median(rates), max(rates))
        print(
            f"{mode:<14} median {summary[mode][0]:>6.0f} req/s"
            f"   best {summary[mode][1]:>6.0f} req/s"
        )
    median, best = summary["non-streaming"]
    verdict = "meets" if median >= GOAL_RPS else "best round meets" if best >= GOAL_RPS else "BELOW"
    print(f"non-streaming goal {GOAL_RPS} req/s: {verdict}")
    if any(r.errors for r in results):
        raise SystemExit("some requests failed")


if __name__ == "__main__":
    main()
