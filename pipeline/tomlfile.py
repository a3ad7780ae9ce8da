"""Reading TOML config files into pydantic models with errors that name the file and key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError

from pipeline.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
# tomllib puts the position at the end of its message: "... (at line 3, column 5)".
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def read_bytes(path: Path) -> bytes:
    """The bytes of a config file; a missing or unreadable file is one ``ConfigError`` line."""
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a directory, not a file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def decode_utf8(path: Path, data: bytes) -> str:
    """``data`` as text; bytes that are not UTF-8 give ``FILE: line N: not valid UTF-8 ...``."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path}: line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at column "
            f"{column})"
        ) from exc


def read_text(path: Path) -> str:
    """A UTF-8 config file's text; every problem is one ``ConfigError`` naming the file."""
    return decode_utf8(path, read_bytes(path))


def read_toml(path: Path) -> dict[str, object]:
    """Parse a TOML file, turning a missing or malformed file into one ``ConfigError`` line.

    Malformed TOML and bytes that are not UTF-8 are reported as ``FILE: line N: ...``.
    """
    text = read_text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        if found is None:  # "... (at end of document)": the last line is unfinished
            line = text.rstrip("\n").count("\n") + 1
            message = message.removesuffix(" (at end of document)")
            raise ConfigError(f"{path}: line {line}: invalid TOML: {message} (at the end)") from exc
        message = message[: found.start()]
        raise ConfigError(
            f"{path}: line {found.group(1)}: invalid TOML: {message} (column {found.group(2)})"
        ) from exc


def describe_validation_error(path: Path, exc: ValidationError) -> str:
    """``file: key.path: message`` for each problem pydantic found, joined with '; '."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{where}: {message.removeprefix('Value error, ')}")
    return f"{path}: " + "; ".join(problems)


def load_model(path: Path, model: type[M], data: dict[str, object] | None = None) -> M:
    """Validate ``data`` (or the file's content) as ``model``; errors name file and key."""
    raw = read_toml(path) if data is None else data
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(path, exc)) from exc


def known_zone(value: str) -> str:
    """``value`` if it names an IANA time zone, else a ``ValueError`` a config file's validator
    turns into its one line (file, field)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (e.g. UTC, Europe/Berlin)") from None
    return value
