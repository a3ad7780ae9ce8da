"""Reading the files ``profiles.toml`` names: texts, JSON schemas and contexts.

Every error names the file and the key of ``profiles.toml`` that pointed at it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.prompts.contexts import Context, ContextSpec
from pipeline.tomlfile import decode_utf8


def read_text(path: Path, where: str) -> str:
    """A file named by profiles.toml (at ``where``); errors name both."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{where}: file not found: {path}") from exc
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return decode_utf8(path, data)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (named by {where})") from exc.__cause__


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def load_schema(path: Path, where: str) -> dict[str, Any]:
    """An output schema file: a JSON object that is a valid JSON Schema."""
    text = read_text(path, where)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: line {exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})"
        ) from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deeply") from exc
    if not isinstance(schema, dict):
        raise ConfigError(f"{path}: output schema must be a JSON object (got {_json_type(schema)})")
    # An invalid schema would only show when the first paid response is checked against it.
    # (jsonschema is imported here: a config without schemas does not pay for it at start-up.)
    from jsonschema import exceptions as schema_exceptions
    from jsonschema import validators

    try:
        validators.validator_for(schema).check_schema(schema)
    except schema_exceptions.SchemaError as exc:
        raise ConfigError(
            f"{path}: output schema is invalid at {exc.json_path}: {exc.message}"
        ) from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deeply") from exc
    return schema


def load_context(config_dir: Path, file: Path, name: str, spec: ContextSpec) -> Context:
    where = f"{file}: contexts.{name}"
    if spec.file is not None:
        return Context(name, text=read_text(config_dir / spec.file, where))
    assert spec.by_section is not None
    pattern = Path(spec.by_section)
    folder = config_dir / pattern.parent
    prefix, _, suffix = pattern.name.partition("{section}")
    texts = {
        p.name[len(prefix) : len(p.name) - len(suffix)]: read_text(p, where)
        for p in sorted(folder.glob(f"{prefix}*{suffix}"))
    }
    fallback = None if spec.fallback is None else read_text(config_dir / spec.fallback, where)
    return Context(name, by_section=texts, fallback=fallback)
