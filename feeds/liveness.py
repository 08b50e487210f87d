"""Signs of life: a supervised process says now and then that it is alive and doing its work, and
its supervisor kills one that falls silent, to be started again as one that died would be.

`flask serve` (and the gunicorn master) give each child the address of a datagram socket of their
own (Linux's abstract namespace: no file, nothing to clean up): the watch process in
FEEDS_HEARTBEAT_SOCKET, and beats from its loop and while it waits on its reading workers; the web
server in FEEDS_WORKER_HEARTBEAT_SOCKET, and each of its workers beats from a thread of its own,
from its start, unless one of its requests has run for half of FEEDS_WATCHDOG_SECONDS. So a
hang (a lock never released, a wait that never returns, a stopped process) ends in a restart,
which granian alone does not do for a worker. Unsupervised, `beat` does nothing.

systemd can be the supervisor too: run as a service of `Type=notify` with `WatchdogSec=`
(deploy/systemd/feeds-export.service, for `flask export --watch`), a process is given
NOTIFY_SOCKET, and `beat` also sends systemd `WATCHDOG=1` (sd_notify(3)); `notify_systemd` sends
`READY=1` and `STOPPING=1`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

#: The variables that give a child the supervisor's address (set by the supervisor, not by
#: operators): one for a process that beats for itself (`beat`), one for web workers, whose beats a
#: thread gives (`watch_requests`). Apart, so that the watch process, which makes the app too,
#: never starts that thread.
HEARTBEAT_SOCKET = "FEEDS_HEARTBEAT_SOCKET"
WORKER_HEARTBEAT_SOCKET = "FEEDS_WORKER_HEARTBEAT_SOCKET"
#: systemd's socket for a service of Type=notify: a path, or "@name" in the abstract namespace.
SYSTEMD_SOCKET = "NOTIFY_SOCKET"
#: Beats closer together than this are sent as one.
BEAT_SECONDS = 0.5
#: One beat: the pid of the process that gives it.
_BEAT = struct.Struct("=i")


class _Heart:
    """This process's end of a socket that a supervisor (ours, or systemd) listens on, if it gave
    one: made anew after a fork, since the child is another process."""

    def __init__(self, address: str | None, message: bytes) -> None:
        self.pid = os.getpid()
        self.last = float("-inf")
        self.address = address
        #: What a beat says.
        self.message = message
        self.socket: socket.socket | None = None
        if self.address is not None:
            self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)

    def beat(self) -> None:
        now = time.monotonic()
        if now - self.last >= BEAT_SECONDS:
            self.last = now
            self.send(self.message)

    def send(self, message: bytes) -> None:
        if self.socket is None or self.address is None:
            return
        # Not heard: no supervisor listens now (systemd stopping us), or its queue is full of beats
        # and it knows already.
        with contextlib.suppress(OSError):
            self.socket.sendto(message, self.address)


def _to_supervisor(variable: str = HEARTBEAT_SOCKET) -> _Heart:
    """A heart for `flask serve`'s supervisor: its address is a name in the abstract namespace."""
    address = os.environ.get(variable)
    return _Heart("\0" + address if address else None, _BEAT.pack(os.getpid()))


def _to_systemd() -> _Heart:
    """A heart for systemd's watchdog: its address is a path, or "@name" in the abstract namespace."""
    address = os.environ.get(SYSTEMD_SOCKET, "")
    return _Heart("\0" + address[1:] if address.startswith("@") else address or None, b"WATCHDOG=1")


def _own(heart: _Heart | None, make: Callable[[], _Heart]) -> _Heart:
    """`heart` if this process made it; else one of its own (a forked child's)."""
    return heart if heart is not None and heart.pid == os.getpid() else make()


_heart: _Heart | None = None
_systemd: _Heart | None = None
#: What says this process hangs although the loop that beats still runs: (the pid that said so, the check).
_hang_checks: list[tuple[int, Callable[[], str | None]]] = []
_hanging = False


def beat() -> None:
    """Says that this process is alive and doing its work; cheap enough to call in any loop."""
    global _heart, _systemd
    if _hang_checks and _hangs():
        return
    _heart = _own(_heart, _to_supervisor)
    _heart.beat()
    _systemd = _own(_systemd, _to_systemd)
    _systemd.beat()


