"""Background senders of WebSub publish pings and cache purges: coalesced, retried, logged, never in the way.

Each destination (a hub, a cache node) has its own thread and queue, so one that is down or
slow delays nothing but itself: not the indexer, which only hands names over, and not the
other destinations. An item (a feed URL for a hub, a surrogate key for a cache) is sent at once
the first time, and a burst of changes to it within WINDOW_SECONDS becomes one more message at
the end of the window. A failure is tried again after a pause that doubles, up to MAX_ATTEMPTS.
Hubs are told after the caches are purged (or PURGE_WAIT_SECONDS at most), since a hub fetches
the feed through them.
"""

from __future__ import annotations

import functools
import http.client
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlencode, urlsplit

from .errors import NotifyError
from .metrics import Metrics, NotificationKind, NotificationResult

log = logging.getLogger(__name__)

#: Changes to one item within this long after it was sent are sent together, once, when it ends.
WINDOW_SECONDS = 0.5
#: The pause before the first retry, doubled for each failure after it, up to the longest.
FIRST_RETRY_SECONDS, LONGEST_RETRY_SECONDS = 0.5, 60.0
#: Tries of one item before it is given up (about two minutes of trying, with the pauses above).
MAX_ATTEMPTS = 8
#: How long one request may take before it counts as failed.
TIMEOUT_SECONDS = 5.0
#: How long a hub's ping waits for the caches to be purged, which it will fetch the feed through.
PURGE_WAIT_SECONDS = 2.0
#: Keys per purge request are bounded by the length of the header that carries them.
PURGE_HEADER_BYTES = 4000
#: The header the xkey vmod's purge reads (deploy/varnish/default.vcl).
PURGE_HEADER = "xkey-purge"


class Deliver(Protocol):
    """Sends names to one destination over a kept-alive connection."""

    def __call__(self, names: list[str], /) -> str:
        """Returns what the destination answered, for the log; raises NotifyError or OSError."""

    def close(self) -> None: ...


@dataclass(slots=True)
class _Item:
    name: str
    #: The newest batch that asked for it.
    batch: int
    #: When it may be sent (monotonic).
    due: float
    #: When it was first asked for, in its current run (monotonic).
    asked_at: float
    attempts: int = 0
    in_flight: bool = False
    #: Asked for again while in flight: sent once more after the window.
    again: bool = False


def _pause(attempts: int) -> float:
    """Seconds to wait after a name's `attempts`-th failed try: doubling from FIRST_RETRY_SECONDS."""
    return min(FIRST_RETRY_SECONDS * 2.0 ** (attempts - 1), LONGEST_RETRY_SECONDS)


@dataclass
class Counts:
    """What a channel did; the log says the same line by line."""

    sent: int = 0
    failed: int = 0
    given_up: int = 0
    #: Requests for an item already waiting, folded into it.
    coalesced: int = 0


#: Hears how many names a channel sent, failed to send, or gave up on (for /metrics).
Counted = Callable[[NotificationResult, int], None]


def _uncounted(result: NotificationResult, count: int) -> None:
    """What a channel nobody counts tells (tests make notifiers without metrics)."""


