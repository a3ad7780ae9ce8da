"""Helpers for the tests of issue 23's edges: the real console script, mount namespaces.

``contentgen`` runs as a user runs it, in its own process from an empty folder; where a test
needs a file system that is read-only or full, the script runs in a private mount namespace
(``unshare --mount``) over a tmpfs of the size asked for. That needs root (CI runs as root on
this machine kind): without it the test fails and says so, it is never skipped.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.settings import Settings

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
