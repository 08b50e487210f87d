"""Keeps the index current in the background: one process per index watches `content/` and syncs.

Every worker process starts an Indexer; they elect one leader through a lock file next to the
database. The leader starts the indexing process (`main` below), so that the watch
and the passes over 100,000 bundles never weigh on a worker's memory, and starts it again if it
dies. That process syncs everything once, then follows file-system notifications (a closed,
moved or deleted file re-reads just its bundle) and rescans the whole tree now and then in case
a notification was lost. Followers only read the database; one takes over if the leader dies.
A file still open for writing is never read: its bundle keeps its last whole version.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from watchdog import events
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver

from .index import ContentIndex

log = logging.getLogger(__name__)

#: How long the leader waits for more notifications before syncing what it has.
DEBOUNCE_SECONDS = 0.005
#: How often a follower tries to become the leader, and the leader checks on its process.
FOLLOWER_POLL_SECONDS = 1.0
#: How long the indexing process is given to stop before it is killed.
STOP_SECONDS = 5.0

_WATCHED = [
    events.FileCreatedEvent,
    events.FileModifiedEvent,
    events.FileClosedEvent,
    events.FileDeletedEvent,
    events.FileMovedEvent,
    events.DirCreatedEvent,
    events.DirDeletedEvent,
    events.DirMovedEvent,
]


@dataclass
class _Changes:
    """What notifications said since the last sync."""

    #: Bundles ("section/slug") to read again.
    bundles: set[str] = field(default_factory=set)
    #: Whether the site's settings or a section changed, which calls for a full pass.
    everything: bool = False


class Indexer:
    """A worker's part: takes part in the election and, as leader, keeps the indexing process running.

    `start` is idempotent and fork-aware: a process forked from a started one starts its own.
    """

    def __init__(self, index: ContentIndex, rescan_seconds: float, settle_seconds: float) -> None:
        self.index = index
        self.rescan_seconds = rescan_seconds
        self.settle_seconds = settle_seconds
        self._pid = 0
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.is_leader = False

    def start(self) -> None:
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="feeds-indexer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_SECONDS + 2)

    def _run(self) -> None:
        lock_path = self.index.database.with_suffix(".lock")
        with open(lock_path, "a+") as lock:
            while not self._stop.is_set():
                if _try_lock(lock):
                    self.is_leader = True
                    try:
                        self._supervise()
                    finally:
                        self.is_leader = False
                        fcntl.flock(lock, fcntl.LOCK_UN)
                self._stop.wait(FOLLOWER_POLL_SECONDS)

    def _supervise(self) -> None:
        """Runs the indexing process until told to stop; returns early if it dies."""
        package_root = str(Path(__file__).resolve().parent.parent)
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        }
        process = subprocess.Popen(  # noqa: S603 - our own module, with our own arguments
            [
                sys.executable,
                "-c",
                "import sys, feeds.indexer; feeds.indexer.main(sys.argv[1:])",
                str(self.index.content_dir),
                str(self.index.database),
                str(self.rescan_seconds),
                str(self.settle_seconds),
                str(os.getpid()),
            ],
            env=environment,
        )
        try:
            while not self._stop.wait(FOLLOWER_POLL_SECONDS / 4):
                if process.poll() is not None:
                    log.warning("the indexing process exited with %s; starting another", process.returncode)
                    return
        finally:
            process.terminate()
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Leader:
    """The indexing process: watches the content directory and syncs the index."""

    def __init__(self, index: ContentIndex, rescan_seconds: float, settle_seconds: float, parent: int) -> None:
        self.index = index
        self.rescan_seconds = rescan_seconds
        self.settle_seconds = settle_seconds
        self.parent = parent
        self._events: queue.SimpleQueue[events.FileSystemEvent] = queue.SimpleQueue()
        #: Files written to and not yet closed, with when they were last written.
        self._writing: dict[str, float] = {}
        #: Files ("section/slug/name") closed or moved into place, with when and their modification
        #: time then: whole at that modification time, so their bundle need not wait for them.
        self._complete: dict[str, tuple[float, int]] = {}

    def stopped(self) -> bool:
        """Whether the worker that started this process is gone (or SIGTERM arrived)."""
        return _terminated.is_set() or os.getppid() != self.parent

    def run(self) -> None:
        observer = self._watch()
        try:
            deferred = self._full_pass()
            next_rescan = time.monotonic() + self.rescan_seconds
            while not self.stopped():
                wait = min(max(next_rescan - time.monotonic(), 0.0), self.settle_seconds or 1.0)
                changes = self._collect(wait)
                if changes.everything or time.monotonic() >= next_rescan:
                    deferred = self._full_pass()
                    next_rescan = time.monotonic() + self.rescan_seconds
                    continue
                # A bundle is read at once when every file changed in it lately is known whole
                # (closed, or moved into place); otherwise once its files have settled. Events can
                # lag the disk, so a fresh file with no close seen yet may still be being written.
                wanted = changes.bundles | self._abandoned() | deferred
                held = self._held()
                deferred = wanted & held
                if wanted - held:
                    report = self.index.sync_bundles(wanted - held, self.settle_seconds, self._recently_complete())
                    deferred |= set(report.deferred)
                    if report.parsed or report.removed:
                        log.info("synced %d bundles, removed %d", report.parsed, report.removed)
        finally:
            if observer is not None:
                observer.stop()
                observer.join(timeout=5)

    def _full_pass(self) -> set[str]:
        started = time.monotonic()
        report = self.index.sync(settle_seconds=self.settle_seconds, hold=self._held())
        log.info(
            "full pass: parsed %d, removed %d, deferred %d, in %.2f s",
            report.parsed,
            report.removed,
            len(report.deferred),
            time.monotonic() - started,
        )
        return set(report.deferred)

    def _watch(self) -> BaseObserver | None:
        # Full events: a bundle moved in or out of the tree arrives as created or deleted.
        observer = InotifyObserver(generate_full_events=True)
        try:
            observer.schedule(
                _Forward(self._events), str(self.index.content_dir), recursive=True, event_filter=_WATCHED
            )
            observer.start()
        except OSError as error:
            log.warning(
                "cannot watch %s (%s); rescanning every %s s instead",
                self.index.content_dir,
                error,
                self.rescan_seconds,
            )
            return None
        return observer

    def _collect(self, timeout: float) -> _Changes:
        """Waits up to `timeout` for a notification, then drains the queue after a short pause."""
        changes = _Changes()
        try:
            first = self._events.get(timeout=timeout)
        except queue.Empty:
            return changes
        time.sleep(DEBOUNCE_SECONDS)
        pending = [first]
        while True:
            try:
                pending.append(self._events.get_nowait())
            except queue.Empty:
                break
        for event in pending:
            self._note(event, changes)
        return changes

    def _note(self, event: events.FileSystemEvent, changes: _Changes) -> None:
        paths = [os.fsdecode(event.src_path)]
        if isinstance(event, events.FileSystemMovedEvent):
            paths.append(os.fsdecode(event.dest_path))
        if isinstance(event, (events.FileCreatedEvent, events.FileModifiedEvent)):
            # Not read until the writer closes it: a half-written file is never published.
            self._writing[paths[0]] = time.monotonic()
            return
        for number, path in enumerate(paths):
            self._writing.pop(path, None)
            parts = self._parts(path)
            if parts is None:
                continue
            whole = isinstance(event, events.FileClosedEvent) or (number == 1 and not event.is_directory)
            if whole and len(parts) == 3:
                try:
                    modified = os.stat(path).st_mtime_ns
                except OSError:
                    continue
                self._complete["/".join(parts)] = (time.monotonic(), modified)
            if len(parts) <= 1 or (len(parts) == 2 and parts[1] == "_index.md"):
                changes.everything = True
            else:
                changes.bundles.add(f"{parts[0]}/{parts[1]}")

    def _recently_complete(self) -> dict[str, int]:
        """Files known whole, with their modification times; those old enough to have settled are forgotten."""
        settled = time.monotonic() - self.settle_seconds - 1.0
        for path in [path for path, (at, _) in self._complete.items() if at < settled]:
            del self._complete[path]
        return {path: modified for path, (_, modified) in self._complete.items()}

    def _held(self) -> set[str]:
        """Bundles with a file still being written."""
        return self._bundles_of(self._writing)

    def _abandoned(self) -> set[str]:
        """Bundles with a file that went quiet for `settle_seconds` without a close being seen.

        That happens to a hard link, to a dead writer, and to files written into a new folder
        before its watch was set up (the kernel reports those late, as created, and never closed).
        A writer that pauses longer than that in the middle of a file is taken as done.
        """
        quiet_since = time.monotonic() - self.settle_seconds
        released = [path for path, written in self._writing.items() if written < quiet_since]
        for path in released:
            del self._writing[path]
        return self._bundles_of(released)

    def _bundles_of(self, files: Iterable[str]) -> set[str]:
        """The bundles ("section/slug") the given files belong to."""
        return {f"{parts[0]}/{parts[1]}" for path in files if (parts := self._parts(path)) and len(parts) > 2}

    def _parts(self, path: str) -> list[str] | None:
        try:
            parts = Path(path).relative_to(self.index.content_dir).parts
        except ValueError:
            return None
        if any(part.startswith(".") for part in parts):
            return None
        return list(parts)


class _Forward(events.FileSystemEventHandler):
    """Hands every notification to the leader's loop, off the observer's thread."""

    def __init__(self, sink: queue.SimpleQueue[events.FileSystemEvent]) -> None:
        self._sink = sink

    def on_any_event(self, event: events.FileSystemEvent) -> None:
        self._sink.put(event)


_terminated = threading.Event()


def main(arguments: list[str]) -> None:
    """The indexing process: CONTENT_DIR DATABASE RESCAN_SECONDS SETTLE_SECONDS PARENT_PID."""
    content_dir, database, rescan_seconds, settle_seconds, parent = arguments
    logging.basicConfig(level=logging.INFO, format="%(asctime)s indexer[%(process)d] %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: _terminated.set())
    index = ContentIndex(Path(content_dir), Path(database))
    Leader(index, float(rescan_seconds), float(settle_seconds), int(parent)).run()


def _try_lock(lock: IO[str]) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
