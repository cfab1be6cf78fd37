"""customer_id -> Profile (JSON built by app.rules.profile_state; see tables.documents)."""
from tables.documents import document_table

profiles = document_table("profiles", help="customer_id -> profile")
