"""The naive-Faust baseline contender (``bench/naive/app.py``)."""
