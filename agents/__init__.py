"""Stream processors: they wire topics to the pure state functions and write tables."""
