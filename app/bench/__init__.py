"""``python -m app.bench`` (``__main__.py``: naive loop against the threaded pipeline), its ``--live`` latency
bench (``live.py``) and ``--soak`` run (``soak.py``), and ``python -m app.bench.codec`` (``codec.py``)."""
