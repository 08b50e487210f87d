"""The indexer's announcer: after every change, purges the caches and tells the hubs about exactly what changed.

It runs in the watch process, beside the watch loop, on its own thread: the loop hands it each
sync's report and the bundles it was asked to read (`changed`, which only records them), and the
announcer works out which documents changed bytes (changes.py) and queues the purges and pings
(notify.py). It also looks on its own every POLL_SECONDS, for changes no report named (a rebuilt
index), and when an embargoed article becomes public.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from datetime import datetime, timedelta

from .changes import Changes, ChangeTracker
from .errors import IndexUnavailable
from .notify import Notifier
from .publisher import Publisher
from .scanner import SyncReport
from .store import ContentVersion

log = logging.getLogger(__name__)

#: How often the announcer looks at the content version without being told of a change.
POLL_SECONDS = 1.0
#: The pause after a look failed (the index being rebuilt, say).
RETRY_SECONDS = 0.5


class Announcer:
    """Owns the announcing thread and the notifier's senders; `start`, then `stop`."""

    def __init__(self, tracker: ChangeTracker, notifier: Notifier, base_url: str | None) -> None:
        self.tracker = tracker
        self.notifier = notifier
        self.base_url = base_url
        self._lock = threading.Lock()
        #: Bundles named by syncs, by the content version each left; None: anything may have changed.
        self._pending: dict[ContentVersion, frozenset[str] | None] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._seen: ContentVersion | None = None
        #: The clock's time at the last look: an embargo lifted after it is a change to look at.
        self._looked_at: datetime | None = None
        self._release_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="announcer", daemon=True)
        #: Every look that found something, newest last (for tests and the log).
        self.announced: list[Changes] = []
        #: Set once the first look is done: from then on every change is announced.
        self.ready = threading.Event()

    def start(self) -> None:
        self.notifier.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self.notifier.stop()

    def changed(self, report: SyncReport, bundles: Collection[str] | None) -> None:
        """The watch loop's hook after a successful sync: records, wakes the announcer, and returns."""
        named = None if bundles is None else frozenset(bundles)
        with self._lock:
            if report.version in self._pending:
                earlier = self._pending[report.version]
                named = None if earlier is None or named is None else earlier | named
            self._pending[report.version] = named
        self._wake.set()

    def _run(self) -> None:
        timeout = 0.0
        waiting = False
        while not self._stop.is_set():
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._look()
            except IndexUnavailable as error:
                # Said once per wait: a first build of a large newsroom takes minutes.
                log.log(logging.DEBUG if waiting else logging.INFO, "announcing waits for the index: %s", error)
                waiting, timeout = True, RETRY_SECONDS
                continue
            except Exception:
                # A fault in one look must not end announcing for the life of the process.
                log.exception("announcing failed; looking again in %.1f s", RETRY_SECONDS)
                timeout = RETRY_SECONDS
                continue
            waiting = False
            if not self.ready.is_set():
                log.info("announcing every change from version %s on", self._seen)
                self.ready.set()
            timeout = POLL_SECONDS
            if self._release_at is not None:
                timeout = min(timeout, max(self._release_at - time.time(), 0.0))

    def _look(self) -> None:
        store = self.tracker.publisher.store
        version = store.version()
        release_due = self._release_at is not None and time.time() >= self._release_at
        with self._lock:
            pending = {at: named for at, named in self._pending.items() if at <= version}
            self._pending = {at: named for at, named in self._pending.items() if at > version}
        if version == self._seen and not release_due:
            return
        started = time.monotonic()
        now = self.tracker.publisher.clock()
        bundles = self._bundles(version, pending)
        if bundles is not None and release_due and self._looked_at is not None:
            # Articles whose embargo lifted since the last look are the bundles that changed.
            released = store.between(self._looked_at, now + timedelta(seconds=1))
            bundles |= {article.path.strip("/") for article in released}
        changes = self.tracker.look(bundles)
        # What was read before the look: a sync the look saw part of is looked at again next time.
        self._seen, self._looked_at = version, now
        release = store.next_release(now)
        self._release_at = None if release is None else release.timestamp()
        self._announce(version, changes, started, "feed")
        # Then the archive months the change touched: after the subscription feeds are on their way.
        started = time.monotonic()
        self._announce(version, self.tracker.look_at_archives(), started, "archive")

    def _announce(self, version: ContentVersion, changes: Changes, started: float, kind: str) -> None:
        took = (time.monotonic() - started) * 1e3
        if not changes:
            log.debug("version %s: no %s changed bytes (%d scopes looked at)", version, kind, changes.scopes_looked_at)
            return
        log.info(
            "version %s: %d %s documents changed bytes, %d went, %d keys to purge (%d scopes looked at, "
            "%d documents rendered, in %.0f ms): %s",
            version, len(changes.documents), kind, len(changes.gone), len(changes.keys), changes.scopes_looked_at,
            changes.documents_rendered, took, " ".join(changes.documents),
        )  # fmt: skip
        self.announced.append(changes)
        del self.announced[:-100]
        urls = [] if self.base_url is None else [self.base_url + document for document in changes.documents]
        self.notifier.submit(urls, changes.keys)

    def _bundles(
        self, version: ContentVersion, pending: dict[ContentVersion, frozenset[str] | None]
    ) -> frozenset[str] | None:
        """The bundles changed since the last look, if every version since then named its own; else None."""
        seen = self._seen
        if seen is None or seen[0] != version[0]:
            return None
        named: set[str] = set()
        for number in range(seen[1] + 1, version[1] + 1):
            bundles = pending.get((version[0], number))
            if bundles is None:
                return None
            named |= bundles
        return frozenset(named)


def announcer_for(publisher: Publisher) -> Announcer | None:
    """The announcer the settings ask for, not started; None when there are no hubs and no caches to purge."""
    settings = publisher.settings
    if not (settings.websub_hubs or settings.purge_urls):
        return None
    files = publisher.store.files
    tracker = ChangeTracker(publisher, files.cache_dir / f"{files.name}.announced.json")
    notifier = Notifier(settings.websub_hubs, settings.purge_urls, publisher.metrics)
    return Announcer(tracker, notifier, settings.base_url)
