"""Helpers shared by the tests: event builders, the expected-state fold, the cluster."""
