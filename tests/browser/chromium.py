"""Where the UI tests find their browser, and what happens when it is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Debian's Chromium: Playwright cannot download its own browser build here.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium(path: Path | None = None) -> Path:
    """The browser's path; fails in CI (CI=true) and skips elsewhere when it is missing."""
    path = path or CHROMIUM
    if path.exists():
        return path
    message = (
        f"{path} not found: the UI test drives Debian's Chromium. "
        "Install it with `bash scripts/browser.sh` (or `apt-get install chromium`)."
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)
