"""Line checks a batch runs while ``validating`` (errors end up in ``batch.errors.data``).

Codes and messages other than ``token_limit_exceeded`` are UNCONFIRMED (API-NOTES §6 documents
only the envelope): ``missing_required_parameter``, ``duplicate_custom_id``, ``invalid_method``,
``invalid_url``, ``model_not_found`` and ``mismatched_model``.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import PricingError
from pipeline.money import PriceTable, base_model_name


def _error(code: str, line: int, message: str, param: str | None) -> dict[str, Any]:
    return {"code": code, "line": line, "message": message, "param": param}


def _has_batch_price(prices: PriceTable, model: str) -> bool:
    try:
        prices.price(model, "batch")
    except PricingError:
        return False
    return True


def validate_lines(
    lines: list[dict[str, Any]], prices: PriceTable
) -> tuple[str | None, list[dict[str, Any]]]:
    """The batch's model and the errors of its lines (1-based line numbers)."""
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model: str | None = None
    for number, line in enumerate(lines, start=1):
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(
                _error("missing_required_parameter", number, "Missing 'custom_id'.", "custom_id")
            )
        elif custom_id in seen:
            errors.append(
                _error(
                    "duplicate_custom_id",
                    number,
                    "The custom_id for this request is a duplicate of another request. The "
                    "custom_id parameter must be unique for each individual request in a batch.",
                    "custom_id",
                )
            )
        else:
            seen.add(custom_id)
        if line.get("method") != "POST":
            errors.append(_error("invalid_method", number, "The method must be 'POST'.", "method"))
        if line.get("url") != "/v1/responses":
            errors.append(
                _error(
                    "invalid_url",
                    number,
                    "The URL provided for this request does not match the batch endpoint.",
                    "url",
                )
            )
        body = line.get("body")
        line_model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(line_model, str) or not line_model:
            errors.append(_error("missing_required_parameter", number, "Missing 'model'.", "body"))
            continue
        if not _has_batch_price(prices, line_model):
            errors.append(
                _error(
                    "model_not_found",
                    number,
                    f"The model '{line_model}' does not exist or is not available for batches.",
                    "body.model",
                )
            )
        if model is None:
            model = line_model
        elif base_model_name(line_model) != base_model_name(model):
            errors.append(
                _error(
                    "mismatched_model",
                    number,
                    "The provided model does not match the model of the other requests in the "
                    "batch; each input file can only include requests to a single model.",
                    "body.model",
                )
            )
    return model, errors
