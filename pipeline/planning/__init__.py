"""Planning: turn rendered requests into a send plan that the prompt cache rewards.

Pure functions over values (no I/O, no database, no clock):

- ``tree``: the prefix tree of requests by segment digests, and ``optimal_cached_tokens``,
  the ceiling any plan can reach on one perfect cache;
- ``planner``: ``plan`` orders requests depth-first, gives each group of requests sharing a
  cacheable prefix a ``prompt_cache_key`` per bucket, and makes requests wait for the one that
  writes the prefix they reuse;
- ``layouts``: ``choose_layouts`` picks instructions-first or article-first per task;
- ``costs``: ``forecast`` prices a plan before it is sent, with and without caching;
- ``breakpoints``: on GPT-5.6+ models, which prefixes to write (paid) and who prewarms them;
- ``shape``: each request's prompt-cache fields for its model's regime;
- ``advice``: shared prefixes too short to cache, and whether padding them would pay.
"""

from pipeline.planning.advice import PrefixAdvice, prefix_advice
from pipeline.planning.costs import Forecast, expected_usage, forecast
from pipeline.planning.layouts import RenderFn, choose_layouts
from pipeline.planning.planner import GroupSummary, Plan, PlannedRequest, bucket_count, plan
from pipeline.planning.tree import (
    PrefixTree,
    build_tree,
    cacheable,
    optimal_cached_tokens,
    root_key,
)

__all__ = [
    "Forecast",
    "GroupSummary",
    "Plan",
    "PlannedRequest",
    "PrefixAdvice",
    "PrefixTree",
    "RenderFn",
    "bucket_count",
    "build_tree",
    "cacheable",
    "choose_layouts",
    "expected_usage",
    "forecast",
    "optimal_cached_tokens",
    "plan",
    "prefix_advice",
    "root_key",
]
