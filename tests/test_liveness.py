"""Signs of life: what a web worker says to its supervisor while it answers, and when it stops.

The supervisor's side, with real processes, is in tests/test_server.py (a stopped indexer, a
stopped web worker).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pytest

from feeds import liveness

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def request(app: Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]], path: str) -> bytes:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
    return b"".join(app(environ, lambda status, headers, exc_info=None: lambda data: None))


def heard_within(listener: liveness.Listener, seconds: float) -> bool:
    """Whether this process beat within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.getpid() in listener.heard():
            return True
        time.sleep(0.05)
    return False


def test_a_worker_goes_silent_while_a_request_runs_too_long_and_speaks_again_after(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    listener = liveness.Listener("test")
    monkeypatch.setenv(liveness.WORKER_HEARTBEAT_SOCKET, listener.address)
    release = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/fastur":
            release.wait(30)
        start_response("200 OK", [])
        return [b"svar"]

    watched = liveness.watch_requests(app, limit=0.5)
    try:
        assert heard_within(listener, 2), "a worker beats from its start, before any request"
        assert request(watched, "/") == b"svar"
        assert heard_within(listener, 2), "an idle worker beats"
        stuck = threading.Thread(target=request, args=(watched, "/fastur"))
        stuck.start()
        time.sleep(0.5 + 2 * liveness.BEAT_SECONDS)  # past the limit, and a beat sent before it
        listener.heard()
        assert not heard_within(listener, 1.5), "silent while a request runs past the limit"
        assert "GET /fastur has run for 1 s: this worker stops saying it lives" in caplog.text
        release.set()
        stuck.join()
        assert heard_within(listener, 2), "beats again once the request is done"
    finally:
        release.set()
        listener.close()


def test_an_unsupervised_process_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests, `flask run` and one-off commands have no supervisor: no thread, no socket."""
    monkeypatch.delenv(liveness.HEARTBEAT_SOCKET, raising=False)
    monkeypatch.delenv(liveness.WORKER_HEARTBEAT_SOCKET, raising=False)
    monkeypatch.setattr(liveness, "_heart", None)
    threads = threading.active_count()
    watched = liveness.watch_requests(lambda environ, start_response: [b"svar"], limit=0.5)
    assert request(watched, "/") == b"svar"
    liveness.beat()
    assert threading.active_count() == threads
    assert liveness._heart is not None and liveness._heart.socket is None
