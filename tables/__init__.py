"""Changelog-backed RocksDB tables, one module each, keyed by customer_id."""
