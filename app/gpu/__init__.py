"""The GPU frame path: ``stage.py`` (the ``GpuInferCompose`` stage) runs ``compose.py``'s device steps
(upload, infer, smoothing, blend, contours, one download; CUDA graphs). Imports ``app.core`` only."""
