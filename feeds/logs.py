"""The log as one JSON object a line; a line written while a request is answered carries its id."""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

#: The id of the request being answered in this thread, if one is.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
#: What an offered X-Request-Id may be: a token a proxy or a client made (a UUID, nginx's
#: $request_id, a tracing header's value), nothing that could break a header or a log line.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/=@-]{0,127}")


class _NewIds:
    """Ids unique to this process (a random prefix, drawn again in a forked child) and numbered
    within it: a tenth of the cost of drawing random bytes for every request."""

    def __init__(self) -> None:
        self.draw()

    def draw(self) -> None:
        self.prefix = os.urandom(8).hex() + "-"
        self.numbers = itertools.count(1)


_new = _NewIds()
os.register_at_fork(after_in_child=_new.draw)


def request_id(offered: str | None) -> str:
    """The id a request goes by: the X-Request-Id it came with if that is a sane token, else a new one."""
    if offered is not None and _SANE_ID.fullmatch(offered):
        return offered
    return f"{_new.prefix}{next(_new.numbers)}"


class JsonLines(logging.Formatter):
    """`{"time": ..., "level": ..., "process": ..., "pid": ..., "logger": ..., "message": ...}`, with
    `request_id` while a request is answered and `exception` when one is logged."""

    def __init__(self, process: str) -> None:
        super().__init__()
        #: Which of the service's processes writes: "web", "indexer" or "supervisor".
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self.process,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        identifier = REQUEST_ID.get()
        if identifier is not None:
            entry["request_id"] = identifier
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _Handler(logging.StreamHandler[TextIO]):
    """Ours, so that setting the log up again replaces it rather than doubling every line."""


def handler(process: str, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing JSON lines to `stream` (standard error by default)."""
    made = _Handler(stream)
    made.setFormatter(JsonLines(process))
    return made


def setup(process: str, level: int = logging.INFO) -> None:
    """The log of a process the service starts (the indexer, the supervisor): JSON lines on standard
    error from `level` up, in place of those `init_app` set up when the command loaded the app."""
    root = logging.getLogger()
    for existing in [existing for existing in root.handlers if isinstance(existing, _Handler)]:
        root.removeHandler(existing)
    root.addHandler(handler(process))
    root.setLevel(level)


def init_app() -> None:
    """JSON lines for a web worker, unless the process's log is set up already (by a test runner,
    a server's own logging configuration, or a command that set it up before the app was made)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(handler("web"))
