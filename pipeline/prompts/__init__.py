"""Prompts: task profiles, and a job rendered into a request, static content first.

- ``profiles``: the request settings of each task, read from ``config/profiles.toml``, with
  its checks and its version (a hash of everything that shapes the request, ``summary@3f2a9c1``);
- ``articlejob``: one job with its article, as a plain value;
- ``requests``: the rendered request (segments, cache fields, the body sent) and its key in
  the response cache;
- ``rendering``: instructions and contexts first, then the article, then the per-job part;
- ``chains``: a task that follows another, rendered as the next turn of its conversation, and
  ``follow_up``: a request continued by one more turn (a check's retry, an editor's note);
- ``tokens``: tiktoken's counts, offline.

Values in, values out: no database, no network, no clock.
"""

from __future__ import annotations

from pipeline.prompts.articlejob import ArticleJob
from pipeline.prompts.chains import (
    ChainedRequest,
    ParentOutput,
    follow_up,
    followers_of,
    render_child,
)
from pipeline.prompts.profiles import (
    SCHEMA_IN_PROMPT,
    Profile,
    ReviewMode,
    load_profiles,
    version_label,
)
from pipeline.prompts.rendering import render
from pipeline.prompts.requests import (
    MESSAGE_OVERHEAD_TOKENS,
    REQUEST_OVERHEAD_TOKENS,
    CacheFields,
    Layout,
    RenderedRequest,
    digest,
    response_cache_key,
)
from pipeline.prompts.tokens import count_tokens, encoding_for, encoding_name, get_encoding

__all__ = [
    "MESSAGE_OVERHEAD_TOKENS",
    "REQUEST_OVERHEAD_TOKENS",
    "SCHEMA_IN_PROMPT",
    "ArticleJob",
    "CacheFields",
    "ChainedRequest",
    "Layout",
    "ParentOutput",
    "Profile",
    "RenderedRequest",
    "ReviewMode",
    "count_tokens",
    "digest",
    "encoding_for",
    "encoding_name",
    "follow_up",
    "followers_of",
    "get_encoding",
    "load_profiles",
    "render",
    "render_child",
    "response_cache_key",
    "version_label",
]