def withhold_beats_while(check: Callable[[], str | None]) -> None:
    """From now on no beat is given, in this process, while `check` names a reason: one whose loop
    runs on while its work hangs (a watching export's run, in a thread and processes of its own)
    is then killed and started again as a silent one is."""
    _hang_checks.append((os.getpid(), check))


def _hangs() -> bool:
    global _hanging
    pid = os.getpid()
    reason = next((found for owner, check in _hang_checks if owner == pid and (found := check())), None)
    if reason is not None and not _hanging:
        log.error("%s: this process stops saying it lives, to be restarted", reason)
    _hanging = reason is not None
    return _hanging


def notify_systemd(state: str) -> None:
    """Tells systemd this process's state ("READY=1", "STOPPING=1") if it runs it as a service of
    Type=notify; does nothing otherwise."""
    global _systemd
    _systemd = _own(_systemd, _to_systemd)
    _systemd.send(state.encode())


class Listener:
    """The supervisor's end for one child: whose beats it heard."""

    def __init__(self, name: str) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        self.address = f"feeds-{name}-{os.getpid()}-{os.urandom(6).hex()}"
        self.socket.bind("\0" + self.address)

    def heard(self) -> set[int]:
        """The pids that beat since the last call."""
        pids: set[int] = set()
        while True:
            try:
                data = self.socket.recv(_BEAT.size)
            except BlockingIOError:
                return pids
            if len(data) == _BEAT.size:
                pids.add(_BEAT.unpack(data)[0])

    def close(self) -> None:
        self.socket.close()


def watch_requests(app: WSGIApplication, limit: float) -> WSGIApplication:
    """`app` as a supervised web worker runs it (`RequestsWatched`); unchanged where no supervisor
    listens or `limit` is 0 (tests, `flask run`, gunicorn's workers), so that no request pays for it."""
    if not os.environ.get(WORKER_HEARTBEAT_SOCKET) or limit <= 0:
        return app
    return RequestsWatched(app, limit)


class RequestsWatched:
    """WSGI middleware for a supervised web worker: a thread beats for the process, from when the
    app is made, for as long as none of its requests has run for longer than `limit` seconds."""

    def __init__(self, app: WSGIApplication, limit: float) -> None:
        self.app = app
        self.limit = limit
        #: Requests under way: thread → (when it began, monotonic; its environ).
        self._running: dict[int, tuple[float, WSGIEnvironment]] = {}
        self._watching_in: int | None = None
        self._lock = threading.Lock()
        self._start_watching()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._watching_in != os.getpid():
            self._start_watching()
        thread = threading.get_ident()
        self._running[thread] = (time.monotonic(), environ)
        try:
            return self.app(environ, start_response)
        finally:
            self._running.pop(thread, None)

    def _start_watching(self) -> None:
        """In this process: at once, and again at the first request of a process forked from it
        (the server may load the app before it forks its workers, and threads do not survive a fork)."""
        with self._lock:
            if self._watching_in == os.getpid():
                return
            self._watching_in = os.getpid()
            self._running.clear()
            threading.Thread(target=self._say_alive, name="feeds-liveness", daemon=True).start()

    def _say_alive(self) -> None:
        heart = _to_supervisor(WORKER_HEARTBEAT_SOCKET)
        stuck = ""
        while True:
            now = time.monotonic()
            running = list(self._running.values())
            late = [(now - began, environ) for began, environ in running if now - began > self.limit]
            if not late:
                stuck = ""
                heart.beat()
            elif not stuck:
                seconds, environ = max(late, key=lambda found: found[0])
                stuck = f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
                log.error("%s has run for %.0f s: this worker stops saying it lives, to be replaced", stuck, seconds)
            time.sleep(BEAT_SECONDS)


#: prctl(2): the signal a process gets when the thread that started it ends.
_PR_SET_PDEATHSIG = 1


def end_with_parent(parent: int) -> None:
    """A forked worker process (reading, read-ahead, export) ends when the process that started it
    does. Otherwise one waiting for work outlives a killed indexer, and holds the index's lock (a
    forked process shares the lock's open file), so that the indexer started in its place waits
    for the lock for ever."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the line above
        os._exit(0)
