"""Log set-up: JSON lines in Lambda, readable lines on a terminal, the same fixed keys in both."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

# The structured fields certdrop attaches with `extra=`; both formats show them.
FIELDS = ("site", "agent", "step", "fqdn", "order_url", "account", "duration_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: getattr(record, k) for k in FIELDS if hasattr(record, k)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TerminalFormatter(logging.Formatter):
    """`12:00:01 [example] order placed (34 ms)`; warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        site = f" [{record.site}]" if hasattr(record, "site") else ""
        level = "" if record.levelno == logging.INFO else f" {record.levelname}:"
        took = f" ({record.duration_ms} ms)" if hasattr(record, "duration_ms") else ""
        text = f"{when}{site}{level} {record.getMessage()}{took}"
        if record.exc_info and record.levelno >= logging.ERROR:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup(*, verbose: bool = False, json_lines: bool | None = None) -> None:
    if json_lines is None:
        json_lines = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TerminalFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # Our own progress at INFO; third-party chatter (urllib3, acme, boto) only when verbose.
    logging.getLogger("cloud").setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose:
        root.setLevel(logging.DEBUG)
