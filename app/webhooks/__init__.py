"""The webhook delivery protocol (see README, "Webhooks"); the agents do the I/O.

- ``subscriptions``: who wants which kinds, parsed and validated once by ``app.settings``;
- ``signing``: Standard Webhooks signatures;
- ``retry``: outcome of an attempt, full-jitter backoff, ``Retry-After``;
- ``records``: outbox requests, erase markers, POST bodies, dead-letter entries.
Which events fire which webhook is a pure rule: ``app.rules.triggers``.
"""
