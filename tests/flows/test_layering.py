"""The library never imports Prefect (only ``flows/`` and the ``serve`` command do)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.flows.support import REPO

CHECK = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    import pipeline

    skipped = ("pipeline.cli",)
    names = [
        m.name
        for m in pkgutil.walk_packages(pipeline.__path__, "pipeline.")
        if not m.name.startswith(skipped)
    ]
    for name in names:
        importlib.import_module(name)
    leaked = sorted(m for m in sys.modules if m == "prefect" or m.startswith("prefect."))
    print(len(names), "modules imported")
    if leaked:
        sys.exit("pipeline imports prefect: " + ", ".join(leaked[:5]))
    """
)


def test_pipeline_modules_import_without_prefect() -> None:
    """Importing every module of pipeline/ (except pipeline/cli) loads no prefect module."""
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert int(result.stdout.split()[0]) > 10


def test_the_cli_imports_prefect_only_when_serving() -> None:
    """`contentgen --help` does not load Prefect: serve imports it inside the command."""
    code = (
        "import sys; import pipeline.cli.main; "
        "sys.exit('prefect loaded' if 'prefect' in sys.modules else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr + result.stdout
