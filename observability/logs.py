"""Log records with the request and action they belong to, masked, as text or as one JSON object per line.

LOGGING (config/settings.py) puts both filters on the console handler, so
every record that reaches it, from any logger, is stamped and masked before
either formatter sees it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from observability import context
from observability.redact import redact, redact_text

# What every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_STAMPED = frozenset({"request_id", "action_id", "context"})


class StderrHandler(logging.StreamHandler):
    """A console handler that writes to whatever sys.stderr is when a line is written.

    A plain StreamHandler keeps the sys.stderr of the moment logging was set
    up; a process that swaps it later (a test runner capturing output, a
    command redirecting it) would leave the handler writing to a closed file.
    `setStream` still pins another stream, and `setStream(None)` unpins it.
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        logging.Handler.__init__(self, level)
        self._pinned = None

    @property
    def stream(self):
        return self._pinned if self._pinned is not None else sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        self._pinned = value


class ContextFilter(logging.Filter):
    """Stamp each record with the request id and action id bound where it was logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = context.request_id.get()
        record.action_id = context.action_id.get()
        parts = [f"{name}={value}" for name in ("request_id", "action_id") if (value := getattr(record, name))]
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return True


class RedactFilter(logging.Filter):
    """Mask secrets and email addresses in the message, the traceback and the extra fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text: formatting it here masks it for all of them.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        for name, value in extra_fields(record).items():
            setattr(record, name, redact(value, name))
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller passed with `extra=`."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and k not in _STAMPED}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, action_id, then any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "action_id": getattr(record, "action_id", None),
        }
        for name, value in extra_fields(record).items():
            line.setdefault(name, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # default=str: extras such as Django's `request` become their repr, already masked.
        return json.dumps(line, default=str, ensure_ascii=False)
