"""Links into the desk from elsewhere (the nightly flow's state message and artifact)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def default_url(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    """Where ``contentgen desk`` serves without options."""
    return f"http://{host}:{port}"


def queue_url(base_url: str, *, runs: Sequence[int] = (), batch: str | None = None) -> str:
    """The desk's queue for what ``runs`` generated (and ``batch``, when it has a label)."""
    params = {}
    if batch:
        params["batch"] = batch
    if runs:
        params["run"] = ",".join(str(r) for r in runs)
    query = urlencode(params)
    return base_url.rstrip("/") + "/queue" + (f"?{query}" if query else "")
