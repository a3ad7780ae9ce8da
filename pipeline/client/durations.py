"""Parsing the time values the API puts in headers and messages.

``x-ratelimit-reset-*`` headers are Go ``time.Duration`` strings (``"1s"``, ``"6m0s"``,
``"6ms"``, ``"3.114s"``, ``"1m30.5s"``); retry hints come as ``retry-after-ms`` (milliseconds),
``retry-after`` (seconds or an HTTP date), or only in a 429's text ("Please try again in 644ms").
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping

_UNIT_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # micro sign
    "μs": 1e-6,  # greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_TRY_AGAIN = re.compile(r"try again in (\d[0-9a-zµμ.]*)", re.IGNORECASE)


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string such as ``"1m30.5s"``; ``ValueError`` if malformed.

    Accepts what Go's ``time.ParseDuration`` accepts: an optional sign, then one or more
    number-unit pairs (``ns``, ``us``/``µs``, ``ms``, ``s``, ``m``, ``h``), or a bare ``"0"``.
    """
    s = text.strip()
    sign = 1.0
    if s and s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    pos = 0
    while pos < len(s):
        match = _PART.match(s, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    return sign * total


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def retry_after_s(
    headers: Mapping[str, str] | None, message: str | None = None, *, now: float | None = None
) -> float | None:
    """The server's retry hint in seconds, or None when it gave none.

    Order, as the SDK reads it: ``retry-after-ms`` (float milliseconds), ``retry-after`` as
    float seconds, then as an HTTP date (relative to ``now``, unix seconds, default the real
    time); last, the "Please try again in 3.89s" of a 429 message. Negative hints become 0.
    """
    if headers is not None:
        ms = _header(headers, "retry-after-ms")
        if ms is not None:
            try:
                value = float(ms)
            except ValueError:
                value = math.nan
            if math.isfinite(value):
                return max(0.0, value / 1000.0)
        ra = _header(headers, "retry-after")
        if ra is not None:
            try:
                value = float(ra)
            except ValueError:
                value = math.nan
            if math.isfinite(value):
                return max(0.0, value)
            try:
                when = email.utils.parsedate_to_datetime(ra)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                current = time.time() if now is None else now
                return max(0.0, when.timestamp() - current)
    if message:
        match = _TRY_AGAIN.search(message)
        if match is not None:
            try:
                return max(0.0, parse_go_duration(match.group(1).rstrip(".")))
            except ValueError:
                return None
    return None
