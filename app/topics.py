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
