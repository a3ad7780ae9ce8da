"""Limits: one account's rate limit shared by every runner, and each cache key kept at its pace.

- ``share``: the account's RPM and TPM divided among the runners on it, through the database
  they share (``limiter_members``);
- ``sync``: a run's limiters kept at their share while the run works;
- ``pacing``: a run spread over its deadline, each prompt-cache key at what one machine holds.
"""

from __future__ import annotations

from pipeline.limits.pacing import KEY_RPM, Pacer, paced_rpm
from pipeline.limits.share import LimitShare, account_key
from pipeline.limits.sync import SharedLimits

__all__ = ["KEY_RPM", "LimitShare", "Pacer", "SharedLimits", "account_key", "paced_rpm"]
