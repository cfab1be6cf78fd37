"""What keeps answers true across partitions, restarts and crashes: the read-your-writes
positions (``positions``), the applied offsets of the write-back (``applied``), the shadow
comparison against a rebuild (``shadow``) and the crash points the tests kill workers at
(``failpoints``)."""
