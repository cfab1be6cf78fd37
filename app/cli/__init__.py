"""The command-line tools (entry points in setup.cfg): ``persona-replay`` (events into the
topic), ``persona-redrive`` (dead letters back), ``persona-reconcile`` (tables against the
event log), ``persona-shadow`` (a rebuild compared live), ``persona-otto`` (the real sample),
``persona-broker`` (a local broker) and ``make run`` itself (``devrun``); ``logread`` is
what the readers of the event log share."""
