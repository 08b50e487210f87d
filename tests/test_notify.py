"""The background senders and the announcer: coalesced, retried with backoff, logged, never in the way.

Hubs and cache nodes here are real HTTP servers on loopback, started by each test, that answer
as told: at once, slowly, or with failures.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from flask import Flask

from feeds import create_app, notify
from feeds.announcer import Announcer, announcer_for
from feeds.notify import Notifier
from feeds.watcher import watch

from .conftest import Clock, Newsroom, parsed


@dataclass
class Received:
    method: str
    at: float
    form: dict[str, str]
    headers: dict[str, str]


@dataclass
class Endpoint:
    """A hub or a cache node on loopback that records what it gets and answers as `answer` says."""

    answer: Callable[[int], tuple[int, float]] = lambda number: (202, 0.0)
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hub"

    def of(self, method: str) -> list[Received]:
        return [request for request in self.received if request.method == method]


@pytest.fixture
def endpoints() -> Iterator[Callable[..., Endpoint]]:
    started: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[int], tuple[int, float]] = lambda number: (202, 0.0), port: int = 0) -> Endpoint:
        endpoint = Endpoint(answer)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {name: values[0] for name, values in parse_qs(body).items()}
                number = len(endpoint.received)
                endpoint.received.append(
                    Received(self.command, time.monotonic(), form, {k.lower(): v for k, v in self.headers.items()})
                )
                status, pause = endpoint.answer(number)
                time.sleep(pause)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PURGE = _any

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        endpoint.server = server
        return endpoint

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "it never happened"
        time.sleep(0.005)


@pytest.fixture
def notifier() -> Iterator[Callable[..., Notifier]]:
    made: list[Notifier] = []

    def make(hubs: list[str], purges: list[str] = []) -> Notifier:  # noqa: B006 - never changed
        made.append(Notifier(hubs, purges))
        made[-1].start()
        return made[-1]

    yield make
    for each in made:
        each.stop()


def test_a_burst_to_one_feed_is_one_ping_then_one_more_after_the_window(
    endpoints: Callable[..., Endpoint], notifier: Callable[..., Notifier], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "feeds.notify")
    hub = endpoints()
    sender = notifier([hub.url])
    feed = "https://frettir.example.is/feeds/rss.xml"
    started = time.monotonic()
    for _ in range(20):
        sender.submit([feed], [])
        time.sleep(0.01)
    wait_until(sender.idle)
    pings = hub.of("POST")
    assert [ping.form for ping in pings] == [{"hub.mode": "publish", "hub.url": feed, "hub.topic": feed}] * 2
    assert pings[0].at - started < 0.1  # the first change goes at once
    assert pings[1].at - pings[0].at >= notify.WINDOW_SECONDS * 0.95  # the rest wait for the window's end
    assert sum("sent https://frettir.example.is/feeds/rss.xml: 202" in line for line in caplog.messages) == 2
    assert sender.hubs[0].counts.sent == 2 and sender.hubs[0].counts.coalesced >= 17


def test_failures_are_retried_with_growing_pauses_then_given_up(
    endpoints: Callable[..., Endpoint],
    notifier: Callable[..., Notifier],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(notify, "FIRST_RETRY_SECONDS", 0.05)
    monkeypatch.setattr(notify, "MAX_ATTEMPTS", 5)
    flaky = endpoints(lambda number: (503 if number < 3 else 202, 0.0))
    down = endpoints(lambda number: (500, 0.0))
    sender = notifier([flaky.url, down.url])
    sender.submit(["https://frettir.example.is/feeds/atom.xml"], [])
    wait_until(sender.idle)
    times = [ping.at for ping in flaky.received]
    assert len(times) == 4  # three failures, then taken
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095 and gaps[2] >= 0.19  # 0.05, 0.1, 0.2: doubling
    assert len(down.received) == 5  # tried MAX_ATTEMPTS times, then given up
    assert sender.hubs[1].counts.given_up == 1
    assert any("gave up on https://frettir.example.is/feeds/atom.xml after 5 tries" in line for line in caplog.messages)
    assert any("try 2 again in 0.1 s" in line for line in caplog.messages)


class _SlowHandler(logging.Handler):
    """Keeps each record only after a pause, as a log written to a slow pipe would."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        time.sleep(0.3)
        self.messages.append(record.getMessage())


