"""A supervised process's sign of life: a byte written now and then to a pipe its supervisor reads.

`flask serve` starts the watch process with the pipe's end named in FEEDS_HEARTBEAT_FD, and kills
it when it has been silent for longer than FEEDS_WATCHDOG_SECONDS: a process that hangs (a lock
never released, a wait that never returns) is then started again, as one that died is. In any
other process `beat` does nothing.
"""

from __future__ import annotations

import os
import time

#: The variable that names the descriptor (set by the supervisor, not by operators).
HEARTBEAT_FD = "FEEDS_HEARTBEAT_FD"
#: Beats closer together than this are sent as one.
BEAT_SECONDS = 0.5

_descriptor: int | None = None
_looked = False
_last = float("-inf")


def beat() -> None:
    """Says that this process is alive and doing its work; cheap enough to call in any loop."""
    global _descriptor, _looked, _last
    now = time.monotonic()
    if now - _last < BEAT_SECONDS:
        return
    _last = now
    if not _looked:
        _looked = True
        _descriptor = _from_environment()
    if _descriptor is None:
        return
    try:
        os.write(_descriptor, b".")
    except BlockingIOError:
        pass  # the pipe is full of beats the supervisor has not read yet: it knows already
    except OSError:
        _descriptor = None  # no supervisor reads it any more


def _from_environment() -> int | None:
    try:
        return int(os.environ[HEARTBEAT_FD])
    except (KeyError, ValueError):
        return None
