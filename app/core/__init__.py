"""What every pipeline is made of: the stage contract (``stage.py``), per-stage timing (``stage_timer.py``),
frame times and the stats file (``stats.py``), the CPU stages (``stages.py``: infer, reorder, post-process,
compose, HUD), the overlay drawing and view state (``overlay.py``, ``keys.py``) and the inference plan
(``inference_plan.py``). Imports no other part of ``app`` but ``app.errors`` and ``app.size``."""
