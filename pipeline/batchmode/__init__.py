"""Batch mode: the Batch API at batch prices, crash-safe (``contentgen run --mode batch``).

- ``files``: JSONL lines, ``custom_id``s, splitting under 50,000 requests / 200 MB per file,
  reading output and error files;
- ``remote``: the Files/Batches API (SDK errors translated, the one retry policy);
- ``store``: the ``batches`` table, every id stored as soon as it exists; ``items``: the
  ``batch_items`` (``custom_id`` -> job) and recording each one's result;
- ``context``: what the steps share; rendering a batch's requests exactly as realtime does;
- ``submit``: claim, render, plan, write, upload, create;
- ``poll`` and ``ingest``: follow batches with backoff, record lines, requeue, split;
- ``run``: the entry points (run, list, cancel); ``dispatch``: ``--mode`` incl. ``auto``.

Nothing here imports Prefect or the CLI.
"""

from __future__ import annotations

from pipeline.batchmode.dispatch import run_in_mode
from pipeline.batchmode.run import batch_costs, cancel_batch, list_batches, run_batch_mode

__all__ = ["batch_costs", "cancel_batch", "list_batches", "run_batch_mode", "run_in_mode"]
