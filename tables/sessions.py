"""customer_id -> current Session (a JSON dict built by app.session_state)."""
from app.main import app
from app.settings import settings

sessions = app.Table(
    "sessions",
    default=None,
    key_type=str,
    partitions=settings.partitions,
)
