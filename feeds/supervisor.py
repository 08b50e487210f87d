"""`flask --app app serve`: the web server and the watch process side by side, each restarted if it dies.

This process owns both: it starts them, restarts one that exits (after a pause that grows if
it keeps dying), and stops both on SIGTERM or SIGINT. They get SIGTERM if it dies itself.
granian in turn restarts a web worker that dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

#: How often the children are looked at.
POLL_SECONDS = 0.2
#: The pause before a restart, doubled for each quick death in a row, up to the longest.
FIRST_PAUSE_SECONDS, LONGEST_PAUSE_SECONDS = 0.2, 10.0
#: A child that lived this long is taken as having started well: its next restart is quick again.
HEALTHY_SECONDS = 30.0
#: How long a child is given to stop after SIGTERM before it is killed.
STOP_SECONDS = 10.0
#: How long granian lets a worker finish its requests on stop before it kills it (the default
#: waits on idle keep-alive connections, past our own STOP_SECONDS).
WORKERS_KILL_SECONDS = 3
#: How soon granian replaces a dead worker (its default is 3.5 s).
RESPAWN_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1


class Child:
    """One supervised process."""

    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._pause = FIRST_PAUSE_SECONDS / 2
        self._restart_at: float | None = None

    def start(self) -> None:
        parent = os.getpid()
        self.process = subprocess.Popen(self.argv, preexec_fn=lambda: _die_with(parent))  # noqa: S603 - our own argv
        self._started_at = time.monotonic()
        self._restart_at = None
        log.info("%s started (pid %d)", self.name, self.process.pid)

    def check(self) -> None:
        """Restarts the process if it has exited and its pause is over."""
        now = time.monotonic()
        if self.process is not None and self.process.poll() is not None and self._restart_at is None:
            lived = now - self._started_at
            self._pause = (
                FIRST_PAUSE_SECONDS if lived > HEALTHY_SECONDS else min(self._pause * 2, LONGEST_PAUSE_SECONDS)
            )
            self._restart_at = now + self._pause
            log.error("%s exited with %s after %.1f s; restarting in %.1f s", self.name, self.process.returncode,
                      lived, self._pause)  # fmt: skip
        if self._restart_at is not None and now >= self._restart_at:
            self.start()

    def stop(self) -> None:
        """Stops the process, and whatever it started that outlives it (a killed server's workers)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        started = _descendants(process.pid)
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.error("%s did not stop in %.0f s; killing it", self.name, STOP_SECONDS)
            process.kill()
            process.wait()
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def indexer_child(app_import: str) -> Child:
    """The watch process: `flask --app APP index --watch`."""
    return Child("indexer", [sys.executable, "-m", "flask", "--app", app_import, "index", "--watch"])


def commands(app_import: str, host: str, port: int, workers: int) -> list[Child]:
    """The watch process and the web server, as `make run` runs them."""
    granian = str(Path(sys.executable).parent / "granian")
    return [
        indexer_child(app_import),
        Child("server", [
            granian, "--interface", "wsgi", "--host", host, "--port", str(port), "--workers", str(workers),
            "--blocking-threads", "1", "--http", "1", "--no-ws", "--runtime-mode", "st",
            "--respawn-failed-workers", "--respawn-interval", str(RESPAWN_SECONDS),
            "--workers-kill-timeout", str(WORKERS_KILL_SECONDS), app_import + ":app",
        ]),
    ]  # fmt: skip


def serve(app_import: str, host: str, port: int, workers: int) -> int:
    """Runs the server and the watch process until SIGTERM or SIGINT; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervisor[%(process)d] %(levelname)s %(message)s")
    return supervise(commands(app_import, host, port, workers))


def supervise(children: list[Child], stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Callable[[int, FrameType | None], object] | int | None] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        for child in children:
            child.start()
        while not stop.wait(POLL_SECONDS):
            for child in children:
                child.check()
    finally:
        for child in reversed(children):
            child.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (taken while they still have their parents)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, waiting = [], [pid]
    while waiting:
        for child in children.get(waiting.pop(), []):
            found.append(child)
            waiting.append(child)
    return found


def _die_with(parent: int) -> None:
    """In the child: ask the kernel for SIGTERM when the supervisor dies, so nothing is left orphaned."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)
