"""Planning: turn rendered requests into a send plan that the prompt cache rewards.

Pure functions over values (no I/O, no database, no clock):

- ``tree``: the prefix tree of requests by segment digests, and ``optimal_cached_tokens``,
  the ceiling any plan can reach on one perfect cache;
- ``planner``: ``plan`` orders requests depth-first, gives each group of requests sharing a
  cacheable prefix a ``prompt_cache_key`` per bucket, and makes requests wait for the one that
  writes the prefix they reuse;
- ``layouts``: ``choose_layouts`` picks instructions-first or article-first per task;
- ``keys``: ``KeyBook`` deals a run's articles to cache keys by the rate each key will carry
  in any minute of the run's ``SendSchedule``, and learns the rate a key takes from answers;
- ``chains``: a chained request sent to its parent's key, expecting the parent's prompt;
- ``costs``: ``forecast`` prices a plan before it is sent, with and without caching, corrected
  by ``BillFactors`` (what earlier runs were billed against their plans);
- ``breakpoints``: on GPT-5.6+ models, which prefixes to write (paid) and who prewarms them;
- ``shape``: each request's prompt-cache fields for its model's regime;
- ``modes``: realtime, flex or the Batch API per task, and how ``auto`` picks;
- ``advice`` and ``profilecheck``: shared prefixes too short to cache, whether padding them
  would pay, and each profile's cache regime (``contentgen profiles check``).
"""

from pipeline.planning.advice import PrefixAdvice, prefix_advice
from pipeline.planning.chains import follow_parents
from pipeline.planning.costs import (
    BillFactors,
    BillHistory,
    Forecast,
    expected_usage,
    follower_forecast,
    forecast,
    forecast_by_task,
    forecast_costs,
)
from pipeline.planning.keys import KeyBook, KeyRate, SendSchedule
from pipeline.planning.layouts import RenderFn, choose_layouts
from pipeline.planning.modes import (
    MODES,
    RUN_MODES,
    ModeChoice,
    ModelLoad,
    choose_modes,
    for_mode,
    loads_of,
    merge_loads,
    offers,
    tasks_by_mode,
)
from pipeline.planning.planner import GroupSummary, Plan, PlannedRequest, bucket_count, plan
from pipeline.planning.profilecheck import check_profiles
from pipeline.planning.shape import (
    cache_fields,
    fields_for,
    lifetime_problem,
    request_key,
    static_breakpoints,
    without_prewarms,
)
from pipeline.planning.tree import (
    PrefixTree,
    build_tree,
    cacheable,
    optimal_cached_tokens,
    root_key,
)

__all__ = [
    "MODES",
    "RUN_MODES",
    "BillFactors",
    "BillHistory",
    "Forecast",
    "GroupSummary",
    "KeyBook",
    "KeyRate",
    "ModeChoice",
    "ModelLoad",
    "Plan",
    "PlannedRequest",
    "PrefixAdvice",
    "PrefixTree",
    "RenderFn",
    "SendSchedule",
    "bucket_count",
    "build_tree",
    "cache_fields",
    "cacheable",
    "check_profiles",
    "choose_layouts",
    "choose_modes",
    "expected_usage",
    "fields_for",
    "follow_parents",
    "follower_forecast",
    "for_mode",
    "forecast",
    "forecast_by_task",
    "forecast_costs",
    "lifetime_problem",
    "loads_of",
    "merge_loads",
    "offers",
    "optimal_cached_tokens",
    "plan",
    "prefix_advice",
    "request_key",
    "root_key",
    "static_breakpoints",
    "tasks_by_mode",
    "without_prewarms",
]
