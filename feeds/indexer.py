"""The one writer of an index: holds its lock, builds generations, syncs them, and rebuilds what is damaged."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import Collection, Generator, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any

from . import renditions
from .errors import FeedsError
from .metrics import Metrics
from .scanner import Completeness, Scanner, SyncReport
from .store import MISSING, REPLACED, SCHEMA_VERSION, IndexFiles, Writer, open_reader

log = logging.getLogger(__name__)

#: How long a rebuild waits for bundles still being written before it goes live without them.
REBUILD_PATIENCE_SECONDS = 3.0
#: How often the status file is rewritten just to say that the index is still current.
STATUS_HEARTBEAT_SECONDS = 5.0


class SeedRefused(FeedsError):
    """Another node's index that cannot be started from; names the file and why."""


class IndexerBusy(FeedsError):
    """Another indexer holds this index's lock."""


@dataclass(frozen=True, slots=True)
class Status:
    """What the indexer last said about itself, kept in a small file for /healthz."""

    pid: int
    #: "starting", "building", "ok" or "failing".
    state: str
    generation: int | None
    #: Seconds since the epoch when the index was last known to match the content directory.
    confirmed_at: float | None
    error: str | None = None

    @staticmethod
    def read(files: IndexFiles) -> Status | None:
        try:
            return Status(**json.loads(files.status.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None


class Indexer:
    """Keeps one generation of the index open for writing, and replaces it when it is damaged.

    Only one Indexer per index may write: `acquire` takes the lock that says so.
    """

    def __init__(
        self,
        files: IndexFiles,
        content_dir: Path,
        settle_seconds: float,
        workers: int | None = None,
        *,
        metrics: Metrics,
        isolated: bool = False,
    ) -> None:
        self.files = files
        self.metrics = metrics
        self.scanner = Scanner(content_dir, workers, isolated)
        self.settle_seconds = settle_seconds
        self.writer: Writer | None = None
        self._lock: IO[str] | None = None
        self._status = Status(os.getpid(), "starting", None, None)

    # -- the lock ----------------------------------------------------------------

    def acquire(self, wait: bool) -> None:
        """Takes the index's lock; raises IndexerBusy if another indexer has it and `wait` is false."""
        self.files.cache_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.files.lock, "a+")  # noqa: SIM115 - held for the indexer's life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            lock.close()
            raise IndexerBusy(f"{self.files.lock}: another indexer is running") from None
        self._lock = lock

    def release(self) -> None:
        self.scanner.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- writing -----------------------------------------------------------------

    def open(self) -> SyncReport:
        """Opens the current generation and syncs it, or builds a new one if there is none fit to use."""
        built = self.open_as_it_stands()
        return self.full_pass() if built is None else built

    def open_as_it_stands(self) -> SyncReport | None:
        """Opens the current generation without syncing it (None), or builds a new one if there
        is none fit to use (what it read): a watch loop passes over an opened one in steps,
        serving notifications meanwhile."""
        generation = self.files.current()
        if generation is not None:
            try:
                writer = Writer(self.files, generation, create=False)
            except sqlite3.Error as error:
                log.warning("%s", error)
            else:
                problem = writer.damage()
                if problem is None:
                    self.writer = writer
                    return None
                writer.close()
                log.warning("%s", problem)
        return self.rebuild("there is no usable index")

    def damage(self) -> str | None:
        """Why the generation being written can no longer be trusted, if it cannot.

        Its file is looked at every time; a thorough check runs only when a reader reported damage
        that the file's header does not show (pages overwritten further in).
        """
        if self.writer is None:
            return "there is no index"
        problem = self.writer.damage()
        reported = self.files.take_damage_report()
        if problem is not None or reported is None or reported[0] != self.writer.generation:
            return problem
        problem = check_thoroughly(self.writer.path, "quick_check")
        if problem is None:
            log.info("a reader reported damage (%s), but the index passes its check", reported[1])
            return None
        return f"a reader found it damaged ({reported[1]}); {problem}"

    def pass_in_steps(
        self, closed: Mapping[str, tuple[int, int]] | None = None
    ) -> Generator[SyncReport, None, SyncReport]:
        """A whole pass in short steps (`Scanner.pass_in_steps`), for a watch loop to serve
        notifications between them; logged and counted as `full_pass` is once it is done."""
        writer = self._writer()
        started = time.monotonic()
        report = yield from self.scanner.pass_in_steps(writer, Completeness(self.settle_seconds, closed or {}))
        return self._passed(report, started, " (in steps)")

    def full_pass(self, closed: Mapping[str, tuple[int, int]] | None = None) -> SyncReport:
        writer = self._writer()
        started = time.monotonic()
        report = self.scanner.full_pass(writer, Completeness(self.settle_seconds, closed or {}))
        return self._passed(report, started)

    def _passed(self, report: SyncReport, started: float, how: str = "") -> SyncReport:
        """Counts, logs and confirms a whole pass that is done."""
        took = time.monotonic() - started
        self.metrics.index_synced("full", took)
        log.info(
            "full pass: read %d, removed %d, deferred %d, in %.2f s%s",
            report.parsed, report.removed, len(report.deferred), took, how,
        )  # fmt: skip
        self.confirm()
        return report

    def sync_settings(self) -> tuple[SyncReport, bool]:
        """Reads the changed settings files alone (`Scanner.sync_settings`); also whether a whole
        pass must follow."""
        started = time.monotonic()
        report, again = self.scanner.sync_settings(self._writer())
        self.metrics.index_synced("settings", time.monotonic() - started)
        log.info("synced the settings%s", "; every article is read again" if again else "")
        self.confirm()
        return report, again

    def sync_bundles(
        self,
        paths: Iterable[str],
        closed: Mapping[str, tuple[int, int]] | None = None,
        renames: Mapping[str, str] | None = None,
        gone: Collection[str] | None = None,
    ) -> SyncReport:
        """Reads the named bundles again (`Scanner.sync_bundles`)."""
        completeness = Completeness(self.settle_seconds, closed or {})
        started = time.monotonic()
        report = self.scanner.sync_bundles(self._writer(), paths, completeness, renames, gone)
        self.metrics.index_synced("bundles", time.monotonic() - started)
        if report.parsed or report.removed:
            log.info("synced %d bundles, removed %d", report.parsed, report.removed)
        self.confirm()
        return report

    def rebuild(self, reason: str, closed: Mapping[str, tuple[int, int]] | None = None) -> SyncReport:
        """Builds a new generation from `content/` and makes it current; readers keep the old one until then.

        An old generation that is merely deleted or replaced, still open here and sound, is copied
        first, so that articles whose files are broken right now keep their last good version.
        """
        log.warning("building a new index: %s", reason)
        self._say("building", error=reason)
        started = time.monotonic()
        generation = max([*self.files.generations(), self.files.current() or 0]) + 1
        writer = Writer(self.files, generation, create=True)
        try:
            # Only a file that is gone (deleted, or another put in its place) leaves the open one
            # whole; a file damaged in place may have spoilt pages this connection would copy.
            if self.writer is not None and self.writer.damage() in (MISSING, REPLACED):
                self._salvage(self.writer, writer)
            completeness = Completeness(self.settle_seconds, closed or {})
            with writer.unpublished():
                report = self.scanner.full_pass(writer, completeness)
                deadline = time.monotonic() + REBUILD_PATIENCE_SECONDS
                while report.deferred and time.monotonic() < deadline:
                    time.sleep(max(min(min(report.deferred.values()) - time.time(), 0.5), 0.05))
                    report = self.scanner.full_pass(writer, completeness)
        except BaseException:
            writer.close()
            self.files.remove(generation)
            raise
        self._make_current(writer)
        took = time.monotonic() - started
        self.metrics.index_synced("rebuild", took)
        log.info("index generation %d is current, built in %.1f s", generation, took)
        self.confirm()
        return report

    def seed(self, source: Path) -> SyncReport:
        """Starts this node's index from another node's (a file of theirs, or a copy of one), then
        brings it in step with this node's content: a bundle whose files have the sizes and times
        that node read is not read again. Makes it current; readers keep the old one until then.

        Raises SeedRefused naming the file and why it cannot be used (not an index of this
        schema, or damaged); nothing is changed then.
        """
        started = time.monotonic()
        generation = max([*self.files.generations(), self.files.current() or 0]) + 1
        path = self.files.database(generation)
        self.files.remove(generation)
        try:
            # SQLite's backup API: a consistent copy even while the other node writes its file.
            with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as origin:
                schema = origin.execute("PRAGMA user_version").fetchone()[0]
                if schema != SCHEMA_VERSION:
                    raise SeedRefused(f"{source}: an index of schema {schema}, not {SCHEMA_VERSION}")
                with contextlib.closing(sqlite3.connect(path)) as copy:
                    origin.backup(copy)
                    problem = check(copy)
                    if problem is not None:
                        raise SeedRefused(f"{source}: its copy fails its check: {problem}")
            writer = Writer(self.files, generation, create=False)
        except sqlite3.Error as error:
            self.files.remove(generation)
            raise SeedRefused(f"{source}: not an index that can be copied ({error})") from None
        except SeedRefused:
            self.files.remove(generation)
            raise
        try:
            report = self.scanner.full_pass(writer, Completeness(self.settle_seconds, {}), adopt=True)
            writer.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except BaseException:
            writer.close()
            self.files.remove(generation)
            raise
        self._make_current(writer)
        log.info(
            "index generation %d is current, copied from %s and brought in step in %.1f s: read %d bundles, removed %d",
            generation, source, time.monotonic() - started, report.parsed, report.removed,
        )  # fmt: skip
        self.confirm()
        return report

    def _make_current(self, writer: Writer) -> None:
        """Points readers at the writer's generation, writes through it from now on, and removes
        every other generation."""
        self.files.point_to(writer.generation)
        if self.writer is not None:
            self.writer.close()
        self.writer = writer
        for old in self.files.generations():
            if old != writer.generation:
                self.files.remove(old)
        # A new generation does not know which photos the old one had and dropped.
        renditions.discard_unused(self.files.cache_dir, writer.photo_in_use)

    def _salvage(self, old: Writer, new: Writer) -> None:
        # The open connection still reads the old file whole, even though it was deleted.
        problem = check(old.connection)
        if problem is not None:
            log.info("not copying the old index: %s", problem)
            return
        try:
            new.copy_of(old.connection)
        except sqlite3.Error as error:
            log.info("not copying the old index: %s", error)
            return
        if check(new.connection) is not None:
            log.info("the old index's copy failed its check; reading everything from content/")
            new.connection.executescript(
                "DELETE FROM bundle; DELETE FROM topic; DELETE FROM section; DELETE FROM meta;"
            )

    def _writer(self) -> Writer:
        if self.writer is None:
            raise sqlite3.DatabaseError("the index is not open")
        return self.writer

    # -- status ------------------------------------------------------------------

    def confirm(self) -> None:
        """Records that the index matches the content directory as of now."""
        generation = None if self.writer is None else self.writer.generation
        self._say("ok", generation=generation, confirmed_at=time.time(), error=None)

    def failing(self, error: str) -> None:
        """Records that a round of the watch loop failed, and why; it is tried again."""
        self.metrics.index_sync_failed()
        self._say("failing", error=error)

    def _say(self, state: str, **changes: Any) -> None:
        status = replace(self._status, state=state, **changes)
        # A newer confirmation alone is written at most every STATUS_HEARTBEAT_SECONDS.
        if replace(status, confirmed_at=self._status.confirmed_at) == self._status and (
            (status.confirmed_at or 0) - (self._status.confirmed_at or 0) < STATUS_HEARTBEAT_SECONDS
        ):
            return
        self._status = status
        temporary = self.files.status.with_suffix(f".{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps(asdict(status)), encoding="utf-8")
            os.replace(temporary, self.files.status)
        except OSError as error:
            # A full or read-only disk: the status file keeps its last word, and the log says why.
            log.warning("cannot record the indexer's status: %s", error)
            with contextlib.suppress(OSError):
                temporary.unlink()


def check_thoroughly(path: Path, pragma: str = "integrity_check") -> str | None:
    """What SQLite's own check finds wrong with a database file, or None if it is sound.

    A fresh connection, so that no page cache hides damage on disk. `integrity_check` also
    finds an index that no longer matches its table, which queries would read without an error.
    """
    try:
        fresh = open_reader(path)
    except (sqlite3.Error, FeedsError) as error:
        return f"{pragma}: {error}"
    with contextlib.closing(fresh):
        return check(fresh, pragma)


def check(connection: sqlite3.Connection, pragma: str = "quick_check") -> str | None:
    """What SQLite's check finds wrong with the database as this connection reads it, or None."""
    try:
        row = connection.execute(f"PRAGMA {pragma}(1)").fetchone()
    except sqlite3.Error as error:
        return f"{pragma}: {error}"
    return None if row is not None and row[0] == "ok" else f"{pragma}: {row[0] if row else 'no answer'}"


def indexer_alive(files: IndexFiles) -> bool:
    """Whether some process holds the index's lock, i.e. an indexer is running for it."""
    try:
        with open(files.lock, "rb") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(lock, fcntl.LOCK_UN)
            return False
    except OSError:
        return False
