"""Every topic of the app. Keys and values are raw bytes: agents validate them themselves.

All are declared ``internal`` so Faust creates them (with these partition counts) when
they are missing.
"""
from app.main import app
from app.settings import settings


def _raw_topic(name: str, partitions: int):
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=partitions, internal=True)


#: Shop events and internal commands (erase, session_timeout); key = customer_id (utf-8),
#: JSON envelope value.
events = _raw_topic("events", settings.partitions)

#: Events that failed validation: {"reason", "errors", "raw" (original bytes, utf-8 or base64)}.
events_dlq = _raw_topic("events-dlq", 1)

#: Webhook outbox: one delivery request per (trigger, subscription), or an erase marker;
#: key = customer_id, JSON value (see app/webhooks.py). Written by agents/customers.py,
#: consumed by agents/webhooks.py.
webhook_deliveries = _raw_topic("webhook-deliveries", settings.partitions)

#: Deliveries that failed for good: {"delivery", "error", "status", "attempts", ...};
#: ``persona-redrive`` sends them back to webhook-deliveries.
webhooks_dlq = _raw_topic("webhooks-dlq", 1)
