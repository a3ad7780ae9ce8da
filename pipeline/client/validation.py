"""Checking structured output against the profile's JSON schema.

A response that is not valid JSON, or does not match the schema, is a failed generation with
the reason recorded; it never crashes the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def validate_json_output(text: str, schema: Mapping[str, Any]) -> tuple[Any | None, str | None]:
    """``(parsed, None)`` when ``text`` is JSON matching ``schema``, else ``(None, reason)``.

    The reason names the failing place as a JSON path (``$.items[2].title``). A schema that is
    itself invalid is reported the same way (the profile is wrong, not the output).
    """
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"output is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    # Imported here: runs without structured output do not pay for jsonschema at start-up.
    from jsonschema import exceptions as schema_exceptions
    from jsonschema import validators

    try:
        validator_cls = validators.validator_for(schema)
        validator_cls.check_schema(schema)
        validator = validator_cls(schema)
        error = schema_exceptions.best_match(validator.iter_errors(parsed))
    except schema_exceptions.SchemaError as exc:
        return None, f"output schema is invalid: {exc.message}"
    if error is not None:
        return None, f"output does not match the schema at {error.json_path}: {error.message}"
    return parsed, None
