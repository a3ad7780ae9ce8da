"""What the CMS receives: one version of an item as an IPTC ninjs object, and its signature.

ninjs field names where they fit: ``uri`` (the item, the same for every version), ``version``
(1, 2, ...: a higher version supersedes the item the CMS has), ``versioncreated`` (the
decision), ``firstcreated`` (the item's first version), ``type`` ``text``, ``pubstatus``
(``usable``; ``canceled`` when an editor rejected an item already delivered), ``language``,
the text as ``headline`` (the headline task) or ``body_text`` (any other task; a task with
an output schema also gets its JSON as ``body_json``), ``digitalSourceType`` (IPTC:
``trainedAlgorithmicMedia``, or ``compositeWithTrainedAlgorithmicMedia`` once an editor
edited), plus ``provenance`` (model, profile version, generation and response ids, the
editor's decision, the checks) and ``source`` (the article it was made from).

Signing follows Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature`` = ``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from pipeline.db import AI_EDITED, AI_GENERATED, DeliveryFacts

HEADLINE_TASKS = frozenset({"headline"})


def _iso(moment: dt.datetime) -> str:
    return moment.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")


def ninjs(facts: DeliveryFacts, *, language: str) -> dict[str, Any]:
    """The ninjs object of one version (see the module docstring)."""
    meta = facts.article_meta or {}
    lang = meta.get("language") if isinstance(meta.get("language"), str) else None
    item: dict[str, Any] = {
        "uri": facts.uri,
        "version": str(facts.version),
        "versioncreated": _iso(facts.created_at),
        "firstcreated": _iso(facts.first_created_at),
        "type": "text",
        "pubstatus": "canceled" if facts.action == "canceled" else "usable",
        "language": lang or language,
    }
    if facts.action != "canceled":
        text = facts.edited_text if facts.decision == "edited" else facts.output_text
        item["headline" if facts.task in HEADLINE_TASKS else "body_text"] = text or ""
        if facts.output_json is not None and facts.decision != "edited":
            item["body_json"] = facts.output_json
        item["digitalSourceType"] = AI_EDITED if facts.decision == "edited" else AI_GENERATED
    item["provenance"] = {
        "task": facts.task,
        "model": facts.model or facts.request_model,
        "request_model": facts.request_model,
        "profile_version": facts.profile_version,
        "version": f"{facts.task}@{(facts.profile_version or '?')[:7]}",
        "generation_id": facts.generation_id,
        "response_id": facts.response_id,
        "generated_at": _iso(facts.generated_at),
        "decision": facts.decision,
        "editor": facts.editor,
        "decided_at": _iso(facts.decided_at),
        "note": facts.note,
        "model_text": facts.output_text if facts.decision == "edited" else None,
        "checks": facts.checks or [],
        "flagged": bool(facts.flagged),
    }
    item["source"] = {
        "id": facts.source_id,
        "title": facts.title,
        "url": facts.url,
        "section": facts.section,
    }
    return item


def body_bytes(item: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact JSON, keys in a fixed order, UTF-8."""
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``{id}.{timestamp}.{body}`` (Standard Webhooks)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one signed send."""
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, message_id, timestamp, body),
    }
