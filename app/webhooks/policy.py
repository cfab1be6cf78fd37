"""Retry policy of webhook deliveries: what an HTTP answer means, and how long to wait."""
from __future__ import annotations

import random
from typing import Optional

#: outcome of one HTTP attempt
OK, RETRY, GIVE_UP = "ok", "retry", "give_up"


def backoff_delay(attempt: int, base: float, cap: float, rand=random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2 ** (attempt - 1))] after ``attempt`` failures."""
    return rand() * min(cap, base * 2.0 ** max(0, attempt - 1))


def classify(status: Optional[int]) -> str:
    """``None`` = no HTTP answer (connection error, timeout): retried."""
    if status is None or status in (408, 429) or status >= 500:
        return RETRY
    return OK if 200 <= status < 300 else GIVE_UP  # 410, other 4xx, redirects: for good


def retry_after_s(value: Optional[str], cap: float) -> Optional[float]:
    """``Retry-After`` in seconds (HTTP dates are not honoured), capped."""
    try:
        return min(cap, max(0.0, float(value))) if value else None
    except ValueError:
        return None

