"""``APIResult``: the typed outcome of one successful Responses API call.

Built defensively from the SDK's ``Response`` object (or its JSON as a dict): a missing
``usage`` detail counts as 0, a missing text as "". It round-trips through a plain JSON dict
so the response cache stores data, never pickled SDK objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from pipeline.money import Usage

ResultStatus = Literal["completed", "incomplete"]
# Bump when the stored dict changes shape; older entries then read as misses.
RESULT_FORMAT = 1


@dataclass(frozen=True)
class APIResult:
    """A ``completed`` or ``incomplete`` response: text, usage and what the server echoed.

    ``reasoning_summary`` joins the ``summary_text`` parts of reasoning items (None when there
    are none); ``ttft_s`` (time to first text delta) is None for non-streamed calls.
    """

    response_id: str
    model: str
    status: ResultStatus
    output_text: str
    usage: Usage = field(default_factory=Usage)
    incomplete_reason: str | None = None
    reasoning_summary: str | None = None
    service_tier: str | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    request_id: str | None = None
    # Set on a response-cache hit: the ledger (database) of the run that paid for it.
    paid_by: str | None = field(default=None, compare=False)

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (see ``from_json_dict``)."""
        return {
            "format": RESULT_FORMAT,
            "response_id": self.response_id,
            "model": self.model,
            "status": self.status,
            "incomplete_reason": self.incomplete_reason,
            "output_text": self.output_text,
            "reasoning_summary": self.reasoning_summary,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "cached_tokens": self.usage.cached_tokens,
                "output_tokens": self.usage.output_tokens,
                "reasoning_tokens": self.usage.reasoning_tokens,
                "cache_write_tokens": self.usage.cache_write_tokens,
            },
            "service_tier": self.service_tier,
            "latency_s": self.latency_s,
            "ttft_s": self.ttft_s,
            "request_id": self.request_id,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> APIResult:
        """Rebuild a result from ``to_json_dict``; ``ValueError`` if it does not fit."""
        if data.get("format") != RESULT_FORMAT:
            raise ValueError(f"unknown result format {data.get('format')!r}")
        status = data.get("status")
        if status not in ("completed", "incomplete"):
            raise ValueError(f"bad status {status!r}")
        usage = data.get("usage")
        if not isinstance(usage, Mapping):
            raise ValueError("usage missing")
        ttft = data.get("ttft_s")
        return cls(
            response_id=_req_str(data, "response_id"),
            model=_req_str(data, "model"),
            status=cast(ResultStatus, status),
            output_text=_req_str(data, "output_text"),
            usage=Usage(
                input_tokens=_int(usage.get("input_tokens")),
                cached_tokens=_int(usage.get("cached_tokens")),
                output_tokens=_int(usage.get("output_tokens")),
                reasoning_tokens=_int(usage.get("reasoning_tokens")),
                # Entries stored before writes were recorded have no such key: 0.
                cache_write_tokens=_int(usage.get("cache_write_tokens")),
            ),
            incomplete_reason=_opt_str(data.get("incomplete_reason")),
            reasoning_summary=_opt_str(data.get("reasoning_summary")),
            service_tier=_opt_str(data.get("service_tier")),
            latency_s=float(data.get("latency_s") or 0.0),
            ttft_s=None if ttft is None else float(ttft),
            request_id=_opt_str(data.get("request_id")),
        )


def field_of(obj: Any, name: str) -> Any:
    """``obj[name]`` for mappings, ``obj.name`` otherwise; None when absent."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def usage_of(response: Any) -> Usage:
    """The token counts of a response; anything missing counts as 0.

    ``input_tokens_details.cache_write_tokens`` (GPT-5.6+, API-NOTES §1.2) is absent from
    older models' responses and from SDK versions that predate it: 0 then.
    """
    usage = field_of(response, "usage")
    input_details = field_of(usage, "input_tokens_details")
    return Usage(
        input_tokens=_int(field_of(usage, "input_tokens")),
        cached_tokens=_int(field_of(input_details, "cached_tokens")),
        output_tokens=_int(field_of(usage, "output_tokens")),
        reasoning_tokens=_int(
            field_of(field_of(usage, "output_tokens_details"), "reasoning_tokens")
        ),
        cache_write_tokens=_int(field_of(input_details, "cache_write_tokens")),
    )


def output_text_of(response: Any) -> str:
    """The text of every ``output_text`` part of every ``message`` item, concatenated."""
    texts: list[str] = []
    for item in field_of(response, "output") or ():
        if field_of(item, "type") != "message":
            continue
        for part in field_of(item, "content") or ():
            text = field_of(part, "text")
            if field_of(part, "type") == "output_text" and isinstance(text, str):
                texts.append(text)
    return "".join(texts)


def reasoning_summary_of(response: Any) -> str | None:
    """The ``summary_text`` parts of all reasoning items joined by blank lines, or None."""
    texts: list[str] = []
    for item in field_of(response, "output") or ():
        if field_of(item, "type") != "reasoning":
            continue
        for part in field_of(item, "summary") or ():
            text = field_of(part, "text")
            if isinstance(text, str) and text:
                texts.append(text)
    return "\n\n".join(texts) if texts else None


def result_of(
    response: Any,
    *,
    latency_s: float,
    ttft_s: float | None = None,
    request_id: str | None = None,
    fallback_text: str = "",
) -> APIResult:
    """An ``APIResult`` from a ``completed``/``incomplete`` response (SDK object or dict).

    ``fallback_text`` (the streamed deltas) is used when the final response carries no text.
    """
    status: ResultStatus = (
        "incomplete" if field_of(response, "status") == "incomplete" else "completed"
    )
    incomplete_reason = _opt_str(field_of(field_of(response, "incomplete_details"), "reason"))
    text = output_text_of(response) or fallback_text
    return APIResult(
        response_id=str(field_of(response, "id") or ""),
        model=str(field_of(response, "model") or ""),
        status=status,
        output_text=text,
        usage=usage_of(response),
        incomplete_reason=incomplete_reason,
        reasoning_summary=reasoning_summary_of(response),
        service_tier=_opt_str(field_of(response, "service_tier")),
        latency_s=latency_s,
        ttft_s=ttft_s,
        request_id=request_id,
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _req_str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} missing")
    return value
