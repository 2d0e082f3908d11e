"""Log set-up: JSON lines in Lambda, readable lines on a terminal, the same fixed keys in both."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

from nas_agent import redaction

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
        exception = _exception_text(self, record)
        if exception:
            entry["exception"] = exception
        return json.dumps(entry, default=str)


class TerminalFormatter(logging.Formatter):
    """`12:00:01 [example] order placed (34 ms)`; warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        site = f" [{record.site}]" if hasattr(record, "site") else ""
        level = "" if record.levelno == logging.INFO else f" {record.levelname}:"
        took = f" ({record.duration_ms} ms)" if hasattr(record, "duration_ms") else ""
        text = f"{when}{site}{level} {record.getMessage()}{took}"
        exception = _exception_text(self, record)
        if exception and record.levelno >= logging.ERROR:
            text += "\n" + exception
        return text


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    """The record's exception as text: once the redaction filter has passed the record, only
    its masked text is left (`exc_text`, as the standard formatter uses it)."""
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return record.exc_text


def setup(*, verbose: bool = False, json_lines: bool | None = None) -> None:
    if json_lines is None:
        json_lines = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TerminalFormatter())
    handler.addFilter(redaction.RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # Our own progress at INFO; third-party chatter (acme) only when verbose, and the wire
    # loggers (boto, urllib3) never below INFO: their DEBUG lines carry secrets.
    logging.getLogger("cloud").setLevel(logging.DEBUG if verbose else logging.INFO)
    redaction.hold_back_wire_loggers(verbose)
    if verbose:
        root.setLevel(logging.DEBUG)
