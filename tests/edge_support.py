"""Helpers for the tests of issue 23's edges: the real console script, mount namespaces, and
small HTTP servers that misbehave on purpose (``ThreadedApp``).

``contentgen`` runs as a user runs it, in its own process from an empty folder; where a test
needs a file system that is read-only or full, the script runs in a private mount namespace
(``unshare --mount``) over a tmpfs of the size asked for. That needs root (CI runs as root on
this machine kind): without it the test fails and says so, it is never skipped.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from pipeline.settings import Settings

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTENTGEN = Path(sys.executable).with_name("contentgen")


def cli_env(settings: Settings, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``contentgen`` process that uses ``settings`` (no other
    CONTENTGEN_*/OpenAI variable of the test process leaks in)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONTENTGEN_", "OPENAI_", "PYTEST_"))
    }
    assert settings.openai_api_key is not None
    env.update(
        XDG_CACHE_HOME=str(home / "xdg-cache"),
        XDG_STATE_HOME=str(home / "xdg-state"),
        COLUMNS="200",
        CONTENTGEN_DATABASE_URL=settings.database_url,
        CONTENTGEN_CONFIG_DIR=str(settings.config_dir),
        CONTENTGEN_CACHE_DIR=str(settings.cache_dir),
        OPENAI_BASE_URL=str(settings.openai_base_url),
        OPENAI_API_KEY=settings.openai_api_key.get_secret_value(),
    )
    env.update(extra)
    return env


def contentgen(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the console script; its exit code and output."""
    assert CONTENTGEN.exists(), f"{CONTENTGEN}: the contentgen script is not installed"
    return subprocess.run(
        [str(CONTENTGEN), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def on_tmpfs(
    mount: Path,
    options: str,
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    *,
    fill: bool = False,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``contentgen ARGS`` with a tmpfs mounted (``-o OPTIONS``) at ``mount`` in a mount
    namespace of its own; ``fill`` fills it up first. The mount is gone afterwards."""
    unshare = shutil.which("unshare")
    assert unshare is not None, "unshare (util-linux) is needed to mount a test file system"
    assert os.geteuid() == 0, "mounting a test tmpfs needs root (CI runs these tests as root)"
    mount.mkdir(parents=True, exist_ok=True)
    steps = [f"mount -t tmpfs -o {shlex.quote(options)} tmpfs {shlex.quote(str(mount))}"]
    if fill:
        steps.append(f"(cat /dev/zero > {shlex.quote(str(mount / 'filler'))}) 2>/dev/null")
    steps.append(shlex.join([str(CONTENTGEN), *args]))
    script = " ; ".join([steps[0] + " || exit 97", *steps[1:]])
    result = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode != 97, f"could not mount a tmpfs: {result.stderr}"
    return result


def lines(text: str) -> list[str]:
    """The non-empty lines of ``text``."""
    return [line for line in text.splitlines() if line.strip()]


class ThreadedApp:
    """An aiohttp app answering every path with ``handler``, on a free port, in a thread of its
    own (so a test can serve HTTP while it drives other processes)."""

    def __init__(self, handler: Handler) -> None:
        self._loop = asyncio.new_event_loop()
        self._handler = handler
        self._ready = threading.Event()
        self.port = 0
        threading.Thread(target=self._serve, daemon=True).start()
        assert self._ready.wait(10), "the test server did not start"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handler)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the app's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    @property
    def base_url(self) -> str:
        """The app as an OpenAI base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        """Stop serving."""
        self.run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
