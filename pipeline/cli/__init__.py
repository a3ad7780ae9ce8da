"""The ``contentgen`` command: one module per command group, each a thin layer over a wing.

``main`` assembles the Typer app; ``common`` and ``display`` hold what the commands share
(options, one-line errors, the progress panel). ``demo`` runs the whole pipeline offline.
"""

from __future__ import annotations

from pipeline.cli.main import app, main

__all__ = ["app", "main"]
