"""OpenAI-shaped error answers: ``{"error": {message, type, param, code}}`` with an HTTP status.

Messages are verbatim from API-NOTES.md where a source exists; the others are marked there (and
here) as UNCONFIRMED.
"""

from __future__ import annotations

from typing import Any


class SimAPIError(Exception):
    """An error answer: HTTP ``status``, JSON ``body`` and extra response ``headers``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {
            "error": {"message": message, "type": type, "param": param, "code": code}
        }
        self.headers = headers or {}

    @property
    def code(self) -> str | None:
        """The ``error.code`` field."""
        code: str | None = self.body["error"]["code"]
        return code


def incorrect_api_key(key: str) -> SimAPIError:
    """401 for a key the server does not know (the key is masked as the API masks it)."""
    shown = f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else "*****"
    return SimAPIError(
        401,
        f"Incorrect API key provided: {shown}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        type="invalid_request_error",
        code="invalid_api_key",
    )


def missing_api_key() -> SimAPIError:
    """401 for a request without ``Authorization: Bearer <key>`` (code: UNCONFIRMED)."""
    return SimAPIError(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization "
        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API "
        "key from https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def invalid_json() -> SimAPIError:
    """400 for a body that is not a JSON object."""
    return SimAPIError(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
        "sent was not valid JSON.)",
    )


def missing_parameter(param: str) -> SimAPIError:
    """400 for a required parameter that is absent."""
    return SimAPIError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def invalid_type(param: str, expected: str) -> SimAPIError:
    """400 for a parameter of the wrong type."""
    return SimAPIError(
        400,
        f"Invalid type for '{param}': expected {expected}.",
        param=param,
        code="invalid_type",
    )


def invalid_value(param: str, message: str) -> SimAPIError:
    """400 for a parameter with a value the API refuses."""
    return SimAPIError(400, message, param=param, code="invalid_value")


def model_not_found(model: str) -> SimAPIError:
    """400 on /v1/responses for a model the account cannot use (verbatim, [NR])."""
    return SimAPIError(
        400, f"The requested model '{model}' does not exist.", param="model", code="model_not_found"
    )


def unsupported_parameter(param: str) -> SimAPIError:
    """400 for temperature/top_p on a reasoning model (verbatim for temperature, §4)."""
    return SimAPIError(
        400,
        f"Unsupported parameter: '{param}' is not supported with this model.",
        param=param,
        code="unsupported_parameter",
    )


def below_minimum(param: str, minimum: int, got: int) -> SimAPIError:
    """400 for ``max_output_tokens`` < 16 (wording UNCONFIRMED, §2.2)."""
    return SimAPIError(
        400,
        f"Invalid '{param}': integer below minimum value. Expected a value >= {minimum}, "
        f"but got {got} instead.",
        param=param,
        code="integer_below_min_value",
    )


def previous_response_not_found(response_id: str) -> SimAPIError:
    """400 for an unknown (or unstored) ``previous_response_id``."""
    return SimAPIError(
        400,
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def not_found(kind: str, object_id: str, *, param: str | None = None) -> SimAPIError:
    """404 for an unknown response, file or batch id (wording UNCONFIRMED)."""
    return SimAPIError(404, f"No {kind} found with id '{object_id}'.", param=param)


def invalid_url(method: str, path: str) -> SimAPIError:
    """404 for a route the API does not have."""
    return SimAPIError(404, f"Invalid URL ({method} {path})")


def server_error() -> SimAPIError:
    """500 with the documented wording."""
    return SimAPIError(
        500,
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
        code="server_error",
    )


def overloaded() -> SimAPIError:
    """503 with the documented wording."""
    return SimAPIError(
        503,
        "The engine is currently overloaded, please try again later",
        type="server_error",
        code="server_overloaded",
    )


def flex_unavailable() -> SimAPIError:
    """429 for flex capacity: not charged. The exact JSON is UNCONFIRMED (API-NOTES §8)."""
    return SimAPIError(
        429,
        "Resource unavailable. Please try again later.",
        type="invalid_request_error",
        code="resource_unavailable",
    )
