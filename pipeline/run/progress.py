"""Live counters of a run, for the progress display (the CLI renders them; flows log them).

``Progress`` is what the runner counts as results arrive; ``Progress.view()`` turns it into
the figures a person watches: done of total, the current rate over a sliding window (not the
lifetime average, which lags behind a run that speeds up or stalls), the ETA, the projected
total cost and the budget left. Pure arithmetic on the counters and a clock reading.

The projection does not extrapolate a straight line from the first results (a run's first
requests are its cold primers, its last ones its cheapest): the cost of the jobs not done is
their forecast (each planned request's, and the mean planned request's for jobs not planned
yet), scaled by what this run's answers so far cost against their own forecast. The ETA is the
longest of: the jobs left at the current rate, their tokens and requests at the limiter's
steady rate beyond what its buckets hold now, and the jobs left at the pace of a paced run.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pipeline.db import Generation, RunTotals

# The "current" rate: results over about the last minute (at least MIN_SPAN_S of data).
RATE_WINDOW_S = 60.0
MIN_SPAN_S = 2.0
# Marks of (time, results so far) are kept at most this often, so a fast run stays cheap.
MARK_EVERY_S = 1.0


@dataclass(frozen=True)
class ProgressView:
    """The figures a progress display shows, computed once per refresh by ``Progress.view``."""

    done: int
    failed: int
    finished: int
    total: int | None
    percent: float | None
    in_flight: int
    waiting: int
    rate_per_min: float | None
    eta_s: float | None
    tokens_per_min: float | None
    tpm_limit: int | None
    token_factor: float | None
    cached_ratio: float
    cache_write_tokens: int
    cost_usd: Decimal
    projected_usd: Decimal | None
    budget_usd: Decimal | None
    budget_left_usd: Decimal | None
    budgets: list[tuple[str, Decimal, Decimal]]
    retries: int
    stopping: str | None
    elapsed_s: float

    def line(self) -> str:
        """One plain log line with every figure (for non-terminals and logs; no ANSI)."""
        if self.total is not None and self.percent is not None:
            count = f"done {self.finished}/{self.total} ({self.percent:.1f}%)"
        else:
            count = f"done {self.finished}"
        parts = [
            count,
            f"failed {self.failed}",
            f"in-flight {self.in_flight}",
            f"rate {rate_text(self.rate_per_min)}",
            f"ETA {duration_text(self.eta_s)}",
            f"tokens/min {tpm_text(self.tokens_per_min, self.tpm_limit, self.token_factor)}",
            f"cached {self.cached_ratio:.1%}",
        ]
        if self.cache_write_tokens:
            parts.append(f"cache writes {self.cache_write_tokens:,}")
        parts.append(f"cost ${money_text(self.cost_usd)}")
        parts.append(f"projected ${money_text(self.projected_usd)}")
        if self.budget_left_usd is not None:
            parts.append(f"budget left ${money_text(self.budget_left_usd)}")
        for name, spent, limit in self.budgets:
            parts.append(f"budget {name} ${money_text(spent)} of ${money_text(limit)}")
        parts.append(f"retries {self.retries}")
        text = " | ".join(parts)
        if self.stopping is not None:
            text = f"{stopping_text(self.stopping, self.in_flight)} | {text}"
        return text


def rate_text(per_min: float | None) -> str:
    """``120/min`` (``-`` while unknown)."""
    return "-" if per_min is None else f"{per_min:,.1f}/min"


def duration_text(seconds: float | None) -> str:
    """``1h02m``, ``4m05s``, ``12s`` (``-`` while unknown)."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def tpm_text(tokens_per_min: float | None, limit: int | None, factor: float | None = None) -> str:
    """``12,000 / 2,000,000 (0.6%)`` (the limit part only when there is one), and how the
    server counts our estimate once the limiter has learnt it (``server counts x0.53``)."""
    text = "-" if tokens_per_min is None else f"{tokens_per_min:,.0f}"
    if limit:
        text += f" / {limit:,}"
        if tokens_per_min is not None:
            text += f" ({tokens_per_min / limit:.0%})"
    if factor is not None and abs(factor - 1.0) >= 0.005:
        text += f", server counts x{factor:.2f}"
    return text


