"""An installed wheel carries the config, the sample articles and the migrations, and works
from an empty directory without the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("contentgen-*.whl")
    return built


def _tracked(*folders: str) -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", *folders], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return {name for name in listed if not name.endswith("bad_articles.jsonl")}


@pytest.mark.slow
def test_the_wheel_ships_config_samples_and_migrations(wheel: Path) -> None:
    """Every file of config/, migrations/ and the demo's articles is in pipeline/data/."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    shipped = {n.removeprefix("pipeline/data/") for n in names if n.startswith("pipeline/data/")}
    assert _tracked("config", "migrations", "samples/articles.jsonl") <= shipped
    assert "pipeline/run/runner.py" in names and "pipeline/py.typed" in names
    templates = {p.name for p in (REPO / "pipeline" / "desk" / "templates").glob("*.html")}
    assert templates and {f"pipeline/desk/templates/{t}" for t in templates} <= names


@pytest.mark.slow
def test_an_installed_wheel_migrates_and_reads_its_config_from_an_empty_directory(
    wheel: Path, tmp_path: Path
) -> None:
    """`contentgen db upgrade` and `profiles check` from a new venv with the wheel, elsewhere."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The dependencies come from the test's own environment; the package only from the wheel.
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    work = tmp_path / "empty"
    work.mkdir()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CONTENTGEN_") and k != "PYTHONPATH"
    }
    env["CONTENTGEN_DATABASE_URL"] = f"sqlite:///{work}/night.db"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pipeline; print(pipeline.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(site)), where.stderr or where.stdout
    contentgen = str(venv / "bin" / "contentgen")
    upgraded = subprocess.run(
        [contentgen, "db", "upgrade"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert "(head)" in upgraded.stdout
    checked = subprocess.run(
        [contentgen, "profiles", "check"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr
    assert "summary" in checked.stdout
