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

Cache marks (for the GPT-5.6+ breakpoints regime, ``breakpoints.py``): positions are counts of
prompt token ids from the start of the prompt. An explicit breakpoint
(``"prompt_cache_breakpoint": {"mode": "explicit"}`` on an ``input_text``, ``input_image`` or
``input_file`` block) sits after the last token of its block, inside the message (before its end
token). A message's end is the same kind of position: after its last content token, before its
end token, so a breakpoint on a message's last block and that message's end coincide
(INFERENCE: the guide does not say where a "message ending" falls). ``render_prompt`` records
both, with each message's role, for the instructions, the stored conversation and ``input``;
the tools and schema pseudo-messages carry no marks.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pipeline.prompts import encoding_name, get_encoding
from pipeline.simulator.models import default_effort

PER_REQUEST_TOKENS = 3
PER_MESSAGE_TOKENS = 4
IMAGE_TOKENS = 85

_BOS, _REPLY, _START, _SEP, _END = -1, -2, -3, -4, -5
_ROLES = {"system": -10, "developer": -11, "user": -12, "assistant": -13, "tool": -14}
_TOOLS, _SCHEMA = -15, -16
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_NO_EFFORT = -20
_TEXT_PARTS = {"input_text", "output_text", "text", "summary_text"}
_ROLE_NAMES = {v: k for k, v in _ROLES.items()}
# Content blocks that may carry a prompt_cache_breakpoint (the SDK's input text/image/file).
BREAKPOINT_PARTS = frozenset({"input_text", "input_image", "input_file"})
BREAKPOINT_FIELD = "prompt_cache_breakpoint"
# Fields that do not change what a model writes: left out of the generation key.
_NOT_GENERATIVE = frozenset(
    {
        "stream",
        "stream_options",
        "store",
        "metadata",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
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
class Breakpoint:
    """A ``prompt_cache_breakpoint`` as sent: where it sits, the field's path, its value and the
    type of the block carrying it.

    ``inherited`` breakpoints come from a ``previous_response_id`` conversation (validated when
    they were sent; ``param`` is then ``previous_response_id``).
    """

    position: int
    param: str
    spec: Any
    kind: str = "input_text"
    inherited: bool = False


@dataclass(frozen=True)
class MessageEnd:
    """Where a message's content ends (see the module docstring) and the message's role."""

    position: int
    role: str


@dataclass(frozen=True)
class History:
    """A stored conversation a follow-up turn carries, with its cache marks.

    Positions are counted from the start of ``ids``.
    """

    ids: Sequence[int]
    breakpoints: tuple[Breakpoint, ...] = ()
    messages: tuple[MessageEnd, ...] = ()


@dataclass(frozen=True)
class RenderedPrompt:
    """A request's prompt as token ids, its cache marks and the part a follow-up carries over.

    ``start`` is where ``conversation`` (stored history, then ``input``) begins in ``ids``;
    ``messages`` lists the instructions and every conversation message in prompt order.
    """

    ids: list[int]
    conversation: list[int]
    start: int = 0
    breakpoints: tuple[Breakpoint, ...] = ()
    messages: tuple[MessageEnd, ...] = ()

    @property
    def user_end(self) -> int | None:
        """The end of the latest user message (the implicit breakpoint), None without one."""
        ends = [m.position for m in self.messages if m.role == "user"]
        return ends[-1] if ends else None

    @property
    def developer_end(self) -> int | None:
        """The end of the initial developer block: the leading developer/system messages."""
        end = None
        for message in self.messages:
            if message.role not in ("developer", "system"):
                break
            end = message.position
        return end

    def carried(self, reply: Sequence[int]) -> History:
        """What a follow-up turn carries: the conversation, then ``reply`` (rendered assistant
        message, possibly empty), with the marks shifted to the conversation's start."""
        shift = self.start
        breakpoints = tuple(
            Breakpoint(b.position - shift, "previous_response_id", b.spec, b.kind, inherited=True)
            for b in self.breakpoints
            if b.position >= shift
        )
        messages = [
            MessageEnd(m.position - shift, m.role) for m in self.messages if m.position >= shift
        ]
        if reply:
            messages.append(MessageEnd(len(self.conversation) + len(reply) - 1, "assistant"))
        ids = array("q", self.conversation)
        ids.extend(reply)
        return History(ids, breakpoints, tuple(messages))


class _Builder:
    """Accumulates prompt ids and the cache marks of the messages it renders."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.ids: list[int] = []
        self.breakpoints: list[Breakpoint] = []
        self.messages: list[MessageEnd] = []

    def message(self, role_id: int, content_ids: Sequence[int], *, marked: bool = True) -> None:
        """Append one rendered message; ``marked`` records its end and role."""
        self.ids.extend(message_ids(role_id, content_ids))
        if marked:
            self.messages.append(MessageEnd(len(self.ids) - 1, _ROLE_NAMES[role_id]))

    def history(self, history: Sequence[int] | History) -> None:
        """Append a stored conversation, shifting its marks."""
        shift = len(self.ids)
        if isinstance(history, History):
            self.ids.extend(history.ids)
            self.breakpoints.extend(
                Breakpoint(b.position + shift, b.param, b.spec, b.kind, b.inherited)
                for b in history.breakpoints
            )
            self.messages.extend(MessageEnd(m.position + shift, m.role) for m in history.messages)
        else:
            self.ids.extend(history)


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


def _content_ids(
    content: Any, encoding: str, param: str, base: int = 0, marks: list[Breakpoint] | None = None
) -> list[int]:
    """Token ids of a message's content; breakpoints go to ``marks`` at ``base`` + offset."""
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
        spec = part.get(BREAKPOINT_FIELD)
        if spec is not None and marks is not None:
            param_name = f"{where}.{BREAKPOINT_FIELD}"
            marks.append(Breakpoint(base + len(ids), param_name, spec, str(kind)))
    return ids


def message_ids(role_id: int, content_ids: Sequence[int]) -> list[int]:
    """One rendered message: start, role, separator, content, end (4 structural tokens)."""
    return [_START, role_id, _SEP, *content_ids, _END]


def assistant_ids(text: str, model: str) -> list[int]:
    """The rendered assistant message for ``text`` (how an output enters the next turn)."""
    return message_ids(_ROLES["assistant"], _text_ids(text, encoding_name(model)))


def _add_item(out: _Builder, item: Any, param: str) -> None:
    if not isinstance(item, dict):
        raise PromptError(f"Invalid type for '{param}': expected an object.", param)
    encoding = out.encoding
    kind = item.get("type", "message")
    if kind == "message" or "role" in item:
        role = item.get("role")
        if role not in _ROLES:
            raise PromptError(
                f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', "
                "'developer', and 'user'.",
                f"{param}.role",
            )
        base = len(out.ids) + 3  # start, role, separator
        where = f"{param}.content"
        content = _content_ids(item.get("content"), encoding, where, base, out.breakpoints)
        out.message(_ROLES[role], content)
    elif kind == "function_call":
        text = f"{item.get('name', '')}({item.get('arguments', '')})"
        out.message(_ROLES["assistant"], _text_ids(text, encoding))
    elif kind == "function_call_output":
        output = item.get("output", "")
        text = output if isinstance(output, str) else canonical_json(output)
        out.message(_ROLES["tool"], _text_ids(text, encoding))
    elif kind != "reasoning":  # earlier reasoning is not carried into the next prompt
        raise PromptError(f"Invalid value: '{kind}'. Unsupported input item type.", f"{param}.type")


def _add_input(out: _Builder, body: dict[str, Any]) -> None:
    value = body.get("input")
    if value is None:
        return
    if isinstance(value, str):
        out.message(_ROLES["user"], _text_ids(value, out.encoding))
        return
    if not isinstance(value, list):
        raise PromptError("Invalid type for 'input': expected a string or an array.", "input")
    for index, item in enumerate(value):
        _add_item(out, item, f"input[{index}]")


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


def render_prompt(body: dict[str, Any], history: Sequence[int] | History = ()) -> RenderedPrompt:
    """Token ids and cache marks of ``body``'s prompt; ``history`` is a stored conversation.

    Raises ``PromptError`` when ``input`` is malformed. Breakpoints are recorded as sent; the
    request checks (``cacheoptions``) decide whether the model takes them.
    """
    model = str(body.get("model") or "")
    out = _Builder(encoding_name(model))
    out.ids.extend((_BOS, _effort_id(body, model)))
    tools = body.get("tools")
    if tools:
        out.message(_TOOLS, _text_ids(canonical_json(tools), out.encoding), marked=False)
    schema = _schema_text(body)
    if schema is not None:
        out.message(_SCHEMA, _text_ids(schema, out.encoding), marked=False)
    instructions = body.get("instructions")
    if instructions:
        if not isinstance(instructions, str):
            raise PromptError("Invalid type for 'instructions': expected a string.", "instructions")
        out.message(_ROLES["developer"], _text_ids(instructions, out.encoding))
    start = len(out.ids)
    out.history(history)
    _add_input(out, body)
    conversation = out.ids[start:]
    out.ids.append(_REPLY)
    return RenderedPrompt(
        ids=out.ids,
        conversation=conversation,
        start=start,
        breakpoints=tuple(out.breakpoints),
        messages=tuple(out.messages),
    )


def prompt_token_ids(body: dict[str, Any], history: Sequence[int] | History = ()) -> list[int]:
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
