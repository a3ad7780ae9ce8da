"""A plain AsyncOpenAI loop as its own process: the baseline of whole-process client CPU.

Reads request bodies (one JSON object a line) and sends them all through ``AsyncOpenAI`` with a
semaphore, as one writes such a script by hand; prints how many were answered.

    python benchmarks/plain_loop.py BODIES.jsonl BASE_URL [CONCURRENCY]
"""

from __future__ import annotations

import asyncio
import json
import sys

import openai


async def main(path: str, base_url: str, concurrency: int) -> int:
    with open(path, encoding="utf-8") as fh:
        bodies = [json.loads(line) for line in fh]
    return await send_all(bodies, base_url, concurrency)


async def send_all(bodies: list[dict], base_url: str, concurrency: int) -> int:
    """Send every body, ``concurrency`` at a time; how many were answered."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench")
    gate = asyncio.Semaphore(concurrency)

    async def one(body: dict) -> int:
        async with gate:
            response = await client.responses.create(**body)
            return len(response.output_text)

    done = await asyncio.gather(*(one(b) for b in bodies))
    await client.close()
    return len(done)


if __name__ == "__main__":
    concurrency = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    print(asyncio.run(main(sys.argv[1], sys.argv[2], concurrency)))
