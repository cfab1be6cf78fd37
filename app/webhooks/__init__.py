"""The webhook delivery protocol (see README, "Webhooks"); the agents do the I/O.

- ``subscriptions``: who wants which kinds, parsed and validated once by ``app.settings``;
- ``signing``: Standard Webhooks signatures;
- ``policy``: outcome of an attempt, full-jitter backoff, ``Retry-After``;
- ``formats``: outbox requests, POST bodies, dead-letter entries;
- ``erasure``: erase markers and which deliveries they cancel.
Which events fire which webhook is a pure rule: ``app.rules.triggers``.
"""
