"""Desk: the review desk, a small server-rendered web page where editors sign outputs off.

- ``app``: the Starlette application (``create_app``): login by token, the queue (flagged
  first, then pending; by batch, section, task and run, with counts), one article at a time
  with its source beside every output (checks and grader reasons marked in the text, version,
  cost), approve / edit (diff shown) / reject with a note (optionally regenerate) /
  approve-all, and each output's history. Decisions go through ``pipeline.review.decide``.
  Everything shown is escaped, every form carries a CSRF token, cookies are HttpOnly and
  SameSite=Strict, and no page but the login answers without a session;
- ``editors``: editors and their tokens (shown once, stored as SHA-256), sessions;
- ``queue``: what the pages read, and ``run_counts`` for the nightly flow's message;
- ``marks``: phrases a failed check points at, marked in the text; an edit's word diff;
- ``links``: the queue's URL for a run (``queue_url``).
"""

from __future__ import annotations

from pipeline.desk.app import create_app
from pipeline.desk.editors import EditorInfo, add_editor, list_editors, remove_editor
from pipeline.desk.links import DEFAULT_HOST, DEFAULT_PORT, default_url, queue_url
from pipeline.desk.queue import QueueCounts, QueueFilter, queue_counts, run_counts

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "EditorInfo",
    "QueueCounts",
    "QueueFilter",
    "add_editor",
    "create_app",
    "default_url",
    "list_editors",
    "queue_counts",
    "queue_url",
    "remove_editor",
    "run_counts",
]
