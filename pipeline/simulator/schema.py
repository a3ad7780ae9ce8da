"""Deterministic JSON instances of a JSON schema (the subset structured outputs use).

Supports objects (all properties when ``additionalProperties`` is false, else required ones plus
a coin flip), arrays within minItems/maxItems, strings (minLength/maxLength, enum, const and the
common ``format`` values), integers/numbers within bounds and ``multipleOf``, booleans, nulls,
``anyOf``/``oneOf``/``allOf`` (first usable branch), type lists and local ``$ref``s.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

_FORMATS = {
    "date": "2025-11-30",
    "date-time": "2025-11-30T08:00:00Z",
    "time": "08:00:00",
    "email": "desk@example.com",
    "uri": "https://example.com/article",
    "uuid": "123e4567-e89b-42d3-a456-426614174000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
}
_MAX_DEPTH = 12

WordSource = Callable[[int], str]

TRUE_SHARE = 0.85


class SchemaInstance:
    """Builds instances of one schema; ``words(n)`` supplies ``n`` words of text."""

    def __init__(self, schema: dict[str, Any], rng: random.Random, words: WordSource) -> None:
        self._root = schema
        self._rng = rng
        self._words = words
        self.string_leaves = 0

    def build(self, words_per_string: int) -> Any:
        """An instance whose free-text strings have about ``words_per_string`` words."""
        self.string_leaves = 0
        self._per_string = max(1, words_per_string)
        return self._value(self._root, 0)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema and seen < _MAX_DEPTH:
            ref = str(schema["$ref"])
            node: Any = self._root
            if ref != "#":
                for part in ref.removeprefix("#/").split("/"):
                    node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
            merged = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**node, **merged} if isinstance(node, dict) else merged
            seen += 1
        return schema

    def _value(self, raw: Any, depth: int) -> Any:
        if not isinstance(raw, dict):
            return self._text(None)
        schema = self._resolve(raw)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return self._rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self._value(self._pick_branch(schema[key], depth), depth + 1)
        if schema.get("allOf"):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self._resolve(part) if isinstance(part, dict) else {})
            merged.update({k: v for k, v in schema.items() if k != "allOf"})
            return self._value(merged, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            options = [k for k in kind if k != "null"] or ["null"]
            kind = options[0]
        if kind is None:
            kind = "object" if "properties" in schema else "string"
        return self._typed(kind, schema, depth)

    def _pick_branch(self, branches: list[Any], depth: int) -> Any:
        usable = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
        if depth >= _MAX_DEPTH:
            return {"type": "null"} if len(usable) < len(branches) else usable[0]
        return usable[0] if usable else branches[0]

    def _typed(self, kind: str, schema: dict[str, Any], depth: int) -> Any:
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "string":
            return self._string(schema)
        if kind == "integer":
            return int(self._number(schema, integer=True))
        if kind == "number":
            return self._number(schema, integer=False)
        if kind == "boolean":
            # Mostly true: a verdict such as a grader's "pass" is usually yes.
            return self._rng.random() < TRUE_SHARE
        return None

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        closed = schema.get("additionalProperties") is False
        result: dict[str, Any] = {}
        for name, sub in props.items():
            if depth >= _MAX_DEPTH and name not in required:
                continue
            if name in required or closed or self._rng.random() < 0.5:
                result[name] = self._value(sub, depth + 1)
        return result

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, 5)))
        if depth >= _MAX_DEPTH:
            high = low
        count = self._rng.randint(max(low, min(high, 2)), max(low, high)) if high >= low else low
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        values = [
            self._value(prefix[i] if i < len(prefix) else items, depth + 1) for i in range(count)
        ]
        if schema.get("uniqueItems"):
            values = _unique(values)
        return values

    def _string(self, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt]
        return self._text(schema)

    def _text(self, schema: dict[str, Any] | None) -> str:
        self.string_leaves += 1
        count = max(1, round(self._per_string * self._rng.uniform(0.6, 1.4)))
        text = self._words(count)
        if schema is None:
            return text
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        while len(text) < low:
            text = f"{text} {self._words(3)}"
        if high is not None:
            text = text[: int(high)].rstrip() or text[: int(high)]
        return text

    def _number(self, schema: dict[str, Any], *, integer: bool) -> float:
        nudge = 1.0 if integer else 1e-6
        low = _bound(schema, "minimum", "exclusiveMinimum", nudge)
        high = _bound(schema, "maximum", "exclusiveMaximum", -nudge)
        if low is None:
            low = 0.0 if high is None or high >= 0 else high - 100
        if high is None:
            high = low + 100
        high = max(low, high)
        step = schema.get("multipleOf")
        if step:
            first = math.ceil(low / step)
            last = math.floor(high / step)
            value = step * self._rng.randint(first, max(first, last))
            return int(value) if integer else float(value)
        if integer:
            first, last = math.ceil(low), math.floor(high)
            return float(self._rng.randint(first, max(first, last)))
        value = self._rng.uniform(low, high)
        rounded = round(value, 2)
        return rounded if low <= rounded <= high else value


def _unique(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, nudge: float) -> float | None:
    """A numeric bound from ``inclusive`` or (numeric, draft 6+) ``exclusive``, nudged inwards."""
    value = schema.get(inclusive)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    value = schema.get(exclusive)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) + nudge
    return None
