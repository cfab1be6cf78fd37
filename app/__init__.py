"""Persona's application package; each sub-package is one room:

- ``settings``: every environment variable, parsed and validated once at start;
- ``main``: the ``faust.App`` built from the settings; ``topics``: every topic;
- ``rules/``: the pure state rules (no Faust, aiohttp, settings or clock);
- ``webhooks/``: the webhook delivery protocol (subscriptions, signing, retry, formats);
- ``kafka/``: every use of a Faust or aiokafka private API, pinned to versions;
- ``cli/``: command-line tools (replay, redrive, otto, broker, devrun);
- ``client/``: the Python client (imports nothing of the server side);
- ``apikeys``: API key entries -> digests and scopes; ``sample_data/``: the OTTO sample.
Agents, tables and views live in the top-level ``agents``, ``tables`` and ``web`` packages.
"""
