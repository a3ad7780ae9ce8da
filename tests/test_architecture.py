"""The house rules of ``pipeline/``: a wing per stage, one public face each, layers, no cycles.

The rules are read statically (tests/architecture.py) from the checkout; the checker itself is
tested first on small made-up trees, so a rule that silently stopped matching would fail here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.architecture import LAYERS, Layout

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def layout() -> Layout:
    return Layout(REPO)


def _tree(root: Path, files: dict[str, str]) -> Layout:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for top in ("pipeline", "flows", "benchmarks"):
        (root / top).mkdir(exist_ok=True)
    return Layout(root)


GOOD = {
    "pipeline/__init__.py": '"""The library."""\n',
    "pipeline/errors.py": "class PipelineError(Exception): ...\n",
    "pipeline/prompts/__init__.py": (
        '"""Prompts."""\nfrom pipeline.prompts.render import render\n__all__ = ["render"]\n'
    ),
    "pipeline/prompts/render.py": "from pipeline.errors import PipelineError\ndef render(): ...\n",
    "pipeline/planning/__init__.py": (
        '"""Planning."""\nfrom pipeline.planning.planner import plan\n__all__ = ["plan"]\n'
    ),
    "pipeline/planning/planner.py": "from pipeline.prompts import render\ndef plan(): ...\n",
}


def test_the_checker_passes_a_tidy_tree(tmp_path: Path) -> None:
    """A tree that keeps every rule yields no finding (so the findings below are real)."""
    tree = _tree(tmp_path, GOOD)
    assert tree.face_violations() == []
    assert tree.layer_violations() == []
    assert tree.cycles() == []
    assert tree.faces_without_docs() == []


def test_the_checker_finds_each_kind_of_breach(tmp_path: Path) -> None:
    """Around a face, a hidden name, an upward import, a module cycle, a long module."""
    tree = _tree(
        tmp_path,
        GOOD
        | {
            "pipeline/planning/planner.py": (
                "from pipeline.prompts.render import render\n"
                "from pipeline.prompts import secret\n"
                "def plan(): ...\n"
            ),
            "pipeline/prompts/render.py": (
                "def render():\n    from pipeline.planning import plan\n" + "x = 1\n" * 600
            ),
            "pipeline/prompts/a.py": "from pipeline.prompts.b import y\nx = 1\n",
            "pipeline/prompts/b.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pipeline.prompts.a import x\ny = 1\n"
            ),
            "pipeline/money/__init__.py": "x = 1\n",
        },
    )
    faces = tree.face_violations()
    assert any("pipeline.prompts.render is inside prompts's face" in f for f in faces)
    assert any("does not export ['secret']" in f for f in faces)
    assert any("prompts imports planning, not below it" in f for f in tree.layer_violations())
    assert ["pipeline.prompts.a", "pipeline.prompts.b"] in tree.cycles()
    assert tree.long_modules() == ["pipeline/prompts/render.py (602 lines)"]
    assert "pipeline.money: no docstring" in tree.faces_without_docs()


def test_the_library_never_imports_prefect_or_flows_but_to_serve(tmp_path: Path) -> None:
    """Only `contentgen serve` may import flows, and only inside the command."""
    tree = _tree(
        tmp_path,
        GOOD
        | {
            "pipeline/cli/__init__.py": '"""CLI."""\n__all__: list[str] = []\n',
            "pipeline/cli/serve_cmd.py": "def serve():\n    from flows.deployments import x\n",
            "pipeline/cli/run_cmd.py": "import prefect\n",
        },
    )
    found = tree.layer_violations()
    assert found == ["pipeline/cli/run_cmd.py:1: the library imports prefect"]


def test_every_wing_is_imported_through_its_face(layout: Layout) -> None:
    """Code outside a wing (library and flows) names only what the wing's __init__ exports."""
    assert layout.face_violations() == []


def test_wings_import_only_the_layers_below_them(layout: Layout) -> None:
    """intake/prompts < money < planning/client/simulator < db < limits < run/reports <
    batchmode < cli; the library never imports Prefect."""
    assert layout.layer_violations() == []


def test_every_wing_has_a_layer_and_a_described_face(layout: Layout) -> None:
    """A new wing is placed in LAYERS and says in its __init__ what it is for."""
    wings = {name.split(".")[1] for name in layout.exports if name.startswith("pipeline.")}
    placed = set().union(*LAYERS)
    assert wings - placed == set()
    assert layout.faces_without_docs() == []


def test_no_modules_import_each_other(layout: Layout) -> None:
    """No import cycle between modules (inside functions and TYPE_CHECKING included)."""
    assert layout.cycles() == []


def test_no_library_module_passes_500_lines(layout: Layout) -> None:
    """A module past ~500 lines is asking to be split along its seams."""
    assert layout.long_modules() == []


def test_the_top_level_is_a_handful_of_wings() -> None:
    """pipeline/ holds packages and a few shared modules, not a hall of loose files."""
    loose = sorted(p.name for p in (REPO / "pipeline").glob("*.py") if p.name != "__init__.py")
    assert loose == ["errors.py", "settings.py", "tomlfile.py"]
