"""A malformed HTTP request (an oversized header line, a broken request line) is the
client's fault: aiohttp answers 400 and logs it as an ERROR with a traceback, so any
unauthenticated client could fill the log with tracebacks. This filter turns those into one
WARNING line naming the client and the error; other errors keep their traceback."""
from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

LOGGER = "aiohttp.server"


class BadRequestsInOneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            client = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = "bad HTTP request from %s: %s", (
                client, f"{exc.__class__.__name__} {exc.code} {str(exc.message)[:80]!r}")
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install() -> None:
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(f, BadRequestsInOneLine) for f in logger.filters):
        logger.addFilter(BadRequestsInOneLine())


install()