class Channel:
    """One destination with its own thread and queue."""

    def __init__(
        self,
        name: str,
        deliver: Deliver,
        chunk: Callable[[list[str]], int],
        after: Sequence[Channel] = (),
        counted: Counted = _uncounted,
    ) -> None:
        self.name = name
        self.counts = Counts()
        self._counted = counted
        self._deliver = deliver
        #: How many of the due names (in order) go in one request.
        self._chunk = chunk
        self._after = after
        self._items: dict[str, _Item] = {}
        self._last_sent: dict[str, float] = {}
        self._condition = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"notify {name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = TIMEOUT_SECONDS + 1) -> None:
        with self._condition:
            self._stop = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def add(self, names: Iterable[str], batch: int) -> None:
        """Queues names; returns at once."""
        now = time.monotonic()
        with self._condition:
            for name in names:
                item = self._items.get(name)
                if item is None:
                    due = max(now, self._last_sent.get(name, -WINDOW_SECONDS) + WINDOW_SECONDS)
                    self._items[name] = _Item(name, batch, due, now)
                    continue
                self.counts.coalesced += 1
                item.batch = batch
                item.again = item.again or item.in_flight
            self._condition.notify_all()

    def settled(self, batch: int) -> bool:
        """Whether everything asked for up to `batch` has been tried at least once."""
        with self._condition:
            return not any(item.batch <= batch and item.attempts == 0 for item in self._items.values())

    def idle(self) -> bool:
        """Nothing waiting, nothing in flight."""
        with self._condition:
            return not self._items

    def _run(self) -> None:
        try:
            while True:
                with self._condition:
                    if self._stop:
                        return
                    names = self._take(time.monotonic())
                    if not names:
                        continue
                self._send(names)
        finally:
            self._deliver.close()

    def _take(self, now: float) -> list[str]:
        """The names due now, marked in flight; or waits for one to be due and returns none."""
        due = sorted((item for item in self._items.values() if not item.in_flight), key=lambda item: item.due)
        ready = [item for item in due if item.due <= now]
        if self._after:
            held = [item for item in ready if not self._may_go(item, now)]
            for item in held:
                item.due = now + 0.005
            ready = [item for item in ready if item not in held]
        if not ready:
            later = [item.due for item in self._items.values() if not item.in_flight]
            self._condition.wait(None if not later else max(min(later) - now, 0.001))
            return []
        names = [item.name for item in ready]
        names = names[: max(self._chunk(names), 1)]
        for name in names:
            self._items[name].in_flight = True
        return names

    def _may_go(self, item: _Item, now: float) -> bool:
        if item.attempts or now >= item.asked_at + PURGE_WAIT_SECONDS:
            return True
        return all(channel.settled(item.batch) for channel in self._after)

    def _send(self, names: list[str]) -> None:
        started = time.monotonic()
        try:
            answer = self._deliver(names)
        except (NotifyError, OSError, http.client.HTTPException) as error:
            self._failed(names, str(error), started)
            return
        took = (time.monotonic() - started) * 1e3
        log.info("%s: sent %s: %s in %.0f ms", self.name, " ".join(names), answer, took)
        now = time.monotonic()
        self._counted("sent", len(names))
        with self._condition:
            self.counts.sent += len(names)
            for name in names:
                item = self._items[name]
                self._last_sent[name] = now
                if item.again:
                    item.again, item.in_flight, item.attempts = False, False, 0
                    item.due, item.asked_at = now + WINDOW_SECONDS, now
                else:
                    del self._items[name]
            self._forget_old_sends(now)
            self._condition.notify_all()

    def _failed(self, names: list[str], reason: str, started: float) -> None:
        now = time.monotonic()
        took = (now - started) * 1e3
        self._counted("failed", len(names))
        with self._condition:
            self.counts.failed += len(names)
            given_up: dict[str, int] = {}  # with their tries
            retried: dict[int, list[str]] = {}  # by their failed tries so far
            for name in names:
                item = self._items[name]
                item.in_flight = False
                item.attempts += 1
                if item.attempts >= MAX_ATTEMPTS and not item.again:
                    del self._items[name]
                    given_up[name] = item.attempts
                    continue
                item.again = False
                item.due = now + _pause(item.attempts)
                retried.setdefault(item.attempts, []).append(name)
            # Said before the channel can be seen idle, as a send is: whoever waits for that (a
            # test, a run that then ends) finds the reason in the log.
            if given_up:
                self.counts.given_up += len(given_up)
                self._counted("given_up", len(given_up))
                tries = max(given_up.values())
                log.error("%s: gave up on %s after %d tries: %s", self.name, " ".join(given_up), tries, reason)
            for attempts, retrying in retried.items():
                log.warning("%s: %s failed after %.0f ms (%s); try %d again in %.1f s", self.name, " ".join(retrying),
                            took, reason, attempts + 1, _pause(attempts))  # fmt: skip
            self._condition.notify_all()

    def _forget_old_sends(self, now: float) -> None:
        if len(self._last_sent) > 4 * len(self._items) + 64:
            for name in [name for name, at in self._last_sent.items() if at + WINDOW_SECONDS < now]:
                del self._last_sent[name]


