"""ContentGen's exceptions.

Everything we raise on purpose derives from ``PipelineError``; the CLI prints it as one line
and exits non-zero, flows let it propagate so the run is marked failed.

    PipelineError
    ├── ConfigError            config/*.toml or settings are invalid (names file and key)
    ├── InputError             an input file cannot be read at all (missing, unreadable)
    ├── DatabaseError          the database is unreachable or not migrated
    ├── PricingError           a model has no price (raised before any request is sent)
    ├── TemplateError          a profile's layout puts per-job values before shared content
    └── APIError               a request to the Responses API failed (translated in client/)
        ├── RetryableAPIError  429, 5xx, timeouts, dropped connections
        │   └── RateLimited    429 (carries the server's retry hint)
        └── PermanentAPIError  400/401/403/404 and other non-retryable answers

Library exceptions are translated where they enter (``client/``, ``db/``) and keep their cause.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error ContentGen raises on purpose."""


class ConfigError(PipelineError):
    """Configuration (TOML files, settings) is missing or invalid."""


class InputError(PipelineError):
    """An input file cannot be used at all (missing, unreadable, wrong format)."""


class DatabaseError(PipelineError):
    """The database is unreachable or its schema is not at the expected revision."""


class PricingError(PipelineError):
    """A model or service tier has no price in the price table."""


class TemplateError(PipelineError):
    """A prompt template would put per-job content before the shared (cacheable) part."""


class APIError(PipelineError):
    """A request to the API failed; ``status`` is the HTTP status when there was one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id


class RetryableAPIError(APIError):
    """A failure worth retrying: 408/409/429/5xx, timeouts, dropped connections, stream errors."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id)
        self.retry_after_s = retry_after_s


class RateLimited(RetryableAPIError):
    """HTTP 429: the account's rate limit (or flex capacity) was exceeded."""


class PermanentAPIError(APIError):
    """A failure that will not go away by retrying (bad request, auth, unknown model)."""
