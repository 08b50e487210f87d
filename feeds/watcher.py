"""The watch loop: follows file notifications and keeps the index current, and whole.

`flask --app app index --watch` runs it, as its own process (`make run` starts and supervises
it beside the web server). A closed, moved or deleted file re-reads just its bundle. Lost
notifications are found two ways: the kernel's word that its queue overflowed brings a whole pass
at once, and a rolling verification looks at every bundle in turn at a fixed, small pace
(`feeds.verifier`); whole passes every `rescan_seconds` are only for when nothing can be watched.
The index file is checked every second, and a damaged, truncated or deleted one is rebuilt while
readers keep the last good one. A failure (a full or read-only disk) is retried with backoff, and
no change waiting is dropped.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

from . import liveness
from .errors import FeedsError
from .indexer import Indexer, IndexerBusy, check_thoroughly
from .inotify import Kind, Notice, Notifications
from .scanner import SyncReport, folders
from .verifier import Verifier

log = logging.getLogger(__name__)

#: How long the loop waits for more notifications before syncing what it has.
DEBOUNCE_SECONDS = 0.005
#: How often the whole index file is checked (tables against their indexes), in the background.
INTEGRITY_SECONDS = 3600.0
#: How long a sync waits for the rest of a rename when a bundle it is to read has gone.
MOVE_WAIT_SECONDS = 0.05
#: How long a closed file must go without another notification before its close vouches for it.
QUIET_SECONDS = 0.02
#: How often the index file is checked for damage.
PROBE_SECONDS = 1.0
#: How often a second indexer tries for the lock held by the first.
LOCK_POLL_SECONDS = 0.1
#: The longest pause between two tries after a failure.
MAX_BACKOFF_SECONDS = 5.0
#: How long a stored bundle the verification found without its folder waits before it is read
#: again (and so removed): a rename's notification names the new folder well before then.
ABSENT_WAIT_SECONDS = 1.0
#: A small archive is looked over in seconds (the sample's 30 bundles at 50 a second): the end of a
#: verification cycle is logged at most this often, or its log would be that line, twice a second.
CYCLE_LOG_SECONDS = 600.0
#: The kernel's limit on inotify watches per user; each watched folder takes one.
MAX_USER_WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")


@dataclass
class _Work:
    """What is waiting to be done; kept until it is done, whatever fails in between."""

    #: Bundles ("section/slug") to read again.
    bundles: set[str] = field(default_factory=set)
    #: Whether a whole pass is due: at start, after lost notifications, when a section folder
    #: came or went, when the site's time zone changed, and for rescans.
    everything: bool = True
    #: Whether the site's or a section's settings file changed: they are read alone.
    settings: bool = False
    #: Bundles that could not be read yet, with when to look again (seconds since the epoch).
    deferred: dict[str, float] = field(default_factory=dict)
    #: Bundles renamed, old name to new, until the new one is read.
    renames: dict[str, str] = field(default_factory=dict)

    def release_due(self, now: float) -> None:
        for path in [path for path, at in self.deferred.items() if at <= now]:
            del self.deferred[path]
            self.bundles.add(path)

    def done(self, report: SyncReport, whole: bool) -> None:
        if whole:
            self.everything = False
            self.deferred.clear()
        self.bundles.clear()
        self.deferred.update(report.deferred)
        for old in [old for old in self.renames if old not in self.deferred]:
            del self.renames[old]


#: Called after every successful sync with its report and the bundles it was asked to read (None
#: for a whole pass); it must return at once and never raise (the announcer's `changed`).
OnSync = Callable[[SyncReport, frozenset[str] | None], None]


class Watcher:
    """Runs until `stop` is set: the one owner of an index's freshness."""

    def __init__(
        self,
        indexer: Indexer,
        content_dir: Path,
        rescan_seconds: float,
        on_sync: OnSync | None = None,
        integrity_seconds: float = INTEGRITY_SECONDS,
        verify_per_second: float = 0.0,
    ) -> None:
        self.indexer = indexer
        self.integrity_seconds = integrity_seconds
        #: The whole-file check running beside the loop, and when the next one is due (monotonic).
        self._integrity: tuple[Path, concurrent.futures.Future[str | None]] | None = None
        self._integrity_due = time.monotonic() + integrity_seconds
        self.content_dir = content_dir
        self.rescan_seconds = rescan_seconds
        self.on_sync = on_sync
        self._notifications: Notifications | None = None
        #: The whole pass under way, a step at a time.
        self._pass: Generator[SyncReport, None, SyncReport] | None = None
        #: Files ("section/slug/name") closed or moved into place, with when that was seen (monotonic)
        #: and their modification time and size then: whole as long as both stay so.
        self._closed: dict[str, tuple[float, tuple[int, int]]] = {}
        self.verifier = Verifier(str(content_dir), verify_per_second, self._stored_in)
        #: When the end of a verification cycle was last logged (monotonic).
        self._cycle_logged_at = -CYCLE_LOG_SECONDS
        #: Whether notifications cover the bundles' own folders, not only the sections'.
        self.watching_bundles = False

    def run(self, stop: threading.Event) -> None:
        self._notifications = self._watch()
        try:
            self._loop(stop)
        finally:
            if self._notifications is not None:
                self._notifications.close()

    def _stored_in(self, section: str) -> list[str]:
        writer = self.indexer.writer
        return [] if writer is None else writer.paths_in(section)

    def _loop(self, stop: threading.Event) -> None:
        work = _Work()
        failures = 0
        corrupt = False
        attempt_at = next_probe = 0.0
        next_rescan = time.monotonic() + self.rescan_seconds
        while not stop.is_set():
            liveness.beat()
            self._collect(self._timeout(work, attempt_at, next_probe, next_rescan), work)
            now = time.monotonic()
            work.release_due(time.time())
            self._hold_until_quiet(work)
            probe = now >= next_probe
            if now >= next_rescan and self._notifications is None:
                work.everything = True
            verify = (
                now >= self.verifier.due_at()
                and not work.everything
                and self._pass is None
                and self.indexer.writer is not None
            )
            if now < attempt_at or not (
                probe or work.everything or work.settings or work.bundles or verify or self._pass
            ):
                continue
            try:
                if probe:
                    next_probe = now + PROBE_SECONDS
                    self._keep_watching(work)
                    rebuilt = self._probe(work, damaged=corrupt)
                    if rebuilt is not None:
                        self._synced(rebuilt, None)
                if work.everything and self.indexer.writer is None:
                    opened = self.indexer.open_as_it_stands()
                    if opened is not None:  # built anew: whole
                        work.done(opened, whole=True)
                        next_rescan = time.monotonic() + self.rescan_seconds
                        self._synced(opened, None)
                elif work.everything and self._pass is None:
                    # In steps, with notified bundles and settings synced between them. One asked
                    # for while a pass is under way follows it: starting over each time would let
                    # a tool that saves a settings file every few seconds hold the pass off forever.
                    self._pass = self.indexer.pass_in_steps(self._recently_closed())
                    work.everything = False
                elif work.settings:
                    work.settings = False
                    report, again = self.indexer.sync_settings()
                    work.everything = work.everything or again
                    self._synced(report, None)
                elif work.bundles:
                    gone = self._complete_moves(work)
                    asked = frozenset(work.bundles)
                    report = self.indexer.sync_bundles(asked, self._recently_closed(), work.renames, gone)
                    work.done(report, whole=False)
                    self._synced(report, asked)
                elif self._pass is not None:
                    finished = self._step(self._pass, work)
                    if finished is not None:
                        work.deferred.update(finished.deferred)
                        next_rescan = time.monotonic() + self.rescan_seconds
                        self._synced(finished, None)
                elif verify:
                    self._verify(work)
                failures, corrupt = 0, False
            except (sqlite3.Error, OSError, FeedsError) as error:
                failures += 1
                corrupt = _corrupt(error)
                pause = min(0.1 * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
                attempt_at = time.monotonic() + pause
                next_probe = 0.0
                log.error("indexing failed (%s); trying again in %.1f s", error, pause)
                self.indexer.failing(str(error))

    def _step(self, running: Generator[SyncReport, None, SyncReport], work: _Work) -> SyncReport | None:
        """Takes the next step of the whole pass under way; its report once it is done."""
        try:
            next(running)
        except StopIteration as done:
            self._pass = None
            report: SyncReport = done.value
            return report
        except BaseException:
            # A generator that raised is over: the pass is asked for again (after the loop's backoff).
            self._pass, work.everything = None, True
            raise
        return None

    def _stop_pass(self) -> None:
        if self._pass is not None:
            self._pass.close()
            self._pass = None

    def _verify(self, work: _Work) -> None:
        """Looks at the next slice of bundles; any change a notification missed is read as usual."""
        cycle_started = self.verifier.cycle_started
        found = self.verifier.next_slice()
        wall = time.time()
        for path in found.absent:
            work.deferred.setdefault(path, wall + ABSENT_WAIT_SECONDS)
        asked = frozenset(path for path in found.present if path not in work.deferred)
        if asked:
            report = self.indexer.sync_bundles(asked, self._recently_closed(), work.renames, gone=())
            work.deferred.update(report.deferred)
            if report.parsed or report.removed:
                log.warning(
                    "verification found %d changed bundles that no notification named", report.parsed + report.removed
                )
                self._synced(report, asked)
        now = time.monotonic()
        if found.cycle_done and now >= self._cycle_logged_at + CYCLE_LOG_SECONDS:
            self._cycle_logged_at = now
            log.info(
                "verification looked at every bundle (cycle %d, in %.1f s)", self.verifier.cycles, now - cycle_started
            )

    def _synced(self, report: SyncReport, asked: frozenset[str] | None) -> None:
        if self.on_sync is not None:
            self.on_sync(report, None if asked is None else asked | report.regrouped)

    def _probe(self, work: _Work, damaged: bool) -> SyncReport | None:
        """Rebuilds the index if it is damaged (its file, a reader's report, or the last error says
        so) and returns what the rebuild read; otherwise records that it is current."""
        problem = self.indexer.damage()
        if problem is None and damaged:
            problem = "writing to it failed: the database is damaged"
        if problem is None:
            problem = self._integrity_problem()
        if problem is None:
            if not (work.everything or work.settings or work.bundles or work.deferred or self._pass):
                self.indexer.confirm()
            return None
        self._stop_pass()  # a new generation is read whole
        if self.indexer.writer is None:
            # At the start: the index as it stands is served at once, and passed over in steps.
            report = self.indexer.open_as_it_stands()
            if report is None:
                work.everything = True
                return None
        else:
            report = self.indexer.rebuild(problem, self._recently_closed())
        work.done(report, whole=True)
        return report

    def _integrity_problem(self) -> str | None:
        """What the last whole-file check found, if it found anything; starts the next one when due.

        It runs in a thread of its own, on its own connection, so that the loop goes on meanwhile:
        at 100,000 articles it reads hundreds of megabytes.
        """
        running, self._integrity = self._integrity, None
        if running is not None and not running[1].done():
            self._integrity = running
            return None
        writer = self.indexer.writer
        # A check of a generation since replaced says nothing about the current one.
        found = None if running is None or writer is None or running[0] != writer.path else running[1].result()
        if writer is not None and time.monotonic() >= self._integrity_due:
            self._integrity_due = time.monotonic() + self.integrity_seconds
            self._integrity = (writer.path, _in_background(check_thoroughly, writer.path))
        return found

    def _keep_watching(self, work: _Work) -> None:
        """Watches the content folder again if it was removed or replaced; a whole pass covers the gap."""
        if self._notifications is None or not self._notifications.lost_root:
            return
        log.error("the content folder %s was removed or replaced; watching it again", self.content_dir)
        self._watch_again(work)

    def _watch_again(self, work: _Work) -> None:
        """New notifications in place of the current ones, and a whole pass for what went unheard."""
        if self._notifications is not None:
            self._notifications.close()
        self._notifications = self._watch()
        work.everything = True

    def _timeout(self, work: _Work, attempt_at: float, next_probe: float, next_rescan: float) -> float:
        """How long to wait for notifications before something else is due."""
        now = time.monotonic()
        due = [next_probe, next_rescan if self._notifications is None else self.verifier.due_at()]
        if work.deferred:
            due.append(now + min(work.deferred.values()) - time.time())
        if work.bundles or work.everything or work.settings or self._pass is not None:
            due.append(attempt_at)
        return min(max(min(due) - now, 0.0), PROBE_SECONDS)

    def _watch(self) -> Notifications | None:
        """Notifications for every folder when the kernel allows that many watches; else for the
        content folder and the sections' (new, moved and removed bundles), with the verification
        finding edits inside bundles; None if nothing can be watched."""
        sections = folders(self.content_dir) or []
        needed = 1 + len(sections) + sum(len(folders(self.content_dir / section) or ()) for section in sections)
        self.watching_bundles = _watches_allowed(needed)
        if not self.watching_bundles:
            log.warning(
                "watching every folder of %s needs %d inotify watches, more than fs.inotify.max_user_watches"
                " allows (%s); watching only the %d section folders, and edits inside bundles are found by the"
                " verification (FEEDS_VERIFY_PER_SECOND). Raise the limit (sysctl fs.inotify.max_user_watches=%d)"
                " to see every edit at once",
                self.content_dir, needed, _read_limit(), len(sections), 2 * needed,
            )  # fmt: skip
        try:
            return Notifications(str(self.content_dir), depth=2 if self.watching_bundles else 1)
        except OSError as error:
            log.warning(
                "cannot watch %s (%s); rescanning every %s s instead", self.content_dir, error, self.rescan_seconds
            )
            return None

    def _collect(self, timeout: float, work: _Work) -> None:
        """Waits up to `timeout` for a notification, then takes in every one queued after a short pause."""
        if self._notifications is None:
            time.sleep(max(timeout, 0.0))
            return
        try:
            notices = self._notifications.read(timeout)
            if not notices:
                return
            time.sleep(DEBOUNCE_SECONDS)
            notices.extend(self._notifications.read(0.0))
        except OSError as error:
            # Not expected (the descriptor is this loop's alone, and a folder that cannot be
            # watched is skipped), but a loop that cannot hear must not stop: it starts over.
            log.error("reading file notifications failed (%s); watching %s again", error, self.content_dir)
            self._watch_again(work)
            return
        for notice in notices:
            self._note(notice, work)

    def _note(self, notice: Notice, work: _Work) -> None:
        if notice.kind is Kind.LOST:
            log.warning("file notifications were lost (the kernel's queue overflowed); a whole pass follows")
            work.everything = True
            return
        moved = notice.kind is Kind.MOVED
        for path in (notice.path,) if notice.source is None else (notice.source, notice.path):
            parts = self._parts(path)
            if parts is None:
                continue
            name = "/".join(parts)
            arrived = moved and path == notice.path
            if not notice.directory and len(parts) == 3:
                if notice.kind is Kind.CLOSED or arrived:
                    self._note_whole(name, path, renamed=arrived)
                elif notice.kind is Kind.WRITTEN:
                    # Written to again: an earlier close no longer vouches for it.
                    self._closed.pop(name, None)
            elif notice.directory and arrived and len(parts) == 2:
                # A bundle renamed into place holds files already whole.
                source = None if notice.source is None else self._parts(notice.source)
                if source is not None and len(source) == 2:
                    work.renames["/".join(source)] = name
                for entry in _entries(path):
                    self._note_whole(f"{name}/{entry}", f"{path}/{entry}", renamed=True)
            if parts[-1] == "_index.md" and len(parts) <= 2 and not notice.directory:
                work.settings = True
            elif len(parts) <= 1:
                work.everything = True
            else:
                work.bundles.add(f"{parts[0]}/{parts[1]}")
                work.deferred.pop(f"{parts[0]}/{parts[1]}", None)

    def _note_whole(self, name: str, path: str, renamed: bool) -> None:
        """Records a file as whole as it is now. One renamed into place vouches for itself at once:
        a bundle moved to a new name must appear there in the same sync that removes the old one."""
        try:
            status = os.stat(path)
        except OSError:
            return
        seen_at = time.monotonic() - (QUIET_SECONDS if renamed else 0.0)
        self._closed[name] = (seen_at, (status.st_mtime_ns, status.st_size))

    def _complete_moves(self, work: _Work) -> frozenset[str]:
        """Waits up to MOVE_WAIT_SECONDS for more notifications while a bundle to read is gone, and
        returns the bundles still gone then: only those may be removed in this sync.

        It may have been renamed after the notification that named it: the rename's own
        notification, already queued by the kernel, brings its new name into the same sync, so that
        the article never drops out between the removal of one name and the reading of the other.
        """
        deadline = time.monotonic() + MOVE_WAIT_SECONDS
        while not all(os.path.lexists(self.content_dir / bundle) for bundle in work.bundles):
            waited = len(work.bundles)
            self._collect(deadline - time.monotonic(), work)
            if len(work.bundles) == waited or time.monotonic() >= deadline:
                break
        self._hold_until_quiet(work)
        return frozenset(bundle for bundle in work.bundles if not os.path.lexists(self.content_dir / bundle))

    def _hold_until_quiet(self, work: _Work) -> None:
        """Moves bundles with a file closed less than QUIET_SECONDS ago to the deferred, until then.

        A close vouches for what was written before it, and the file's state is taken when the
        close is seen; a writer may already have started again by then (an editor that saves by
        truncating), and the notification of that may still be on its way.
        """
        now, wall = time.monotonic(), time.time()
        for name, (seen_at, _) in self._closed.items():
            bundle = name.rpartition("/")[0]
            if now - seen_at < QUIET_SECONDS and bundle in work.bundles:
                work.bundles.discard(bundle)
                work.deferred[bundle] = wall + seen_at + QUIET_SECONDS - now

    def _recently_closed(self) -> dict[str, tuple[int, int]]:
        """Files known whole, and quiet since, with their modification time and size.

        Those old enough to have settled anyway are forgotten.
        """
        now = time.monotonic()
        settled = now - self.indexer.settle_seconds - 1.0
        for name in [name for name, (at, _) in self._closed.items() if at < settled]:
            del self._closed[name]
        return {name: state for name, (at, state) in self._closed.items() if now - at >= QUIET_SECONDS}

    def _parts(self, path: str) -> list[str] | None:
        try:
            parts = Path(path).relative_to(self.content_dir).parts
        except ValueError:
            return None
        if any(part.startswith(".") for part in parts):
            return None
        return list(parts)


def _read_limit() -> int | None:
    try:
        return int(MAX_USER_WATCHES.read_text())
    except (OSError, ValueError):
        return None


def _watches_allowed(needed: int) -> bool:
    """Whether `needed` watches fit under the kernel's limit, with room for other watchers (and
    growth); raises the limit where this process may (as root), and says so."""
    wanted = 2 * needed + 8192
    limit = _read_limit()
    if limit is None or limit >= wanted:
        return True
    try:
        MAX_USER_WATCHES.write_text(f"{wanted}\n")
    except OSError:
        return False
    log.warning("raised fs.inotify.max_user_watches from %d to %d, for %d folders", limit, wanted, needed)
    return True


def _in_background(check: Callable[[Path], str | None], path: Path) -> concurrent.futures.Future[str | None]:
    """Runs `check(path)` in a daemon thread (it must never hold the process open at exit)."""
    future: concurrent.futures.Future[str | None] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(check(path))
        except Exception as error:  # handed to whoever reads the result
            future.set_exception(error)

    threading.Thread(target=run, name="feeds-integrity", daemon=True).start()
    return future


def _corrupt(error: BaseException) -> bool:
    """Whether an error says the database itself is damaged, rather than the disk full or read-only."""
    if isinstance(error, sqlite3.OperationalError):
        return "no such table" in str(error)
    return isinstance(error, sqlite3.DatabaseError)


def _entries(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def watch(
    indexer: Indexer,
    content_dir: Path,
    rescan_seconds: float,
    stop: threading.Event,
    on_sync: OnSync | None = None,
    integrity_seconds: float = INTEGRITY_SECONDS,
    verify_per_second: float = 0.0,
) -> None:
    """Takes the index's lock, waiting while another indexer holds it, and keeps the index current
    until `stop` is set; `on_sync` hears of every successful sync."""
    waiting_said = False
    while not stop.is_set():
        try:
            indexer.acquire(wait=False)
            break
        except IndexerBusy:
            if not waiting_said:
                log.warning("another indexer is running for %s; waiting for it to stop", content_dir)
                waiting_said = True
            liveness.beat()  # waiting on another process's work is not hanging
            stop.wait(LOCK_POLL_SECONDS)
    else:
        return
    try:
        Watcher(indexer, content_dir, rescan_seconds, on_sync, integrity_seconds, verify_per_second).run(stop)
    finally:
        indexer.release()
