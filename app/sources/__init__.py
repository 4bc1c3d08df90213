"""Where frames come from: ``source.py`` (``FrameSource``, ``open_source``: files, cameras, streams, image
folders), ``live.py`` (the built-in live test sources), ``frame_convert.py`` (any picture to BGR ``uint8``)
and ``capture.py`` (the ``Capture`` stage: pacing, pause, reconnect). Imports ``app.core``, never the outputs."""
