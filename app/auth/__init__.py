"""Who may do what: API keys and their scopes (``apikeys``), browser identity hashes
(``identity``), JWT verification and its settings (``jwt_auth``, ``jwt_config``) and rate
limits (``ratelimit``). Parsed at start by ``app.settings``; used by ``web/``."""