def test_a_channel_is_idle_only_once_it_has_said_why_it_gave_up(
    endpoints: Callable[..., Endpoint], notifier: Callable[..., Notifier], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever waits for the senders to be idle (a run that then ends) finds every reason in the log."""
    monkeypatch.setattr(notify, "FIRST_RETRY_SECONDS", 0.01)
    monkeypatch.setattr(notify, "MAX_ATTEMPTS", 2)
    down = endpoints(lambda number: (500, 0.0))
    handler = _SlowHandler()
    logger = logging.getLogger(notify.__name__)
    logger.addHandler(handler)
    try:
        sender = notifier([down.url])
        sender.submit(["https://frettir.example.is/feeds/atom.xml"], [])
        wait_until(lambda: bool(down.received))
        wait_until(sender.idle)
        assert len(down.received) == 2 and sender.hubs[0].counts.given_up == 1
        assert any("gave up on https://frettir.example.is/feeds/atom.xml after 2 tries" in line
                   for line in handler.messages)  # fmt: skip
    finally:
        logger.removeHandler(handler)


def test_a_slow_hub_delays_nothing_but_itself(
    endpoints: Callable[..., Endpoint], notifier: Callable[..., Notifier]
) -> None:
    slow = endpoints(lambda number: (202, 3.0))
    quick = endpoints()
    cache = endpoints(lambda number: (200, 0.0))
    sender = notifier([slow.url, quick.url], [cache.url])
    started = time.monotonic()
    sender.submit(["https://frettir.example.is/feeds/rss.xml"], ["feed:/feeds/rss.xml", "article:/innlent/a/"])
    assert time.monotonic() - started < 0.05  # handing over is all submit does
    # Each hub is told from a thread of its own: the slow one gets its ping at once too (it is slow
    # to answer), but under load after the quick one has its own.
    wait_until(lambda: bool(quick.received and cache.received and slow.received), seconds=1.0)
    assert quick.received[0].at - started < 0.5
    purge = cache.of("PURGE")[0]
    assert purge.headers["xkey-purge"] == "article:/innlent/a/ feed:/feeds/rss.xml"
    # Caches are purged before any hub is told: a hub fetches the feed through them.
    assert purge.at <= quick.received[0].at and purge.at <= slow.received[0].at


def test_purges_wait_for_nothing_and_a_dead_cache_does_not_hold_hubs_long(
    endpoints: Callable[..., Endpoint], notifier: Callable[..., Notifier], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "PURGE_WAIT_SECONDS", 0.3)
    hub = endpoints()
    sender = notifier([hub.url], ["http://127.0.0.1:9/"])  # nothing listens on the discard port
    started = time.monotonic()
    sender.submit(["https://frettir.example.is/feeds/rss.xml"], ["feed:/feeds/rss.xml"])
    wait_until(lambda: bool(hub.received), seconds=2.0)
    assert hub.received[0].at - started < 0.6


def test_a_cache_that_comes_up_after_a_refused_purge_gets_the_retry(
    endpoints: Callable[..., Endpoint],
    notifier: Callable[..., Notifier],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused connection left http.client's connection mid-request, and every retry then failed
    with "Request-sent" until the indexer was restarted: a cache started after the service, or
    restarted once, was never purged again."""
    monkeypatch.setattr(notify, "FIRST_RETRY_SECONDS", 0.2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = notifier([], [f"http://127.0.0.1:{port}/"])
    sender.submit([], ["feed:/feeds/rss.xml"])
    wait_until(lambda: any("Connection refused" in line for line in caplog.messages), seconds=5.0)
    cache = endpoints(lambda number: (200, 0.0), port=port)
    wait_until(lambda: bool(cache.of("PURGE")), seconds=5.0)
    assert cache.of("PURGE")[0].headers["xkey-purge"] == "feed:/feeds/rss.xml"
    assert not any("Request-sent" in line for line in caplog.messages)


# -- the announcer beside the real watch loop ----------------------------------------------


@pytest.fixture
def room(newsroom: Newsroom) -> Newsroom:
    newsroom.article("innlent", "fyrsta", title="Fyrsta frétt", date="2026-10-01T12:00:00Z", topics=["Eldgos"])
    newsroom.article("erlent", "onnur", title="Önnur frétt", date="2026-09-01T12:00:00Z")
    return newsroom


def test_a_hub_that_hangs_never_delays_indexing(
    room: Newsroom, clock: Clock, tmp_path: Path, endpoints: Callable[..., Endpoint]
) -> None:
    hanging = endpoints(lambda number: (202, 4.0))
    cache = endpoints(lambda number: (200, 0.0))
    settings = {
        **{"CONTENT_DIR": room.root, "CACHE_DIR": tmp_path / "cache", "SETTLE_SECONDS": 0.2},
        **{"WEBSUB_HUBS": hanging.url, "PURGE_URLS": cache.url, "BASE_URL": "https://frettir.example.is"},
    }
    app = create_app(settings, clock=clock)
    announcer = announcer_for(app.extensions["feeds"])
    assert isinstance(announcer, Announcer)
    stop = threading.Event()
    publisher = app.extensions["feeds"]
    thread = threading.Thread(
        target=watch, args=(publisher.indexer(), publisher.content_dir, 60.0, stop, announcer.changed), daemon=True
    )
    announcer.start()
    thread.start()
    try:
        wait_until(lambda: app.test_client().get("/healthz").status_code == 200 and announcer.ready.is_set())
        for number in range(3):
            title = f"Breytt {number}"

            def indexed(title: str = title) -> bool:
                return titles(app) == [title, "Önnur frétt"]

            def purged(number: int = number) -> bool:
                return len(cache.of("PURGE")) > number

            room.article("innlent", "fyrsta", title=title, date="2026-10-01T12:00:00Z", topics=["Eldgos"])
            saved = time.monotonic()
            wait_until(indexed)
            assert time.monotonic() - saved < 1.0, "indexing waited for the hub"
            wait_until(purged, seconds=2.0)
        # The hub got its first pings (one at a time, each taking 4 s); the caches every purge.
        assert hanging.received and hanging.received[0].form["hub.url"].startswith("https://frettir.example.is/feeds/")
    finally:
        stop.set()
        thread.join(timeout=15)
        announcer.stop()


def titles(app: Flask) -> list[str]:
    return [entry.title for entry in parsed(app.test_client(), "/feeds/rss.xml").entries]
