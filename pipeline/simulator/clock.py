"""Simulated time: real time plus an offset that tests can push forward.

Prompt-cache expiry, rate-limit refills and batch progress all read this clock, so a test can
skip ten minutes with ``clock.advance(600)`` instead of sleeping.
"""

from __future__ import annotations

import threading
import time


class SimClock:
    """Monotonic and wall time, both shifted by ``advance()``; optionally frozen.

    A frozen clock only moves when advanced, which makes rate-limit refills exact in tests.
    """

    def __init__(self, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._frozen = frozen
        self._offset = 0.0
        self._mono0 = time.monotonic()
        self._wall0 = time.time()

    @property
    def frozen(self) -> bool:
        """True when time moves only through ``advance()``."""
        return self._frozen

    def now(self) -> float:
        """Seconds on a monotonic scale (for durations, buckets and expiry)."""
        base = self._mono0 if self._frozen else time.monotonic()
        return base + self._offset

    def wall(self) -> float:
        """Unix time in seconds (for ``created_at`` fields), shifted like ``now()``."""
        return self._wall0 + (self.now() - self._mono0)

    def advance(self, seconds: float) -> None:
        """Move simulated time forward by ``seconds`` (thread-safe)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
