"""Delivery: approved texts sent from the outbox to the newsroom's CMS, each version once.

- ``config``: where to (a webhook with its signing secret, or a drop folder) and how hard to
  try, from ``[delivery]`` in ``config/delivery.toml`` and ``CONTENTGEN_DELIVERY_*``;
- ``payload``: one version of an (article, task) item as an IPTC ninjs object with its
  provenance and ``digitalSourceType``, and its Standard Webhooks signature;
- ``targets``: the signed webhook (httpx) and the drop folder (files written atomically);
- ``deliverer``: ``deliver`` claims due versions with a lease, sends them, records each as
  sent or failing (exponential backoff over hours, never given up).

The outbox itself is ``pipeline.db.outbox``, filled by ``pipeline.review.decide`` in the
decision's own transaction; docs/delivery.md states the rules.
"""

from __future__ import annotations

from pipeline.db import DELIVERY_STATES, DeliveryRow, delivery_counts, list_deliveries
from pipeline.delivery.config import (
    DeliveryConfig,
    DeliverySection,
    decode_secret,
    load_delivery_config,
)
from pipeline.delivery.deliverer import DeliveryEvent, DeliverySummary, deliver
from pipeline.delivery.payload import body_bytes, ninjs, signature, webhook_headers
from pipeline.delivery.targets import FolderTarget, Sent, Target, WebhookTarget, make_target

__all__ = [
    "DELIVERY_STATES",
    "DeliveryConfig",
    "DeliveryEvent",
    "DeliveryRow",
    "DeliverySection",
    "DeliverySummary",
    "FolderTarget",
    "Sent",
    "Target",
    "WebhookTarget",
    "body_bytes",
    "decode_secret",
    "deliver",
    "delivery_counts",
    "list_deliveries",
    "load_delivery_config",
    "make_target",
    "ninjs",
    "signature",
    "webhook_headers",
]
