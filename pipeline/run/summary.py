"""What a run is asked to do (``RunOptions``) and what it came to (``RunSummary``)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipeline.db import RunTotals


@dataclass(frozen=True)
class RunOptions:
    """What to run: which jobs, how hard, and how the run is labelled."""

    limit: int | None = None
    tasks: tuple[str, ...] | None = None
    batch_label: str | None = None
    concurrency: int | None = None
    kind: str = "cli"
    trigger: str = "cli"
    flow_run_id: str | None = None
    parameters: dict[str, Any] | None = None
    budget_usd: Decimal | None = None
    chunk_size: int | None = None
    mode: str = "realtime"  # realtime | flex (batch and auto: pipeline.batchmode.dispatch)
    # Finish within this many hours instead of as fast as the limit allows: fewer cache keys,
    # fewer cold misses (pipeline.limits.pacing). Given alone, it paces the run.
    pace_h: float | None = None
    # True: paced to pace_h (or the settings' deadline); False: full speed; None: a nightly
    # run paces itself when the forecast saving is worth it, others go at full speed
    # (``dryrun.choose_pace``).
    pace: bool | None = None
    # A send rate chosen by the caller (a flow's chunks share one decision): used as is.
    paced_rpm: float | None = None


@dataclass(frozen=True)
class RunSummary:
    """The outcome of a run, read back from the database."""

    run_id: int
    state: str
    stop_reason: str | None
    totals: RunTotals
    claimed: int
    released: int
    lost_leases: int
    wall_s: float
    expected_cached_ratio: float
    prewarms: int = 0
    paced_rpm: float | None = None
    fatal: str | None = None
    # The recurring budget (config/budgets.toml) that stopped the run, by name.
    budget_stop: str | None = None
    # Per model: how the server counts a token of our estimate (learnt from its headers).
    token_factors: dict[str, float] | None = None
    # Per model: the requests/min one cache key was learnt to carry, and the evidence
    # (answers on keyed requests, spills, evictions), as ``planning.KeyRate.as_dict``.
    key_rates: dict[str, dict[str, float | int]] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON output and Prefect results."""
        t = self.totals
        return {
            "run_id": self.run_id,
            "state": self.state,
            "stop_reason": self.stop_reason,
            "fatal": self.fatal,
            "budget_stop": self.budget_stop,
            "requests": t.requests,
            "succeeded": t.succeeded,
            "failed": t.failed,
            "incomplete": t.incomplete,
            "from_cache": t.from_cache,
            "input_tokens": t.input_tokens,
            "cached_tokens": t.cached_tokens,
            "cache_write_tokens": t.cache_write_tokens,
            "output_tokens": t.output_tokens,
            "reasoning_tokens": t.reasoning_tokens,
            "cached_ratio": round(t.cached_ratio, 4),
            "expected_cached_ratio": round(self.expected_cached_ratio, 4),
            "cost_usd": str(t.cost_usd),
            "list_cost_usd": str(t.list_cost_usd),
            "claimed": self.claimed,
            "released": self.released,
            "lost_leases": self.lost_leases,
            "prewarms": self.prewarms,
            "paced_rpm": self.paced_rpm,
            "token_factors": self.token_factors or {},
            "key_rates": self.key_rates or {},
            "wall_s": round(self.wall_s, 2),
        }


def closed_state(stop_reason: str | None) -> str:
    """The state a run row ends in: ``finished``; ``budget`` when a budget stopped it (its own
    or a recurring one); ``failed`` when an error no request gets past did (bad key, no quota,
    unknown model, API unreachable: the stop reason says which); ``stopped`` for the other
    stops (a signal, the database, the journal, taken for dead). Unsent jobs are queued in all.
    """
    if not stop_reason:
        return "finished"
    if stop_reason == "budget":
        return "budget"
    if stop_reason.startswith("fatal "):
        return "failed"
    return "stopped"
