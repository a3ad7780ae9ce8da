"""A static reading of the package layout: wings, their faces, their layers, module cycles.

``Layout(root)`` parses every module under ``pipeline/`` and ``flows/`` (and ``benchmarks/``
for cycles) without importing anything, and lists what breaks the house rules in
``docs/architecture.md``:

- a wing imported through anything but its face (``from pipeline.run import run_batch``, never
  ``from pipeline.run.runner import run_batch``), or a name its face does not export;
- a wing importing one on its own layer or above (``LAYERS``);
- a cycle between modules, imports inside functions and under ``TYPE_CHECKING`` included;
- a module over ``MAX_LINES`` lines; a face without a docstring or ``__all__``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_LINES = 500

# Bottom to top: a wing may import the shared modules and the wings on layers below its own.
CORE = frozenset({"errors", "settings", "tomlfile"})
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"checks"}),
    frozenset({"intake", "prompts"}),
    frozenset({"money"}),
    frozenset({"planning", "client", "simulator"}),
    frozenset({"db"}),
    frozenset({"limits"}),
    frozenset({"run", "reports", "review", "alerts"}),
    frozenset({"batchmode", "desk", "delivery"}),
    frozenset({"cli"}),
)
# The one door from the library to Prefect: `contentgen serve`, inside the command.
LAZY_EXCEPTIONS = frozenset(
    {("pipeline.cli.serve_cmd", "flows"), ("pipeline.cli.serve_cmd", "prefect")}
)


@dataclass(frozen=True)
class Import:
    """One import statement: who imports, what, which names, and whether inside a function."""

    module: str
    target: str
    names: tuple[str, ...]
    line: int
    lazy: bool


@dataclass
class Layout:
    """The modules of a checkout, read with ``ast``; see the module docstring."""

    root: Path
    modules: dict[str, Path] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)
    exports: dict[str, set[str] | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for top in ("pipeline", "flows", "benchmarks"):
            for path in sorted((self.root / top).rglob("*.py")):
                rel = path.relative_to(self.root)
                if "data" in rel.parts[:2] and rel.parts[0] == "pipeline":
                    continue  # links to migrations/ and config/
                parts = list(rel.with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                self.modules[".".join(parts)] = path
        for name, path in self.modules.items():
            tree = ast.parse(path.read_text(), str(path))
            self.imports.extend(self._imports(name, tree))
            if path.name == "__init__.py" and name.count(".") == 1:
                self.exports[name] = _all_names(tree)

    # -- reading -------------------------------------------------------------------------

    def _resolve(self, module: str, target: str) -> str:
        """Benchmarks import their neighbours as top-level names (``import harness``)."""
        if module.startswith("benchmarks.") and f"benchmarks.{target}" in self.modules:
            return f"benchmarks.{target}"
        return target

    def _imports(self, module: str, tree: ast.Module) -> Iterator[Import]:
        lazy_nodes = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = tuple(a.name for a in node.names)
                target = self._resolve(module, node.module)
                yield Import(module, target, names, node.lineno, id(node) in lazy_nodes)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    target = self._resolve(module, alias.name)
                    yield Import(module, target, (), node.lineno, id(node) in lazy_nodes)

    def where(self, imp: Import) -> str:
        """``path:line`` of an import, for messages."""
        return f"{self.modules[imp.module].relative_to(self.root)}:{imp.line}"

    # -- the rules -----------------------------------------------------------------------

    def face_violations(self) -> list[str]:
        """Imports of a wing that go around its face, or names the face does not export."""
        found = []
        for imp in self.imports:
            if imp.module.split(".")[0] not in ("pipeline", "flows"):
                continue
            target_wing = wing_of(imp.target)
            if target_wing is None or target_wing == wing_of(imp.module):
                continue
            exported = self.exports.get(f"pipeline.{target_wing}") or set()
            if imp.target != f"pipeline.{target_wing}":
                found.append(f"{self.where(imp)}: {imp.target} is inside {target_wing}'s face")
                continue
            hidden = [n for n in imp.names if n not in exported]
            if hidden:
                found.append(f"{self.where(imp)}: pipeline.{target_wing} does not export {hidden}")
        return found

    def layer_violations(self) -> list[str]:
        """Imports of a wing on the importer's own layer or above (or of Prefect's flows)."""
        rank = {w: i for i, layer in enumerate(LAYERS) for w in layer}
        found = []
        for imp in self.imports:
            if not imp.module.startswith("pipeline."):
                continue
            source, target = wing_of(imp.module), wing_of(imp.target)
            top = imp.target.split(".")[0]
            if top in ("flows", "prefect"):
                if not (imp.lazy and (imp.module, top) in LAZY_EXCEPTIONS):
                    found.append(f"{self.where(imp)}: the library imports {imp.target}")
                continue
            if source is None or target is None or source == target:
                continue
            if source not in rank or target not in rank:
                found.append(f"{self.where(imp)}: {source} or {target} has no layer in LAYERS")
            elif rank[target] >= rank[source]:
                found.append(f"{self.where(imp)}: {source} imports {target}, not below it")
        return found

    def _edges(self) -> dict[str, set[str]]:
        edges: dict[str, set[str]] = {m: set() for m in self.modules}
        for imp in self.imports:
            for target in self._targets(imp):
                if target in self.modules and target != imp.module:
                    edges[imp.module].add(target)
        return edges

    def _targets(self, imp: Import) -> Iterator[str]:
        """What an import depends on: a submodule it names, else the module itself."""
        named = [f"{imp.target}.{n}" for n in imp.names if f"{imp.target}.{n}" in self.modules]
        if named:
            yield from named
        if len(named) < len(imp.names) or not imp.names:
            yield imp.target

    def cycles(self) -> list[list[str]]:
        """Each strongly connected group of modules that import each other (Tarjan)."""
        edges = self._edges()
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []

        def visit(node: str) -> None:
            index[node] = low[node] = len(index)
            stack.append(node)
            on_stack.add(node)
            for nxt in sorted(edges[node]):
                if nxt not in index:
                    visit(nxt)
                    low[node] = min(low[node], low[nxt])
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if low[node] == index[node]:
                group = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    group.append(top)
                    if top == node:
                        break
                # A face importing its own modules, which import siblings, is not a cycle.
                if len(group) > 1:
                    found.append(sorted(group))

        for node in sorted(edges):
            if node not in index:
                visit(node)
        return found

    def long_modules(self) -> list[str]:
        """Modules of ``pipeline/`` over ``MAX_LINES`` lines."""
        return [
            f"{path.relative_to(self.root)} ({n} lines)"
            for name, path in self.modules.items()
            if name.startswith("pipeline") and (n := len(path.read_text().splitlines())) > MAX_LINES
        ]

    def faces_without_docs(self) -> list[str]:
        """Wings whose ``__init__`` lacks a docstring or an ``__all__``."""
        found = []
        for name, exported in sorted(self.exports.items()):
            tree = ast.parse(self.modules[name].read_text())
            if not ast.get_docstring(tree):
                found.append(f"{name}: no docstring")
            if name.startswith("pipeline.") and exported is None:
                found.append(f"{name}: no __all__")
        return found


def wing_of(module: str) -> str | None:
    """The wing a ``pipeline`` module belongs to (``pipeline.run.feed`` -> ``run``); None for
    the shared modules and anything outside ``pipeline``."""
    parts = module.split(".")
    if parts[0] != "pipeline" or len(parts) < 2 or parts[1] in CORE:
        return None
    return parts[1]


def _all_names(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            assert isinstance(node.value, ast.List | ast.Tuple)
            return {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
    return None
