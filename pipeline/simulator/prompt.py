"""How the simulator turns a Responses request into prompt tokens (shared with the forecast).

Input tokens of a request::

    input_tokens = 3                                   # per request
                 + sum(4 + content_tokens(m) for m in messages)

where ``messages`` is, in order: the ``tools`` list (canonical JSON) if any, the ``text.format``
JSON schema (canonical JSON of name/schema/strict) if any, ``instructions`` if any, the stored
conversation of ``previous_response_id`` (its inputs and output, without its instructions) and
the ``input`` messages (a string ``input`` is one user message). ``content_tokens`` is the
model's tiktoken encoding (o200k_base or cl100k_base) of each text part; an ``input_image``
counts 85 tokens. Tools and schema come first because OpenAI injects them before the developer
instructions, so changing them changes the whole prefix (API-NOTES §1.1).

The token ids are real tiktoken ids for text and negative ids for the structure (message
start/role/separator/end, request header, reasoning effort), so two prompts share a prefix
exactly when their rendered conversations do. The reasoning effort sits in the header: changing
it invalidates the cache, as the cookbook warns.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pipeline.simulator.models import default_effort
from pipeline.tokens import encoding_name, get_encoding

PER_REQUEST_TOKENS = 3
PER_MESSAGE_TOKENS = 4
IMAGE_TOKENS = 85

_BOS, _REPLY, _START, _SEP, _END = -1, -2, -3, -4, -5
_ROLES = {"system": -10, "developer": -11, "user": -12, "assistant": -13, "tool": -14}
_TOOLS, _SCHEMA = -15, -16
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_NO_EFFORT = -20
_TEXT_PARTS = {"input_text", "output_text", "text", "summary_text"}
# Fields that do not change what a model writes: left out of the generation key.
_NOT_GENERATIVE = frozenset(
    {
        "stream",
        "stream_options",
        "store",
        "metadata",
        "prompt_cache_key",
        "prompt_cache_retention",
        "service_tier",
        "user",
        "safety_identifier",
        "background",
    }
)


_PROMPT = frozenset({"instructions", "input", "tools"})


class PromptError(ValueError):
    """The request's input cannot be rendered; ``param`` names the offending field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class RenderedPrompt:
    """A request's prompt as token ids, plus the part a follow-up turn carries over."""

    ids: list[int]
    conversation: list[int]


