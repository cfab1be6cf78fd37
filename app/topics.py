"""Every topic of the app. Values are raw bytes: agents validate them themselves."""
from app.main import app
from app.settings import settings

#: Shop events and erase commands, key = customer_id (utf-8), JSON envelope value.
events = app.topic(
    "events",
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
    internal=True,  # declared (created if missing) with this partition count
)

#: Events that failed validation: {"reason", "errors", "raw" (original bytes, utf-8 or base64)}.
events_dlq = app.topic(
    "events-dlq",
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=1,
    internal=True,
)

#: Webhook outbox: one delivery request per (trigger, subscription), or an erase marker;
#: key = customer_id, JSON value (see app/webhooks.py). Written by agents/customers.py,
#: consumed by agents/webhooks.py.
webhook_deliveries = app.topic(
    "webhook-deliveries",
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
    internal=True,
)

#: Deliveries that failed for good: {"delivery", "error", "status", "attempts", ...};
#: ``persona-redrive`` sends them back to webhook-deliveries.
webhooks_dlq = app.topic(
    "webhooks-dlq",
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=1,
    internal=True,
)
