"""granian's access log in the Combined Log Format: only the standard library, as granian's main process loads it.

granian reads its logging configuration (LOG_CONFIG, which names `CombinedLogFormat`) in its main
process too, whose modules every worker it forks inherits. Were the app imported there, a reload
(SIGHUP) would start new workers with the old code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

#: granian's access log format: what `CombinedLogFormat` gets (granian passes the headers it names
#: as `_h0`, `_h1`, in order), and close to the line it writes, should granian run without it.
ACCESS_LOG_FIELDS = (
    '%(addr)s - - [%(time)s] "%(method)s %(path)s %(protocol)s" %(status)d - '
    '"%(header{referer})s" "%(header{user-agent})s"'
)
#: granian's logging, with the access log's formatter replaced by ours.
LOG_CONFIG = Path(__file__).with_name("granian-logging.json")
#: Bytes that are escaped in an access log line, as nginx does: quotes, backslashes, controls and
#: everything past ASCII (as \xHH of the byte: WSGI hands text over as latin-1).
_ESCAPES = {code: f"\\x{code:02X}" for code in (*range(0x20), 0x22, 0x5C, *range(0x7F, 0x100))}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class CombinedLogFormat(logging.Formatter):
    """granian's access log in the Combined Log Format, as nginx and Apache write it and log tools
    read it: `addr - - [05/Dec/2026:22:47:43 +0000] "GET /path?query HTTP/1.1" 200 - "referer" "agent"`.

    The time is when the line is written (the answer's end, as in nginx). granian does not count
    the bytes it sends, so their field is "-".
    """

    def __init__(self) -> None:
        super().__init__()
        #: The last second a line was written in, and its text: most lines cost no time formatting.
        self._clock = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        fields = record.args
        if not isinstance(fields, Mapping):  # not one of granian's access lines
            return super().format(record)
        second, moment = self._clock
        if int(record.created) != second:
            local = time.localtime(record.created)
            moment = f"{local.tm_mday:02d}/{_MONTHS[local.tm_mon - 1]}/{time.strftime('%Y:%H:%M:%S %z', local)}"
            self._clock = (int(record.created), moment)
        query = fields["query_string"]
        target = _escape(f"{fields['path']}?{query}" if query else str(fields["path"]))
        return (
            f'{fields["addr"]} - - [{moment}] "{fields["method"]} {target} {fields["protocol"]}" {fields["status"]} -'
            f' "{_escape(str(fields["_h0"]))}" "{_escape(str(fields["_h1"]))}"'
        )


def _escape(text: str) -> str:
    return text.translate(_ESCAPES)
