"""customer_id -> current Session (JSON built by app.rules.session_state; see tables.documents)."""
from tables.documents import document_table

sessions = document_table("sessions", help="customer_id -> current session")
