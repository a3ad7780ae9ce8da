"""``contentgen simulate``: run the local Responses API simulator in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from pipeline.cli.common import console, handle_errors
from pipeline.errors import ConfigError, InputError

_ENV = "CONTENTGEN_SIM_"

RATELIMIT_TOKENS_HELP = (
    "How a request's prompt counts against TPM: o200k (tiktoken's count, the default), "
    "x<factor> (that count times factor, e.g. x0.53 or x1.5) or chars (text characters / 4). "
    "Usage and billing always report tiktoken's count."
)
BILL_TOKENS_HELP = (
    "How usage counts input tokens: o200k (tiktoken's count, the default) or x<factor> (that "
    "count times factor, e.g. x0.53: a server billing with another tokenizer)."
)


def _opt(name: str, help: str) -> Any:
    """A typer option that falls back to ``CONTENTGEN_SIM_<NAME>``."""
    env = _ENV + name.lstrip("-").replace("-", "_").upper()
    return typer.Option(name, help=help, envvar=env)


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to ``app``."""

    @app.command()
    @handle_errors
    def simulate(
        host: Annotated[str, _opt("--host", "Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, _opt("--port", "Port (0 picks a free one).")] = 8000,
        rpm: Annotated[int, _opt("--rpm", "Requests per minute per model.")] = 10_000,
        tpm: Annotated[int, _opt("--tpm", "Tokens per minute per model.")] = 10_000_000,
        ratelimit_tokens: Annotated[
            str, _opt("--ratelimit-tokens", RATELIMIT_TOKENS_HELP)
        ] = "o200k",
        bill_tokens: Annotated[str, _opt("--bill-tokens", BILL_TOKENS_HELP)] = "o200k",
        overflow_rpm: Annotated[
            int, _opt("--overflow-rpm", "Requests/min one cache key carries before spilling.")
        ] = 15,
        overflow_per: Annotated[
            str,
            _opt(
                "--overflow-per",
                "key: overflow counted per prompt_cache_key over all its prefixes (the stricter "
                "reading, default); prefix: per (prefix, key) combination.",
            ),
        ] = "key",
        latency_scale: Annotated[
            float, _opt("--latency-scale", "Multiply simulated latency (0: answer at once).")
        ] = 1.0,
        fail_rate: Annotated[float, _opt("--fail-rate", "Share of HTTP 500 answers.")] = 0.0,
        overload_rate: Annotated[float, _opt("--overload-rate", "Share of HTTP 503.")] = 0.0,
        seed: Annotated[int, _opt("--seed", "Seed of text and fault draws.")] = 0,
        cache_machines: Annotated[int, _opt("--cache-machines", "Prompt-cache machines.")] = 8,
        cache_ttl_s: Annotated[float, _opt("--cache-ttl-s", "Idle cache expiry (s).")] = 300.0,
        drop_rate: Annotated[float, _opt("--drop-rate", "Share of dropped connections.")] = 0.0,
        slow_rate: Annotated[float, _opt("--slow-rate", "Share of slow answers.")] = 0.0,
        flex_unavailable_rate: Annotated[
            float, _opt("--flex-unavailable-rate", "Share of flex requests refused with a 429.")
        ] = 0.0,
        stream_fail_rate: Annotated[
            float, _opt("--stream-fail-rate", "Share of streams ending in response.failed.")
        ] = 0.0,
        batch_speed: Annotated[float, _opt("--batch-speed", "Batch progress speed-up.")] = 1.0,
        obey_rate: Annotated[
            float | None,
            _opt("--obey-rate", "Share of answers within a stated word limit (default 0.85)."),
        ] = None,
        hallucination_rate: Annotated[
            float | None,
            _opt(
                "--hallucination-rate",
                "Share of answers with one article figure changed (default 0.03).",
            ),
        ] = None,
        pricing: Annotated[
            Path | None, _opt("--pricing", "pricing.toml (default: <config dir>/pricing.toml).")
        ] = None,
        api_key: Annotated[
            list[str] | None,
            _opt("--api-key", "Accept only this key (repeat for more); others get a 401."),
        ] = None,
    ) -> None:
        """Serve a local OpenAI Responses/Files/Batches API with caching, limits and faults.

        Point the pipeline (or any openai SDK client) at the printed base URL, e.g.
        OPENAI_BASE_URL=http://127.0.0.1:8000/v1. The ledger of what it billed is at
        GET /_sim/ledger; faults can be scripted with POST /_sim/script.

        Exit codes: 0 stopped with Ctrl-C; 2 an invalid option, or the port cannot be
        listened on (taken by another program).

        Example: contentgen simulate --rpm 500 --tpm 200000 --ratelimit-tokens x0.5 --fail-rate 0.02
        """
        # Imported here: the other commands start faster without the simulator's web stack.
        from pipeline.simulator import (
            REHEARSAL_HALLUCINATION_RATE,
            REHEARSAL_OBEY_RATE,
            SimulatorConfig,
            parse_bill_tokens,
            parse_ratelimit_tokens,
            serve_forever,
        )

        counting = parse_ratelimit_tokens(ratelimit_tokens)
        obey_rate = REHEARSAL_OBEY_RATE if obey_rate is None else obey_rate
        if hallucination_rate is None:
            hallucination_rate = REHEARSAL_HALLUCINATION_RATE
        billing = parse_bill_tokens(bill_tokens)
        if overflow_per not in ("key", "prefix"):
            raise ConfigError(f"invalid --overflow-per {overflow_per!r}: use key or prefix")
        try:
            config = SimulatorConfig(
                host=host,
                port=port,
                rpm=rpm,
                tpm=tpm,
                latency_scale=latency_scale,
                fail_rate=fail_rate,
                overload_rate=overload_rate,
                seed=seed,
                api_keys=tuple(api_key or ()),
                cache_machines=cache_machines,
                cache_ttl_s=cache_ttl_s,
                drop_rate=drop_rate,
                slow_rate=slow_rate,
                flex_unavailable_rate=flex_unavailable_rate,
                stream_fail_rate=stream_fail_rate,
                batch_speed=batch_speed,
                obey_rate=obey_rate,
                hallucination_rate=hallucination_rate,
                pricing_path=pricing,
                usage_token_factor=billing,
                overflow_rpm=overflow_rpm,
                overflow_per=overflow_per,
                **counting,
            )
        except ValidationError as exc:
            raise ConfigError(f"invalid simulator option: {exc.errors()[0]['msg']}") from exc

        def ready(base_url: str) -> None:
            console.print(f"Simulator listening on {base_url}  (Ctrl-C stops it)", highlight=False)

        with contextlib.suppress(KeyboardInterrupt):
            try:
                asyncio.run(serve_forever(config, on_ready=ready))
            except OSError as exc:  # the port is taken, or the host is not ours
                raise InputError(
                    f"cannot listen on {host}:{port}: {exc.strerror or exc}; another program "
                    "(a simulator already running?) may hold the port: pick another --port, "
                    "or --port 0 for a free one"
                ) from None
