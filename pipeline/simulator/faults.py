"""Injected faults: seeded random rates plus a one-shot script for deterministic tests.

A script (``POST /_sim/script {"faults": ["500", "drop", "ok"]}``) is consumed one entry per
valid ``/v1/responses`` request, before any random draw. Entries:

``ok`` no fault · ``500`` server_error · ``503`` overloaded · ``drop`` connection closed without
an answer · ``429`` or ``429:<ms>`` a rate-limit 429 with that retry hint (default 20 ms) ·
``quota`` 429 insufficient_quota · ``invalid_prompt`` 400 invalid_prompt (this request only) ·
``flex`` flex resource unavailable · ``slow`` or
``slow:<s>`` extra latency · ``stream_fail`` ``response.failed`` after some deltas ·
``stream_error`` an ``error`` event then ``response.failed`` · ``incomplete`` answer cut at
``max_output_tokens`` (or at half the natural length without one).

Random faults draw from an RNG seeded with the simulator seed, so a run with the same arrival
order gets the same faults.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from pipeline.simulator.config import SimulatorConfig

KINDS = frozenset(
    {
        "ok",
        "500",
        "503",
        "drop",
        "429",
        "quota",
        "invalid_prompt",
        "flex",
        "slow",
        "stream_fail",
        "stream_error",
        "incomplete",
    }
)
DEFAULT_RETRY_MS = 20


@dataclass(frozen=True)
class Fault:
    """What goes wrong with one request: ``kind`` (None: nothing) and extra latency."""

    kind: str | None = None
    extra_latency_s: float = 0.0
    retry_ms: int = DEFAULT_RETRY_MS


NO_FAULT = Fault()


def parse(entry: str) -> Fault:
    """One script entry (``"429:250"``, ``"slow:1.5"``, ``"drop"``...) as a Fault."""
    kind, _, arg = entry.strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"unknown fault {entry!r}; expected one of {sorted(KINDS)}")
    if kind == "ok":
        return NO_FAULT
    if kind == "slow":
        return Fault("slow", float(arg) if arg else 1.0)
    if kind == "429":
        return Fault("429", retry_ms=int(arg) if arg else DEFAULT_RETRY_MS)
    if arg:
        raise ValueError(f"fault {kind!r} takes no argument")
    return Fault(kind)


class FaultInjector:
    """Decides each request's fault from the script, else from the configured rates."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._rng = random.Random(f"faults-{config.seed}")
        self._script: deque[Fault] = deque()

    def reconfigure(self, config: SimulatorConfig) -> None:
        """Use new rates from now on (the RNG keeps its position)."""
        self._config = config

    def script(self, entries: list[str]) -> None:
        """Queue faults for the next requests, in order (raises ValueError for a bad entry)."""
        faults = [parse(entry) for entry in entries]
        self._script.extend(faults)

    def pending(self) -> int:
        """Script entries not used yet."""
        return len(self._script)

    def clear(self) -> None:
        """Drop the script."""
        self._script.clear()

    def decide(self, *, flex: bool, stream: bool) -> Fault:
        """The fault for the next request (two RNG draws per request when unscripted)."""
        if self._script:
            return self._script.popleft()
        cfg = self._config
        draw = self._rng.random()
        slow = self._rng.random() < cfg.slow_rate
        extra = cfg.slow_extra_s if slow else 0.0
        edge = 0.0
        for kind, rate in (
            ("flex", cfg.flex_unavailable_rate if flex else 0.0),
            ("drop", cfg.drop_rate),
            ("500", cfg.fail_rate),
            ("503", cfg.overload_rate),
            ("stream_fail", cfg.stream_fail_rate if stream else 0.0),
        ):
            edge += rate
            if draw < edge:
                return Fault(kind, extra)
        return Fault("slow", extra) if slow else NO_FAULT
