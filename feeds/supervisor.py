"""`flask --app app serve`: the web server and the watch process side by side, each restarted if it dies.

This process owns both: it starts them, restarts one that exits (after a pause that grows if
it keeps dying), and stops both on SIGTERM or SIGINT. They get SIGTERM if it dies itself.
granian in turn restarts a web worker that dies. SIGHUP reloads the web workers one by one,
each new one started before the old one it replaces is stopped; the watch process runs on.
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

from . import liveness, logs, metrics
from .access_log import ACCESS_LOG_FIELDS, LOG_CONFIG
from .config import load_settings

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
#: On a reload, how long each new worker is given to load the app and listen before the old one
#: it replaces is told to stop (granian's `--respawn-interval`; a dead worker is replaced at once).
RELOAD_OVERLAP_SECONDS = 3.5
_PR_SET_PDEATHSIG = 1


def default_workers() -> int:
    """One web worker per core this process may run on: a worker runs one request at a time, all
    of it Python (measured on two cores: twice as many workers answered no faster, with a p99 two
    to five times longer)."""
    return len(os.sched_getaffinity(0)) or 1


class Child:
    """One supervised process."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        reload_signal: signal.Signals | None = None,
        watchdog_seconds: float = 0.0,
        beats_itself: bool = True,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        #: What the process takes as "reload" (granian: SIGHUP); None for one that is left alone.
        self.reload_signal = reload_signal
        #: How long a process that beats (`liveness`) may be silent before it is killed; 0: not watched.
        self.watchdog_seconds = watchdog_seconds
        #: Whether the process itself beats from its start (the indexer), or only processes it
        #: starts do (granian's web workers, each watched from its first beat and replaced by granian).
        self.beats_itself = beats_itself
        self.process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._pause = FIRST_PAUSE_SECONDS / 2
        self._restart_at: float | None = None
        self._listener = liveness.Listener(name) if watchdog_seconds > 0 else None
        #: When each watched process last beat (monotonic).
        self._beat_at: dict[int, float] = {}
        #: Whether the process was killed for its silence, and is not yet seen to have exited.
        self._killed = False

    def start(self) -> None:
        parent = os.getpid()
        environment = None
        if self._listener is not None:
            self._listener.heard()  # the last process's beats
            variable = liveness.HEARTBEAT_SOCKET if self.beats_itself else liveness.WORKER_HEARTBEAT_SOCKET
            environment = {**os.environ, variable: self._listener.address}
        self.process = subprocess.Popen(  # noqa: S603 - our own argv
            self.argv, env=environment, preexec_fn=lambda: _die_with(parent)
        )
        self._started_at = time.monotonic()
        self._beat_at = {self.process.pid: self._started_at} if self.beats_itself else {}
        self._restart_at = None
        self._killed = False
        log.info("%s started (pid %d)", self.name, self.process.pid)

    def check(self, restarts: metrics.Restarts | None = None) -> None:
        """Restarts the process if it has exited and its pause is over; kills first a watched one
        that has been silent for longer than its watchdog allows. Each is counted in `restarts`."""
        now = time.monotonic()
        self._hear_beats(now, restarts)
        if self.process is not None and self.process.poll() is not None and self._restart_at is None:
            if restarts is not None and not self._killed:  # one killed for its silence was counted then
                restarts.count(self.name, "exited")
            lived = now - self._started_at
            self._pause = (
                FIRST_PAUSE_SECONDS if lived > HEALTHY_SECONDS else min(self._pause * 2, LONGEST_PAUSE_SECONDS)
            )
            self._restart_at = now + self._pause
            log.error("%s exited with %s after %.1f s; restarting in %.1f s", self.name, self.process.returncode,
                      lived, self._pause)  # fmt: skip
        if self._restart_at is not None and now >= self._restart_at:
            self.start()

    def _hear_beats(self, now: float, restarts: metrics.Restarts | None) -> None:
        if self._listener is None or self._killed or self.process is None or self.process.poll() is not None:
            return
        for pid in self._listener.heard():
            self._beat_at[pid] = now
        for pid, beat_at in list(self._beat_at.items()):
            if now - beat_at <= self.watchdog_seconds:
                continue
            del self._beat_at[pid]
            if pid == self.process.pid:
                log.error("%s (pid %d) gave no sign of life for %.0f s; killing it to start it again", self.name,
                          pid, now - beat_at)  # fmt: skip
                self._kill()
                if restarts is not None:
                    restarts.count(self.name, "silent")
                return
            if pid in _descendants(self.process.pid):
                log.error("%s: its process %d gave no sign of life for %.0f s; killing it to be replaced",
                          self.name, pid, now - beat_at)  # fmt: skip
                _kill_each([pid])
                if restarts is not None:
                    restarts.count(f"{self.name} worker", "silent")

    def _kill(self) -> None:
        """SIGKILL to the process and whatever it started (a stopped or hung process ignores SIGTERM).
        Not waited for: one stuck in the kernel (a dead network mount) ends only when its I/O does,
        and the other children must stay supervised meanwhile; `check` sees it go."""
        if self.process is None:
            return
        _kill_each([self.process.pid, *_descendants(self.process.pid)])
        self._killed = True

    def reload(self) -> None:
        """Passes a reload on to the process, if it takes one and is running."""
        if self.reload_signal is not None and self.process is not None and self.process.poll() is None:
            log.info("%s: reloading (pid %d)", self.name, self.process.pid)
            self.process.send_signal(self.reload_signal)

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
        _kill_each(started)


