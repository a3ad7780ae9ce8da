"""``contentgen init``: an editable copy of the default config (profiles, prices, prompts)."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from pipeline.cli.common import console, handle_errors, print_json
from pipeline.errors import InputError
from pipeline.settings import packaged_config_dir


def copy_config(source: Path, target: Path, *, force: bool = False) -> list[Path]:
    """Copy every file under ``source`` to ``target`` and return the written paths.

    Nothing is written when a file would be overwritten without ``force``: the error lists
    them, so a half-copied folder never mixes edited and default files.
    """
    files = sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    pairs = [(src, target / src.relative_to(source)) for src in files]
    existing = [dst for _, dst in pairs if dst.exists()]
    if existing and not force:
        shown = ", ".join(str(p) for p in existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise InputError(
            f"{len(existing)} file(s) already exist ({shown}): edit them, choose another "
            "folder, or overwrite with --force"
        )
    for src, dst in pairs:
        if dst.exists() and dst.is_dir():
            raise InputError(f"{dst}: is a folder, not a file")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return [dst for _, dst in pairs]


def register(app: typer.Typer) -> None:
    """Add ``init`` to ``app``."""

    @app.command("init")
    @handle_errors
    def init(
        folder: Path = typer.Argument(
            Path("config"), metavar="[DIR]", help="Where to write the config (default: ./config)."
        ),
        force: bool = typer.Option(False, "--force", help="Overwrite files that exist."),
        as_json: bool = typer.Option(False, "--json", help="Print the written files as JSON."),
    ) -> None:
        """Write an editable copy of the default config (profiles, prices, prompts) to DIR.

        ContentGen reads CONTENTGEN_CONFIG_DIR when it is set, else ./config when the working
        directory has one, else the copy installed with it. Existing files are left alone
        unless --force.

        Example: contentgen init config && contentgen profiles check
        """
        source = packaged_config_dir()
        if not source.is_dir():
            raise InputError(f"the installed default config is missing: {source}")
        written = copy_config(source, folder, force=force)
        if as_json:
            print_json({"folder": str(folder), "files": [str(p) for p in written]})
            return
        for path in written:
            _say(f"wrote {path}")
        _say(f"{len(written)} files written. {_how_to_use(folder)}")


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def _how_to_use(folder: Path) -> str:
    """How ContentGen will pick ``folder`` up: CONTENTGEN_CONFIG_DIR, else ./config."""
    where = folder.resolve()
    anywhere = f"export CONTENTGEN_CONFIG_DIR={where}"
    if where.name == "config":
        here = "this directory" if where.parent == Path.cwd().resolve() else str(where.parent)
        return f"Commands run from {here} use it; from anywhere else: {anywhere}"
    return f"To use it: {anywhere}"