def mean_factor(factors: object) -> float | None:
    """The learnt token factors of a run's models (``{model: factor}``) as one figure."""
    if not isinstance(factors, dict) or not factors:
        return None
    values = [float(v) for v in factors.values() if isinstance(v, int | float)]
    return sum(values) / len(values) if values else None


def money_text(usd: Decimal | None) -> str:
    """USD with four decimals, six below a cent, ``0.00`` for nothing (``-`` while unknown)."""
    if usd is None:
        return "-"
    if not usd:
        return "0.00"
    places = 6 if abs(usd) < Decimal("0.01") else 4
    return f"{usd:,.{places}f}"


def stopping_text(reason: str, in_flight: int) -> str:
    """What a stopping run says: why, what it still waits for, and how to cut it short."""
    why = "" if reason.startswith("signal") else f" ({reason})"
    return f"stopping{why}… finishing {in_flight} in flight; Ctrl-C again to abort"


@dataclass
class Progress:
    """What a run has done so far; updated by the runner, read by displays.

    ``queued_at_start`` (the jobs the run may take, counted once when it starts) and
    ``budget_usd`` are set by the runner; ``stopping`` holds the stop reason once a stop was
    asked; ``retries`` is fed by the display, which counts the retry log events.
    """

    limit_tpm: int | None = None
    claimed: int = 0
    started_requests: int = 0
    done: int = 0
    failed: int = 0
    from_cache: int = 0
    in_flight: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    limiter: dict[str, Any] = field(default_factory=dict)
    queued_at_start: int | None = None
    budget_usd: Decimal | None = None
    # Recurring budgets this run spends from: (name, the period's spend as seen, limit).
    budgets: list[tuple[str, Decimal, Decimal]] = field(default_factory=list)
    retries: int = 0
    stopping: str | None = None
    started_at: float = field(default_factory=time.monotonic)
    paced_rpm: float | None = None
    first_sent_at: float | None = None
    latency_s: float = 0.0  # summed over finished results that report one
    timed: int = 0
    # The forecast of planned requests not answered yet, by (job id, prewarm); what the
    # answered ones were forecast to cost; planned requests and their estimated tokens.
    _pending: dict[tuple[int, bool], Decimal] = field(default_factory=dict, repr=False)
    pending_forecast_usd: Decimal = Decimal(0)
    settled_forecast_usd: Decimal = Decimal(0)
    settled_cost_usd: Decimal = Decimal(0)
    planned_requests: int = 0
    planned_tokens: int = 0
    planned_forecast_usd: Decimal = Decimal(0)
    # (monotonic time, results finished by then), about one a second, for the current rate.
    _marks: deque[tuple[float, int]] = field(default_factory=deque, init=False, repr=False)

    def planned(self, costs: dict[tuple[int, bool], Decimal], estimated_tokens: int) -> None:
        """A chunk was planned: each request's forecast cost by (job id, prewarm), and the
        chunk's estimated tokens (as the limiter counts them before the factor)."""
        for key, cost in costs.items():
            old = self._pending.get(key)
            if old is not None:
                self.pending_forecast_usd -= old
            self._pending[key] = cost
            self.pending_forecast_usd += cost
            self.planned_forecast_usd += cost
            if not key[1]:
                self.planned_requests += 1
        self.planned_tokens += estimated_tokens

    def settled(self, job_id: int, cost_usd: Decimal, *, prewarm: bool) -> None:
        """The request of ``job_id`` (or its prewarm) was answered and cost ``cost_usd``
        (counted here at once; ``billed`` counts it when it is recorded)."""
        forecast = self._pending.pop((job_id, prewarm), None)
        if forecast is not None:
            self.pending_forecast_usd -= forecast
            self.settled_forecast_usd += forecast
            self.settled_cost_usd += cost_usd

    def queued_seen(self, n: int) -> None:
        """Jobs claimed into this run."""
        self.claimed += n

    def started(self) -> None:
        """A request was handed to the client."""
        if self.first_sent_at is None:
            self.first_sent_at = time.monotonic()
        self.started_requests += 1

    def finished(
        self, generation: Generation, succeeded: bool, *, now: float | None = None
    ) -> None:
        """A result was recorded."""
        if succeeded:
            self.done += 1
        else:
            self.failed += 1
        self.billed(generation)
        if generation.latency_ms:
            self.latency_s += generation.latency_ms / 1000
            self.timed += 1
        self._mark(time.monotonic() if now is None else now)

    def billed(self, generation: Generation) -> None:
        """Add a generation's tokens and cost (a prewarm is billed but finishes no job)."""
        if generation.from_cache:
            self.from_cache += 1
        self.input_tokens += generation.input_tokens or 0
        self.cached_tokens += generation.cached_tokens or 0
        self.cache_write_tokens += generation.cache_write_tokens or 0
        self.output_tokens += generation.output_tokens or 0
        self.cost_usd += generation.cost_usd or Decimal(0)

    def _mark(self, now: float) -> None:
        if not self._marks:
            self._marks.append((self.started_at, 0))
        if now - self._marks[-1][0] >= MARK_EVERY_S:
            self._marks.append((now, self.finished_count))
        # Keep one mark at or before the window's start, so the window is always covered.
        while len(self._marks) > 1 and self._marks[1][0] <= now - RATE_WINDOW_S:
            self._marks.popleft()

    def totals(self) -> RunTotals:
        """The run's totals as counted here (when the database cannot give them)."""
        return RunTotals(
            requests=self.done + self.failed,
            succeeded=self.done,
            failed=self.failed,
            incomplete=0,
            from_cache=self.from_cache,
            input_tokens=self.input_tokens,
            cached_tokens=self.cached_tokens,
            cache_write_tokens=self.cache_write_tokens,
            output_tokens=self.output_tokens,
            reasoning_tokens=0,
            cost_usd=self.cost_usd,
            list_cost_usd=self.cost_usd,
        )

    @property
    def finished_count(self) -> int:
        """Results recorded so far, succeeded or failed."""
        return self.done + self.failed

    @property
    def elapsed_s(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started_at

    @property
    def requests_per_s(self) -> float:
        """Finished requests per second so far (lifetime average)."""
        return self.finished_count / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def cached_ratio(self) -> float:
        """Cached share of input tokens so far."""
        return self.cached_tokens / self.input_tokens if self.input_tokens else 0.0

    @property
    def waiting(self) -> int:
        """Claimed jobs not finished yet."""
        return max(self.claimed - self.finished_count, 0)

    @property
    def total(self) -> int | None:
        """Jobs this run is expected to finish: those queued for it at the start, or more when
        it claimed more (followers queued during the run); None before the runner counted."""
        if self.queued_at_start is None:
            return None
        return max(self.queued_at_start, self.claimed, self.finished_count)

    def rate_per_min(self, now: float | None = None) -> float | None:
        """Results per minute over the last ``RATE_WINDOW_S`` (None while too little is known).

        A stall shows: with nothing finishing, the rate falls as the window slides on.
        """
        now = time.monotonic() if now is None else now
        finished = self.finished_count
        # The baseline: the last mark at or before the window's start, else the run's start.
        base_t, base_n = self.started_at, 0
        for t, n in self._marks:
            if t > now - RATE_WINDOW_S:
                break
            base_t, base_n = t, n
        # Marks are about a second apart while results arrive, and a gap between two marks
        # means nothing finished in it: the results since a baseline older than the window
        # finished within the window (give or take a second's worth).
        span = min(now - base_t, RATE_WINDOW_S)
        if span < MIN_SPAN_S or finished == 0:
            return None
        return (finished - base_n) / span * 60.0

    def view(self, now: float | None = None) -> ProgressView:
        """The figures of a progress display at ``now`` (``time.monotonic()`` by default)."""
        now = time.monotonic() if now is None else now
        finished = self.finished_count
        total = self.total
        rate = self.rate_per_min(now)
        remaining = None if total is None else max(total - finished, 0)
        eta = self.eta_s(remaining, rate)
        projected = self.projected_usd(remaining)
        tpm = self.limiter.get("tokens_per_min")
        limit = self.limiter.get("tpm_limit") or self.limit_tpm
        return ProgressView(
            done=self.done,
            failed=self.failed,
            finished=finished,
            total=total,
            percent=None if not total else min(finished / total, 1.0) * 100.0,
            in_flight=self.in_flight,
            waiting=self.waiting,
            rate_per_min=rate,
            eta_s=eta,
            tokens_per_min=float(tpm) if isinstance(tpm, int | float) else None,
            tpm_limit=int(limit) if isinstance(limit, int | float) and limit else None,
            token_factor=mean_factor(self.limiter.get("token_factors")),
            cached_ratio=self.cached_ratio,
            cache_write_tokens=self.cache_write_tokens,
            cost_usd=self.cost_usd,
            projected_usd=projected,
            budget_usd=self.budget_usd,
            budget_left_usd=None
            if self.budget_usd is None
            else max(self.budget_usd - self.cost_usd, Decimal(0)),
            budgets=list(self.budgets),
            retries=self.retries,
            stopping=self.stopping,
            elapsed_s=now - self.started_at,
        )

    def projected_usd(self, remaining: int | None) -> Decimal | None:
        """Cost so far plus the forecast of the ``remaining`` jobs, corrected by what this
        run's answers cost against their forecast (see the module docstring)."""
        if remaining is None or not self.finished_count:
            return None
        if not self.planned_requests or self.settled_forecast_usd <= 0:
            # Nothing planned here (a display fed from outside a run): the straight line.
            return self.cost_usd + self.cost_usd / self.finished_count * remaining
        mean = self.planned_forecast_usd / self.planned_requests
        unplanned = max((self.total or 0) - self.planned_requests, 0)
        left = self.pending_forecast_usd + mean * unplanned
        left *= self.settled_cost_usd / self.settled_forecast_usd
        return max(self.cost_usd, self.settled_cost_usd) + left

    def eta_s(self, remaining: int | None, rate: float | None) -> float | None:
        """Seconds until the ``remaining`` jobs are done (see the module docstring)."""
        if remaining is None:
            return None
        if remaining == 0:
            return 0.0
        waits: list[float] = []
        latency = self.latency_s / self.timed if self.timed else 0.0
        if not rate and self.first_sent_at is not None and self.finished_count:
            # Too early for the window's rate: the rate since the first send, less the first
            # answer's latency (nothing could finish before it).
            sending = time.monotonic() - self.first_sent_at - latency
            rate = self.finished_count / sending * 60.0 if sending > 0 else None
        if rate:
            waits.append(remaining / rate * 60.0)
        if self.paced_rpm:
            waits.append(remaining / self.paced_rpm * 60.0)
        # The limiter still has to admit the requests not handed to it yet.
        unsent = max(remaining - max(self.started_requests - self.finished_count, 0), 0)
        for model in (self.limiter.get("models") or {}).values():
            waits.extend(_limiter_waits(model, unsent, self._tokens_per_request()))
        # The last request sent still takes an answer's time.
        return max(waits) + latency if waits else None

    def _tokens_per_request(self) -> float:
        return self.planned_tokens / self.planned_requests if self.planned_requests else 0.0

    def line(self) -> str:
        """One plain log line (for non-terminals and logs)."""
        return self.view().line()


def _limiter_waits(stats: dict[str, Any], remaining: int, tokens: float) -> list[float]:
    """How long one model's limiter needs for ``remaining`` requests of ``tokens`` each at its
    steady rate, beyond what its buckets hold now (an upper share: every model's limiter is
    asked for all the jobs left, which holds for a run on one model)."""
    waits = []
    tpm, available = stats.get("tpm_limit"), stats.get("tokens_available")
    if tpm and tokens and isinstance(available, int | float):
        need = remaining * tokens * float(stats.get("token_factor") or 1.0) - available
        share = float(stats.get("share") or 1.0)
        waits.append(max(need, 0.0) / (tpm * share) * 60.0)
    rpm, free = stats.get("rpm_limit"), stats.get("requests_available")
    if rpm and isinstance(free, int | float):
        share = float(stats.get("share") or 1.0)
        waits.append(max(remaining - free, 0.0) / (rpm * share) * 60.0)
    return waits
