"""customer_id -> Profile (a JSON dict built by app.profile_state)."""
from app.main import app
from app.settings import settings

profiles = app.Table(
    "profiles",
    default=None,
    key_type=str,
    partitions=settings.partitions,
)
