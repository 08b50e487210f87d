"""WebSub on loopback: a real, third-party hub (flask-websub's) in a process of its own, and a subscriber.

`python -m bench.websub --port PORT --db FILE` serves the hub at `http://127.0.0.1:PORT/hub`
until SIGTERM. flask-websub runs every step of the hub as a Celery task (verifying a subscriber's
intent, fetching the topic, delivering it, retrying); here they run on an in-memory broker and a
thread pool in this process, so that the hub needs no broker service. Tests and `python -m
bench.lastmile` start it as a process of its own, so that it can also be killed like a real hub.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qs, urlencode, urlsplit

from celery import Celery
from flask import Flask
from flask_websub.hub import Hub, SQLite3HubStorage
from werkzeug.serving import make_server

from . import servers

HOST = "127.0.0.1"
PATH = "/hub"


def build(db: str) -> tuple[Flask, Celery]:
    celery = Celery("websub_hub", broker="memory://", backend="cache+memory://")
    # The memory broker is polled; flask-websub's tasks then run on a small thread pool.
    celery.conf.update(
        broker_transport_options={"polling_interval": 0.005},
        worker_hijack_root_logger=False,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
    )
    app = Flask("websub_hub")
    # The hub lets a publisher announce with `hub.mode=publish` (off by default in flask-websub).
    app.config.update(PUBLISH_SUPPORTED=True, REQUEST_TIMEOUT=3, BACKOFF_BASE=0.5, MAX_ATTEMPTS=5)
    hub = Hub(SQLite3HubStorage(db), celery, **app.config)
    app.register_blueprint(hub.build_blueprint(url_prefix=PATH))
    return app, celery


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.websub", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True, help="the hub's subscriptions (SQLite)")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s hub[%(process)d] %(levelname)s %(message)s")
    app, celery = build(options.db)
    worker = celery.Worker(pool="threads", concurrency=4, loglevel="WARNING", quiet=True, without_heartbeat=True,
                           without_mingle=True, without_gossip=True)  # fmt: skip
    threading.Thread(target=worker.start, name="celery", daemon=True).start()
    server = make_server(HOST, options.port, app, threaded=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    logging.info("hub at http://%s:%d%s", HOST, options.port, PATH)
    stop.wait()
    server.shutdown()
    return 0


def start_hub(work: Path, port: int | None = None) -> servers.Server:
    """The hub in a process of its own on a free loopback port; its URL is `hub_url(server)`."""
    port = port or servers.free_port()
    work.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bench.websub", "--port", str(port), "--db", str(work / "hub.sqlite3")]
    return servers.start("websub hub", port, command, dict(os.environ), work / "hub.log")


def hub_url(server: servers.Server) -> str:
    return server.url(PATH)


def wait_for_hub(server: servers.Server, timeout: float = 30) -> None:
    """Until the hub answers (a GET of its endpoint is a 405: it takes POSTs only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the hub exited:\n{server.log_tail()}")
        try:
            connection = http.client.HTTPConnection(HOST, server.port, timeout=5)
            connection.request("GET", PATH)
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the hub did not answer in {timeout:.0f} s:\n{server.log_tail()}")


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a hub sent to a callback."""

    topic: str
    #: When it arrived (time.perf_counter()).
    at: float
    headers: dict[str, str]
    body: bytes
    #: Whether X-Hub-Signature is the HMAC of the body with the subscription's secret (WebSub 7.1).
    signed: bool


class Subscriber:
    """A WebSub subscriber on loopback: subscribes through a hub, confirms only what it asked for
    (verification of intent, WebSub 5.3), and keeps every delivery."""

    def __init__(self) -> None:
        self.secret = secrets.token_hex(16)
        self.deliveries: list[Delivery] = []
        #: Topics whose subscription the hub verified with this subscriber.
        self.verified: list[str] = []
        self._wanted: dict[str, str] = {}
        self._arrived = threading.Condition()
        self._server = ThreadingHTTPServer((HOST, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="subscriber", daemon=True)

    def start(self) -> Subscriber:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def callback(self, topic: str) -> str:
        port = self._server.server_address[1]
        return f"http://{HOST}:{port}/callback/{hashlib.sha256(topic.encode()).hexdigest()[:16]}"

    def subscribe(self, hub: str, topic: str, lease_seconds: int = 3600) -> int:
        """Asks the hub; returns its status (202: it will verify with us, then deliver)."""
        callback = self.callback(topic)
        self._wanted[urlsplit(callback).path] = topic
        form = {"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": callback,
                "hub.lease_seconds": str(lease_seconds), "hub.secret": self.secret}  # fmt: skip
        body = urlencode(form).encode()
        parts = urlsplit(hub)
        connection = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=10)
        try:
            connection.request("POST", parts.path, body, {"Content-Type": "application/x-www-form-urlencoded"})
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Waits until `condition` holds (checked on every arrival); False if it never did in time."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._arrived.wait(left)
        return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the hub verifies our intent
                parts = urlsplit(self.path)
                query = {name: values[0] for name, values in parse_qs(parts.query).items()}
                topic = subscriber._wanted.get(parts.path)
                if topic is None or query.get("hub.topic") != topic or query.get("hub.mode") != "subscribe":
                    self._answer(404, b"not asked for")
                    return
                self._answer(200, query.get("hub.challenge", "").encode())
                with subscriber._arrived:
                    subscriber.verified.append(topic)
                    subscriber._arrived.notify_all()

            def do_POST(self) -> None:  # the hub delivers the new content
                at = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                topic = subscriber._wanted.get(urlsplit(self.path).path)
                if topic is None:
                    self._answer(410, b"gone")
                    return
                algorithm, _, signature = (self.headers.get("X-Hub-Signature") or "").partition("=")
                signed = algorithm in ("sha1", "sha256", "sha384", "sha512") and hmac.compare_digest(
                    hmac.new(subscriber.secret.encode(), body, algorithm).hexdigest(), signature
                )
                self._answer(200, b"")
                delivery = Delivery(topic, at, {k.lower(): v for k, v in self.headers.items()}, body, signed)
                with subscriber._arrived:
                    subscriber.deliveries.append(delivery)
                    subscriber._arrived.notify_all()

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


if __name__ == "__main__":
    raise SystemExit(main())
