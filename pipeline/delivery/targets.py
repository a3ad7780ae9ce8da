"""Where one version goes: a signed webhook (httpx, with a timeout) or a drop folder (a JSON
file written atomically). Each ``send`` returns a ``Sent``; it never raises for what the
receiver or the disk does, so one bad send never stops the others.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from pipeline.delivery.config import DeliveryConfig
from pipeline.delivery.payload import webhook_headers
from pipeline.errors import ConfigError

# A 2xx is accepted (Standard Webhooks); anything else, or no answer, is retried later.
USER_AGENT = "contentgen-delivery/1"


@dataclass(frozen=True)
class Sent:
    """The outcome of one send: accepted or not, the HTTP status (None for a folder or no
    answer) and the error in one line."""

    ok: bool
    status: int | None = None
    error: str | None = None


class Target(Protocol):
    """A place versions are sent to."""

    def send(self, message_id: str, body: bytes) -> Sent:
        """Send one version's ``body`` under ``message_id``."""
        ...

    def close(self) -> None:
        """Free what the target holds (connections)."""
        ...


class WebhookTarget:
    """POSTs each version to ``url``, signed with ``key`` (Standard Webhooks)."""

    def __init__(
        self,
        url: str,
        key: bytes,
        *,
        timeout_s: float,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = url
        self._key = key
        self._clock = clock
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            headers={"user-agent": USER_AGENT},
            follow_redirects=False,
            transport=transport,
        )

    def send(self, message_id: str, body: bytes) -> Sent:
        """One signed POST; a 2xx is accepted."""
        headers = webhook_headers(self._key, message_id, int(self._clock()), body)
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return Sent(False, None, f"timed out: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return Sent(False, None, f"{type(exc).__name__}: {exc}")
        if 200 <= response.status_code < 300:
            return Sent(True, response.status_code)
        reply = " ".join(response.text[:200].split())
        return Sent(False, response.status_code, f"HTTP {response.status_code}: {reply}")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


class FolderTarget:
    """Writes each version as ``<webhook id>.json`` in ``folder``, atomically: a temporary file
    in the same folder, flushed and fsynced, then renamed over the name (``os.replace``), so an
    importer never reads half a file and a repeat of a version replaces it with the same bytes.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def send(self, message_id: str, body: bytes) -> Sent:
        """One file, written atomically."""
        final = self._folder / f"{message_id}.json"
        # Not mkstemp: its files are private (0600), and an importer may run as another user.
        tmp = self._folder / f".{message_id}.{secrets.token_hex(6)}.tmp"
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(body)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, final)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            _fsync_dir(self._folder)
        except OSError as exc:
            return Sent(False, None, f"{final}: {exc.strerror or exc}")
        return Sent(True)

    def close(self) -> None:
        """Nothing to free."""


def _fsync_dir(folder: Path) -> None:
    # The rename is durable once the folder's entry is on disk too (POSIX); not on Windows.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def make_target(config: DeliveryConfig) -> Target:
    """The target ``config`` names (``ConfigError`` when it names none)."""
    if config.webhook_url:
        if config.secret is None:
            raise ConfigError("delivery: a webhook needs CONTENTGEN_DELIVERY_SECRET")
        return WebhookTarget(config.webhook_url, config.secret, timeout_s=config.timeout_s)
    if config.folder is not None:
        return FolderTarget(config.folder)
    raise ConfigError("delivery: no target")
