"""Credentials out of everything shown or stored: ``rtsp://admin:secret@host/x`` → ``rtsp://admin:***@host/x``.

:func:`redact` is applied to source descriptions (logs, HUD, stats), error messages and every log
record (:class:`RedactingFilter`), so a stream password never reaches the console or a file.
"""

from __future__ import annotations

import logging
import re
from typing import Any

#: ``scheme://user:password@`` (the password is everything up to the last ``@`` before the host).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/@\s:]*):(?P<password>[^/\s]*)@")
#: ``?password=...`` style query parameters.
_QUERY_SECRET = re.compile(r"(?P<key>[?&;](?:password|passwd|pwd|pass|token|key|secret|auth)=)[^&;\s]*", re.IGNORECASE)
MASK = "***"
_FORMATTER = logging.Formatter()


def redact(text: str) -> str:
    """``text`` with URL passwords and secret query parameters replaced by ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)


def redact_tree(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(item) for item in value]
    return value


class RedactingFilter(logging.Filter):
    """Logging filter that redacts the formatted message (arguments included) of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:  # format the traceback now, so it can be redacted
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (default: the root logger)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
