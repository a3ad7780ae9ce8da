"""Scrubbing API keys and translating SDK errors that carry no HTTP status."""

from __future__ import annotations

import httpx
import openai

from pipeline.client.errors import scrub, translate
from pipeline.errors import PermanentAPIError, RetryableAPIError

REQUEST = httpx.Request("POST", "http://sim.test/v1/responses")


def test_scrub_masks_key_patterns_and_configured_secrets() -> None:
    """sk-... patterns and configured secrets (any shape) disappear from messages."""
    text = "key sk-proj-AbC_123-xyz789 and custom-secret-42 here"
    cleaned = scrub(text, ["custom-secret-42"])
    assert "AbC_123" not in cleaned
    assert "custom-secret-42" not in cleaned
    assert cleaned.startswith("key sk-***")


def test_scrub_leaves_ordinary_text() -> None:
    """Messages without secrets are unchanged."""
    assert scrub("Rate limit reached for gpt-4.1; task-runner ok") == (
        "Rate limit reached for gpt-4.1; task-runner ok"
    )


def test_mid_stream_sdk_error_is_retryable() -> None:
    """An SDK APIError without status (an SSE payload with "error") is retryable."""
    exc = openai.APIError(
        "overloaded", REQUEST, body={"message": "overloaded", "code": "server_error"}
    )
    err = translate(exc)
    assert isinstance(err, RetryableAPIError)
    assert str(err) == "overloaded" and err.code == "server_error"


def test_other_sdk_errors_are_permanent_and_scrubbed() -> None:
    """A misconfigured client (no key, bad options) is permanent; the message is scrubbed."""
    secret = "sk-live-9876543210zyxwvu"
    exc = openai.OpenAIError(f"bad api key {secret}")
    err = translate(exc, secrets=[secret])
    assert isinstance(err, PermanentAPIError)
    assert secret not in str(err)
    assert secret not in str(exc)
