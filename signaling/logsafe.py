"""Keep secrets out of logs: uvicorn logs WebSocket paths with their query string."""

from __future__ import annotations

import logging
import re

_TOKEN_RE = re.compile(r"(token=)[^&\s\"']*", re.IGNORECASE)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    return _TOKEN_RE.sub(r"\1" + REDACTED, text)


def _scrub(arg: object) -> object:
    if isinstance(arg, str):
        return redact(arg)
    # websockets logs whole frames at DEBUG (through uvicorn's logger): keep only their size,
    # so SDP bodies never reach the logs.
    if type(arg).__name__ == "Frame" and hasattr(arg, "data") and hasattr(arg, "opcode"):
        return f"{getattr(arg.opcode, 'name', arg.opcode)} [{len(arg.data)} bytes]"
    return arg


class RedactTokens(logging.Filter):
    """Redact ``token=`` query values and reduce WebSocket frames to their size."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(_scrub(a) for a in args)
        return True


def install(logger_names: tuple[str, ...] = ("uvicorn.error", "uvicorn.access")) -> None:
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