def indexer_child(app_import: str, watchdog_seconds: float = 0.0) -> Child:
    """The watch process: `flask --app APP index --watch`."""
    argv = [sys.executable, "-m", "flask", "--app", app_import, "index", "--watch"]
    return Child("indexer", argv, watchdog_seconds=watchdog_seconds)


def commands(
    app_import: str, host: str, port: int, workers: int, access_log: bool = True, watchdog_seconds: float = 0.0
) -> list[Child]:
    """The watch process and the web server, as `make run` runs them."""
    access = ["--access-log", "--access-log-fmt", ACCESS_LOG_FIELDS] if access_log else []
    # As `python -m`, so that the folder the app is in is on the path from the start: granian reads
    # its logging configuration, which names our access log's formatter, before it loads the app.
    return [
        indexer_child(app_import, watchdog_seconds),
        Child("server", [
            sys.executable, "-m", "granian", "--interface", "wsgi", "--host", host, "--port", str(port),
            "--workers", str(workers), "--blocking-threads", "1", "--http", "1", "--no-ws", "--runtime-mode", "st",
            "--respawn-failed-workers", "--respawn-interval", str(RELOAD_OVERLAP_SECONDS),
            "--workers-kill-timeout", str(WORKERS_KILL_SECONDS),
            *access, "--log-config", str(LOG_CONFIG), app_import + ":app",
        ], reload_signal=signal.SIGHUP, watchdog_seconds=watchdog_seconds, beats_itself=False),
    ]  # fmt: skip


def serve(app_import: str, host: str, port: int, workers: int, access_log: bool = True) -> int:
    """Runs the server and the watch process until SIGTERM or SIGINT; returns the exit status."""
    # Here, not at the top: the app's modules import this one (the `serve` command).
    from . import application

    logs.setup("supervisor")
    settings = load_settings()
    # Every process started here pools its metrics in one folder, emptied for this run; this one
    # counts there what it restarts.
    pool = application.metrics_pool(settings)
    metrics.start_pool(pool)
    restarts = metrics.Restarts(pool)
    return supervise(
        commands(app_import, host, port, workers, access_log, settings.watchdog_seconds), restarts=restarts
    )


def supervise(
    children: list[Child], stop: threading.Event | None = None, restarts: metrics.Restarts | None = None
) -> int:
    stop = stop or threading.Event()
    reload = threading.Event()
    previous: dict[signal.Signals, Callable[[int, FrameType | None], object] | int | None] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: reload.set())
        pid = os.getpid()
        log.info("supervisor pid %d: `kill -HUP %d` reloads the web workers, `kill %d` stops", pid, pid, pid)
    try:
        for child in children:
            child.start()
        while not stop.wait(POLL_SECONDS):
            if reload.is_set():
                reload.clear()
                for child in children:
                    child.reload()
            for child in children:
                child.check(restarts)
    finally:
        for child in reversed(children):
            child.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _kill_each(pids: list[int]) -> None:
    """SIGKILL to each of these processes that is still there."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


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