@dataclass
class _Connection:
    """One kept-alive HTTP connection to a destination, made again when it breaks."""

    url: str
    connection: http.client.HTTPConnection | None = field(default=None, repr=False)

    def request(self, method: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        parts = urlsplit(self.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for reuse in (True, False):
            if self.connection is None or not reuse:
                self.close()
                factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                self.connection = factory(parts.hostname or "", parts.port, timeout=TIMEOUT_SECONDS)
                reuse = False
            try:
                self.connection.request(method, target, body=body, headers=headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the other end had closed: once more on a new one.
                self.close()
                if not reuse:
                    raise
            except BaseException:
                # Any other failure (refused, timed out) leaves http.client's connection in the
                # middle of a request, refusing every later one ("Request-sent"): the next
                # request starts on a new connection.
                self.close()
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class PublisherPing(_Connection):
    """WebSub publish, as hubs take it: a form POST of `hub.mode=publish` and the feed's URL.

    The URL goes as `hub.url` (PubSubHubbub 0.4, Google's and Superfeedr's hubs) and as `hub.topic`
    (Switchboard, flask-websub): the spec leaves publishing to each hub, and hubs ignore the other.
    """

    def __call__(self, urls: list[str], /) -> str:
        (url,) = urls
        body = urlencode({"hub.mode": "publish", "hub.url": url, "hub.topic": url}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(body))}
        status, answer = self.request("POST", body, headers)
        if not 200 <= status < 300:
            raise NotifyError(self.url, f"{status} {_text(answer)}")
        return str(status)


class CachePurge(_Connection):
    """`PURGE` with the keys in an `xkey-purge` header, as deploy/varnish/default.vcl takes it."""

    def __call__(self, keys: list[str], /) -> str:
        status, answer = self.request("PURGE", None, {PURGE_HEADER: " ".join(keys), "Content-Length": "0"})
        if not 200 <= status < 300:
            raise NotifyError(self.url, f"{status} {_text(answer)}")
        # Varnish says how many it dropped in its page's title: "Purged 3".
        said = re.search(rb"<title>([^<]{1,80})</title>", answer)
        return f"{status}{' ' + said[1].decode('utf-8', 'replace') if said else ''}"


def _text(answer: bytes) -> str:
    return answer[:200].decode("utf-8", "replace").strip()


def _keys_that_fit(keys: list[str]) -> int:
    length = 0
    for count, key in enumerate(keys):
        length += len(key) + 1
        if length > PURGE_HEADER_BYTES:
            return count
    return len(keys)


class Notifier:
    """Every destination of the settings: cache nodes to purge, then hubs to ping."""

    def __init__(self, hubs: Collection[str], purge_urls: Collection[str], metrics: Metrics | None = None) -> None:
        def counted(kind: NotificationKind, destination: str) -> Counted:
            return _uncounted if metrics is None else functools.partial(metrics.notified, kind, destination)

        self.purges = [
            Channel(f"purge {url}", CachePurge(url), _keys_that_fit, (), counted("purge", url)) for url in purge_urls
        ]
        self.hubs = [
            Channel(f"websub {hub}", PublisherPing(hub), lambda _: 1, self.purges, counted("websub", hub))
            for hub in hubs
        ]
        self._batch = 0

    @property
    def channels(self) -> list[Channel]:
        return [*self.purges, *self.hubs]

    def start(self) -> None:
        for channel in self.channels:
            channel.start()

    def stop(self) -> None:
        for channel in self.channels:
            channel.stop()

    def submit(self, feed_urls: Collection[str], keys: Collection[str]) -> None:
        """Queues one change: keys to purge at every cache node, feed URLs to announce at every hub."""
        self._batch += 1
        if keys:
            for channel in self.purges:
                channel.add(sorted(keys), self._batch)
        if feed_urls:
            for channel in self.hubs:
                channel.add(feed_urls, self._batch)

    def idle(self) -> bool:
        return all(channel.idle() for channel in self.channels)