def canonical_json(value: Any) -> str:
    """Sorted keys, compact separators: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=2048)
def _text_ids(text: str, encoding: str) -> tuple[int, ...]:
    return tuple(get_encoding(encoding).encode_ordinary(text))


def _image_ids(part: dict[str, Any]) -> list[int]:
    source = canonical_json([part.get("image_url"), part.get("file_id"), part.get("detail")])
    digest = hashlib.blake2b(source.encode(), digest_size=8).digest()
    seed = int.from_bytes(digest, "big")
    return [-1000 - ((seed >> (i % 48)) + i) % 100_000 for i in range(IMAGE_TOKENS)]


def _content_ids(content: Any, encoding: str, param: str) -> list[int]:
    if content is None:
        return []
    if isinstance(content, str):
        return list(_text_ids(content, encoding))
    if not isinstance(content, list):
        raise PromptError(f"Invalid type for '{param}': expected a string or an array.", param)
    ids: list[int] = []
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise PromptError(f"Invalid type for '{where}': expected an object.", where)
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            text = part.get("text")
            if not isinstance(text, str):
                raise PromptError(f"Missing required parameter: '{where}.text'.", f"{where}.text")
            ids.extend(_text_ids(text, encoding))
        elif kind == "refusal":
            ids.extend(_text_ids(str(part.get("refusal", "")), encoding))
        elif kind == "input_image":
            ids.extend(_image_ids(part))
        elif kind == "input_file":
            ids.extend(_text_ids(str(part.get("filename") or part.get("file_id") or ""), encoding))
        else:
            raise PromptError(f"Invalid value: '{kind}'. Unsupported content type.", where)
    return ids


def message_ids(role_id: int, content_ids: Sequence[int]) -> list[int]:
    """One rendered message: start, role, separator, content, end (4 structural tokens)."""
    return [_START, role_id, _SEP, *content_ids, _END]


def assistant_ids(text: str, model: str) -> list[int]:
    """The rendered assistant message for ``text`` (how an output enters the next turn)."""
    return message_ids(_ROLES["assistant"], _text_ids(text, encoding_name(model)))


def _item_ids(item: Any, encoding: str, param: str) -> list[int]:
    if not isinstance(item, dict):
        raise PromptError(f"Invalid type for '{param}': expected an object.", param)
    kind = item.get("type", "message")
    if kind == "message" or "role" in item:
        role = item.get("role")
        if role not in _ROLES:
            raise PromptError(
                f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', "
                "'developer', and 'user'.",
                f"{param}.role",
            )
        return message_ids(_ROLES[role], _content_ids(item.get("content"), encoding, param))
    if kind == "function_call":
        text = f"{item.get('name', '')}({item.get('arguments', '')})"
        return message_ids(_ROLES["assistant"], _text_ids(text, encoding))
    if kind == "function_call_output":
        output = item.get("output", "")
        text = output if isinstance(output, str) else canonical_json(output)
        return message_ids(_ROLES["tool"], _text_ids(text, encoding))
    if kind == "reasoning":
        return []  # earlier reasoning is not carried into the next prompt
    raise PromptError(f"Invalid value: '{kind}'. Unsupported input item type.", f"{param}.type")


def _input_ids(body: dict[str, Any], encoding: str) -> list[int]:
    value = body.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        return message_ids(_ROLES["user"], _text_ids(value, encoding))
    if not isinstance(value, list):
        raise PromptError("Invalid type for 'input': expected a string or an array.", "input")
    ids: list[int] = []
    for index, item in enumerate(value):
        ids.extend(_item_ids(item, encoding, f"input[{index}]"))
    return ids


def _effort_id(body: dict[str, Any], model: str) -> int:
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    effort = effort or default_effort(model)
    if effort in _EFFORTS:
        return _NO_EFFORT - 1 - _EFFORTS.index(effort)
    return _NO_EFFORT


def _schema_text(body: dict[str, Any]) -> str | None:
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("json_schema", "json_object"):
        return None
    return canonical_json({k: fmt.get(k) for k in ("type", "name", "schema", "strict")})


def render_prompt(body: dict[str, Any], history: Sequence[int] = ()) -> RenderedPrompt:
    """Token ids of ``body``'s prompt; ``history`` is a stored previous conversation.

    Raises ``PromptError`` when ``input`` is malformed.
    """
    model = str(body.get("model") or "")
    encoding = encoding_name(model)
    ids: list[int] = [_BOS, _effort_id(body, model)]
    tools = body.get("tools")
    if tools:
        ids.extend(message_ids(_TOOLS, _text_ids(canonical_json(tools), encoding)))
    schema = _schema_text(body)
    if schema is not None:
        ids.extend(message_ids(_SCHEMA, _text_ids(schema, encoding)))
    instructions = body.get("instructions")
    if instructions:
        if not isinstance(instructions, str):
            raise PromptError("Invalid type for 'instructions': expected a string.", "instructions")
        ids.extend(message_ids(_ROLES["developer"], _text_ids(instructions, encoding)))
    conversation = [*history, *_input_ids(body, encoding)]
    ids.extend(conversation)
    ids.append(_REPLY)
    return RenderedPrompt(ids=ids, conversation=conversation)


def prompt_token_ids(body: dict[str, Any], history: Sequence[int] = ()) -> list[int]:
    """The prompt of a Responses request body as token ids (see the module docstring)."""
    return render_prompt(body, history).ids


def count_input_tokens(body: dict[str, Any], history_tokens: int = 0) -> int:
    """``usage.input_tokens`` the simulator will report for ``body`` (module docstring formula).

    ``history_tokens`` adds a ``previous_response_id`` conversation's tokens, which only the
    server knows (its own input and output tokens, rendered as messages).
    """
    return len(render_prompt(body).ids) + history_tokens


def generation_key(body: dict[str, Any], seed: int, prompt_ids: Sequence[int]) -> int:
    """A 64-bit seed from the request's generative fields and the simulator seed.

    The prompt enters through its token ids (cheaper than re-serialising long texts), the
    other generative fields as canonical JSON; stream, store, metadata, cache key and tier are
    left out, so they never change the answer.
    """
    semantic = {k: v for k, v in body.items() if k not in _NOT_GENERATIVE and k not in _PROMPT}
    digest = hashlib.blake2b(digest_size=8, key=str(seed).encode())
    digest.update(canonical_json(semantic).encode())
    digest.update(ids_bytes(prompt_ids))
    return int.from_bytes(digest.digest(), "big")


def ids_bytes(ids: Sequence[int]) -> bytes:
    """Packed bytes of token ids (for hashing)."""
    return array("q", ids).tobytes()
