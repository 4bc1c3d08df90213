"""Where frames go: ``writers.py`` (``VideoOutput``, ``MaskWriter``), ``encoders.py`` (H.264, mp4v, MJPG),
``recording.py`` (crash-safe fragmented recording and its recovery), ``paths.py`` (output path checks) and
``sinks.py`` (the sink stages, the window's ``DisplaySink`` too). Imports ``app.core``, never the sources."""
