"""Running in a mode: realtime, flex, batch, or ``auto`` (per model, cheapest that meets the
deadline, chosen from the dry run's forecast; ``pipeline.planning.modes``).

``auto`` may split one run into several: the tasks whose model chose batch are submitted
first (without waiting), then the flex and realtime tasks run, then the batches are followed
until they end. Each part is its own run row with its mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.batchmode.run import run_batch_mode
from pipeline.planning import MODES, ModeChoice, tasks_by_mode
from pipeline.prompts import load_profiles
from pipeline.run import Progress, RunOptions, dry_run, run_batch
from pipeline.settings import Settings


@dataclass
class ModeRun:
    """What a run in a mode did: the per-model choice (``auto``) and each part's summary."""

    mode: str
    choices: dict[str, ModeChoice] = field(default_factory=dict)
    parts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        out: dict[str, Any] = {"mode": self.mode}
        if self.choices:
            out["choices"] = [c.as_dict() for c in self.choices.values()]
        out["runs"] = self.parts
        return out


def run_in_mode(
    settings: Settings,
    options: RunOptions,
    *,
    progress: Callable[[Progress], None] | None = None,
    handle_signals: bool = False,
) -> ModeRun:
    """Run the queue in ``options.mode`` (see the module docstring)."""
    mode = options.mode
    if mode in ("realtime", "flex"):
        summary = run_batch(settings, options, progress=progress, handle_signals=handle_signals)
        return ModeRun(mode, parts=[{"mode": mode, **summary.as_dict()}])
    if mode == "batch":
        batch = run_batch_mode(settings, options, handle_signals=handle_signals)
        return ModeRun(mode, parts=[batch.as_dict()])
    if mode != "auto":
        raise ValueError(f"unknown mode {mode!r}")
    report = dry_run(settings, replace(options, mode="auto"))
    result = ModeRun("auto", choices=dict(report.mode_choices))
    by_mode = tasks_by_mode(load_profiles(settings.config_dir), report.mode_choices)

    def part(chosen: str) -> RunOptions | None:
        tasks = by_mode.get(chosen, ())  # type: ignore[call-overload]
        if options.tasks is not None:
            tasks = tuple(t for t in tasks if t in options.tasks)
        if not tasks:
            return None
        limit = None if options.limit is None else sum(report.by_task[t] for t in tasks)
        return replace(options, mode=chosen, tasks=tasks, limit=limit)

    batch_options = part("batch")
    if batch_options is not None:
        submitted = run_batch_mode(settings, batch_options, wait=False)
        result.parts.append(submitted.as_dict())
    for chosen in MODES:
        sub = part(chosen) if chosen != "batch" else None
        if sub is not None:
            summary = run_batch(settings, sub, progress=progress, handle_signals=handle_signals)
            result.parts.append({"mode": chosen, **summary.as_dict()})
    if batch_options is not None:
        followed = run_batch_mode(
            settings, batch_options, submit=False, handle_signals=handle_signals
        )
        result.parts.append(followed.as_dict())
    return result
