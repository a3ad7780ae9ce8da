"""Reading TOML config files into pydantic models with errors that name the file and key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from pipeline.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_toml(path: Path) -> dict[str, object]:
    """Parse a TOML file, turning a missing or malformed file into one ``ConfigError`` line."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def describe_validation_error(path: Path, exc: ValidationError) -> str:
    """``file: key.path: message`` for each problem pydantic found, joined with '; '."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{where}: {message}")
    return f"{path}: " + "; ".join(problems)


def load_model(path: Path, model: type[M], data: dict[str, object] | None = None) -> M:
    """Validate ``data`` (or the file's content) as ``model``; errors name file and key."""
    raw = read_toml(path) if data is None else data
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(path, exc)) from exc
