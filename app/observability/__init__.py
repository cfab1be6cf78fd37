"""What the service tells its operators: Prometheus metrics (``metrics``) and the switch
that turns them off (``metrics_switch``), the audit log of privileged calls (``audit``) and the
garbage-collector policy the worker runs with (``gc_policy``)."""
