"""Recommendations: a pure ranking over the customer's session and profile.

Products: items the customer showed interest in but has not bought, scored by
signal strength (an open cart line scores 5, a view in the current visit 3, an
earlier view 1) and recency. Categories: the decayed profile affinity plus this session's views.
It is a transparent re-engagement ranking, not a collaborative-filtering model.
"""
from __future__ import annotations

from typing import Optional

from app.rules import profile_state, session_state

LIMIT = 10


def recommend(session: Optional[dict], profile: Optional[dict], limit: int = LIMIT) -> dict:
    bought = set(profile["products"]) if profile else set()
    scores: dict[str, float] = {}
    reasons: dict[str, set] = {}
    categories: dict[str, float] = {}

    def add(pid: str, score: float, reason: str, category: Optional[str]) -> None:
        if pid in bought:
            return
        scores[pid] = scores.get(pid, 0.0) + score
        reasons.setdefault(pid, set()).add(reason)
        if category:
            categories[category] = categories.get(category, 0.0) + score / 10

    if session:
        for pid, line in session_state.cart_lines(session).items():
            add(pid, 5.0, "in_cart", line["category"])
        for rank, v in enumerate(session["views"]):
            add(v["product_id"], 3.0 / (1 + rank), "viewed_this_session", v["category"])
    if profile:
        for rank, v in enumerate(profile["views"]):
            add(v["product_id"], 1.0 / (1 + rank), "viewed_before", v["category"])
        for a in profile_state.affinities(profile):
            categories[a["category"]] = categories.get(a["category"], 0.0) + a["share"]
    ranked = sorted(scores, key=lambda p: (-scores[p], p))[:limit]
    return {
        "products": [{"product_id": p, "score": round(scores[p], 4),
                      "reasons": sorted(reasons[p])} for p in ranked],
        "categories": [{"category": c, "score": round(s, 4)}
                       for c, s in sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]],
        "as_of": max(session["last_event_at"] if session else 0,
                     profile["last_seen"] if profile else 0),
    }
