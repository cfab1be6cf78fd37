"""HTTP views (Faust web, aiohttp). Reads are routed to the owning worker and only read
tables; the two writers (``POST /v1/events`` in ``web.ingest``, ``DELETE`` in ``web.erase``)
only produce to the ``events`` topic, never to a table."""
