"""ContentGen's exceptions.

Everything we raise on purpose derives from ``PipelineError``; the CLI prints it as one line
and exits non-zero, flows let it propagate so the run is marked failed.

    PipelineError
    ├── ConfigError            config/*.toml or settings are invalid (names file and key)
    ├── InputError             an input file cannot be read at all (missing, unreadable)
    ├── DatabaseError          the database is unreachable or not migrated
    ├── PricingError           a model has no price (raised before any request is sent)
    ├── TemplateError          a profile's layout puts per-job values before shared content
    ├── RunStopped             a run ended early for a reason the caller must see (flows fail)
    └── APIError               a request to the Responses API failed (translated in client/)
        ├── RetryableAPIError  429, 5xx, timeouts, dropped connections
        │   └── RateLimited    429 (carries the server's retry hint)
        └── PermanentAPIError  400/404 and other non-retryable answers about one request
            ├── RequestTooLarge larger than the account's TPM or the model's limits
            └── FatalAPIError  401, 403, insufficient quota, unknown model, an API that
                               stays unreachable: no other request can succeed either

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


class RunStopped(PipelineError):
    """A run stopped before its queue was done (a fatal API error): the flow run fails."""


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
    """A failure worth retrying: 408/409/429/5xx, timeouts, dropped connections, stream errors.

    ``maybe_billed``: the request may have reached the server, which may finish and bill it
    though no answer came back (a read timeout, a connection lost after sending).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after_s: float | None = None,
        maybe_billed: bool = False,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id)
        self.retry_after_s = retry_after_s
        self.maybe_billed = maybe_billed


class RateLimited(RetryableAPIError):
    """HTTP 429: the account's rate limit (or flex capacity) was exceeded."""


class PermanentAPIError(APIError):
    """A failure that will not go away by retrying (bad request, auth, unknown model).

    ``reason`` names it for a machine where it is known (``too_large``: the request can never
    fit the account's or the model's limits); it becomes the job's ``failure_reason``.
    """

    reason: str | None = None


class RequestTooLarge(PermanentAPIError):
    """A request larger than its account's tokens-per-minute limit (or the model's): it can
    never be admitted, so its job fails at once instead of waiting for a bucket that never
    holds it."""

    reason = "too_large"


class FatalAPIError(PermanentAPIError):
    """A failure of the account or the endpoint, not of one request: the run must stop.

    ``kind`` is ``auth`` (401), ``permission`` (403), ``quota`` (insufficient quota),
    ``model`` (unknown model) or ``unreachable``; ``advice`` says what to do, in a sentence.
    The job that met it was not at fault: it goes back to the queue with its attempts as they
    were.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        advice: str,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id)
        self.kind = kind
        self.advice = advice
