"""The worker consumer's fetch wait, which Faust hard-codes, and its fetch minimum.

faust-streaming 0.15.3 builds the worker's ``AIOKafkaConsumer`` with
``fetch_max_wait_ms=1500`` (``AIOKafkaConsumerThread._create_worker_consumer``), no
setting. Real Kafka answers a fetch as soon as ``fetch_min_bytes`` (1) is there, so that
wait only bounds an idle consumer's long poll. The bundled broker (Tansu 0.6.0) holds every
fetch for about half of it whatever arrives meanwhile: records reached the agent in
bursts ~0.75 s old (raw aiokafka, 3,000 records/s, 8 partitions: consume latency p50
397 ms / p99 766 ms with 1500 ms, 32 / 62 ms with 100 ms, 9 / 17 ms with 10 ms).

Faust leaves the fetch minimum at aiokafka's 1 byte: under load each fetch then brings
what arrived since the last one, and each costs the consumer thread ~2 ms of Python
(request, response decode, thread hand-off) however few records it brings. Live at
4,200 events/s on the bundled broker: 46 fetches/s of ~90 records with 1 byte, ~12/s with
64 KiB, and ~11 % less worker CPU per event (``PERSONA_FETCH_MIN_BYTES``).

``install(wait_ms, min_bytes)`` wraps Faust's method to set the consumer's (private) wait
and minimum before it starts (aiokafka hands both to its ``Fetcher`` in ``start()``).
``None`` keeps Faust's values.
"""
from __future__ import annotations

from typing import Optional

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

#: Faust's own method, and the value it hard-codes (tests pin both).
_original = AIOKafkaConsumerThread._create_worker_consumer
FAUST_FETCH_MAX_WAIT_MS = 1500


def install(wait_ms: Optional[int], min_bytes: Optional[int] = None) -> None:
    if wait_ms is None and min_bytes is None:
        AIOKafkaConsumerThread._create_worker_consumer = _original
        return

    def _create_worker_consumer(self, transport):
        consumer = _original(self, transport)
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = wait_ms  # read by AIOKafkaConsumer.start()
        if min_bytes is not None:
            consumer._fetch_min_bytes = min_bytes  # likewise
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
