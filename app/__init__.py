"""Real-time overlay app: capture → inference → overlay/output, in threads, with a window or headless.

Run ``python -m app`` (see ``python -m app --help``) and ``python -m app.bench``.
"""

from app.errors import SetupError, StageError

__all__ = ["SetupError", "StageError"]
