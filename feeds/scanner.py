"""Reads the content directory into the store: whole passes, and single bundles as notifications ask.

One rule decides that a file is complete enough to read (`Completeness`), and a bundle read is
kept only if none of its files changed while it was being read. A file or folder that cannot be
read right now keeps what the store has: unreadable is never taken for deleted.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import hashlib
import logging
import os
import signal
import stat
import time
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from . import liveness
from .content import ARTICLE_FILE, SECTION_FILE, SITE_FILE, read_article, read_section, read_site
from .errors import ContentError, FeedsError
from .images import PHOTO_SUFFIXES
from .liveness import end_with_parent
from .model import Site
from .readahead import ReadAheadProcess
from .store import Bundle, ContentVersion, Transaction, Writer

log = logging.getLogger(__name__)

_Task = TypeVar("_Task")
_Done = TypeVar("_Done")


#: Below this many bundles to look at, worker processes cost more than they save.
PARALLEL_THRESHOLD = 2000
#: Bundles a worker process looks at in one go during a full pass.
SCAN_CHUNK = 1000
#: How soon a bundle that went while a sync began is looked at again (see `Scanner.sync_bundles`).
GONE_RECHECK_SECONDS = 0.05
#: How long a worker process may take to read one bundle: this long, and a second more for each
#: READ_BYTES_PER_SECOND of its files (a bundle of big photos on a slow disk is slow, not stuck).
#: Past it the kernel ends the process, and the bundle is left out as one whose reading ends it.
READ_SECONDS = 20.0
READ_BYTES_PER_SECOND = 10_000_000


class UnreadableContent(FeedsError):
    """The content directory itself cannot be listed; nothing is changed until it can."""


class WorkersFailing(FeedsError):
    """Worker processes end even with nothing to read: the machine's trouble (memory, process
    limits), not a file's; nothing is changed, and the pass is tried again."""


@dataclass(frozen=True, slots=True)
class Completeness:
    """The one rule for when a file may be read: its writer closed it (or renamed it into place)
    and it has not changed since, or it has not changed for `settle_seconds`.

    A writer that pauses longer than `settle_seconds` in the middle of a file, holding it open
    and unseen by notifications, is taken as done.
    """

    settle_seconds: float
    #: Files ("section/slug/name") known whole, with their modification time (ns) and size when
    #: they were. Both: a rewrite begun within the same clock tick as the close keeps the time.
    closed: Mapping[str, tuple[int, int]]

    def ready_at(self, path: str, status: os.stat_result) -> float:
        """When the file may be read, in seconds since the epoch (now or earlier if it may be read now)."""
        if self.closed.get(path) == (status.st_mtime_ns, status.st_size):
            return 0.0
        return status.st_mtime + self.settle_seconds


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one pass over the content directory changed."""

    parsed: int
    removed: int
    #: The content version after the pass.
    version: ContentVersion
    #: Bundles left as they were, because a writer may not be done with them or they cannot be read now.
    deferred: Mapping[str, float]
    #: Bundles held back or published again, because an article that shares their GUID came or
    #: went: named by a sync of named bundles (after a whole pass, every scope is looked at).
    regrouped: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Deferred:
    path: str
    #: When to look again, in seconds since the epoch.
    retry_at: float


@dataclass(frozen=True, slots=True)
class _Adopted:
    """A bundle whose files have the sizes and times another node read them at: its article is
    kept as that node stored it, under this node's signature."""

    path: str
    signature: str


@dataclass(frozen=True, slots=True)
class _Examine:
    """A slice of a pass, for one worker process: look at these bundles, read the changed ones."""

    root: str
    site: Site
    paths: list[str]
    #: What the store holds for each path ("" if nothing).
    stored: dict[str, str]
    completeness: Completeness
    #: Seconds since the epoch when the pass began.
    now: float
    #: Whether a stored signature that differs only in its files' inode numbers (an index made on
    #: another node, over a copy of the same files) is taken as this node's.
    adopt: bool = False


class Scanner:
    """Brings a generation of the index in step with the content directory."""

    def __init__(self, content_dir: Path, workers: int | None = None, isolated: bool = False) -> None:
        """With `isolated`, bundles are never read in this process, not even one edit's: a crash
        while reading one (a decoder's fault, the memory running out) must not take down a
        long-lived indexer, and bring it down again each time it starts and meets the same file.
        Big passes always read in worker processes."""
        self.content_dir = content_dir
        self.workers = workers or os.cpu_count() or 1
        self.isolated = isolated
        #: The worker process that reads small amounts of bundles, once started (`isolated`).
        self._kept: ProcessPoolExecutor | None = None

    def close(self) -> None:
        """Stops the kept worker process, if one was started."""
        if self._kept is not None:
            self._kept.shutdown(wait=True, cancel_futures=True)
            self._kept = None

    def full_pass(self, writer: Writer, completeness: Completeness, adopt: bool = False) -> SyncReport:
        """Looks at every bundle, reading only the changed ones; removes what is gone. With `adopt`,
        a bundle whose files differ from what is stored only in their inode numbers is not read again
        (an index copied from another node).

        Raises UnreadableContent, changing nothing, if the content directory cannot be listed.
        """
        sections_found = folders(self.content_dir)
        if sections_found is None:
            raise UnreadableContent(f"{self.content_dir}: cannot be listed")
        with writer.transaction() as tx:
            site, site_changed = self._sync_site(tx)
            sections, sections_changed = self._sync_sections(tx, sections_found)
            listed = {section: slugs for section in sections if (slugs := self._slugs(section)) is not None}
            removed = _outside_sections(tx, sections)
            now = time.time()

            def jobs() -> Iterator[_Examine]:
                """A section at a time, so that only its stored signatures are held (at a million
                bundles all of them at once took hundreds of megabytes)."""
                for section, slugs in listed.items():
                    stored = tx.signatures_in(section)
                    paths = [f"{section}/{slug}" for slug in slugs]
                    on_disk = set(paths)
                    removed.extend(path for path in stored if path not in on_disk)
                    yield from self._jobs(site, paths, stored, completeness, now, adopt)

            parsed, deferred = self._store_examined(tx, jobs(), sum(len(slugs) for slugs in listed.values()))
            for path in removed:
                tx.remove(path)
            version = tx.bump_version(bool(site_changed or sections_changed or parsed or removed))
        return SyncReport(parsed, len(removed), (writer.generation, version), deferred)

    def pass_in_steps(self, writer: Writer, completeness: Completeness) -> Generator[SyncReport, None, SyncReport]:
        """A whole pass as a watch loop makes it while it serves notifications: each step is a
        transaction of its own over at most SCAN_CHUNK bundles (tens of milliseconds), yielding what
        it changed; the loop syncs notified bundles between steps, so that at a million bundles an
        edit does not wait out the half-minute pass. Returns the whole pass's report.

        The same outcome as `full_pass`, except that a bundle read between two steps is its own
        sync's; a bundle that was stored when its section's turn came and is not in the folder
        then is removed only if it is still absent at the end of that section.
        """
        parsed = 0
        deferred: dict[str, float] = {}
        site, sections, settled, _ = self._settings_step(writer)
        removed, version = settled.removed, settled.version[1]
        yield settled
        for section in sections:
            slugs = self._slugs(section)
            if slugs is None:
                continue
            with writer.transaction() as tx:
                # The settings may have been synced on their own between steps (`sync_settings`).
                if section not in tx.published_sections():
                    continue
                stored = tx.signatures_in(section)
            paths = [f"{section}/{slug}" for slug in slugs]
            on_disk = set(paths)
            for start in range(0, len(paths), SCAN_CHUNK):
                with writer.transaction() as tx:
                    # Each step's slice is dated when it is looked at, and read with the site's
                    # settings as they are then, not when the pass began.
                    site = tx.site() or site
                    (job,) = self._jobs(site, paths[start : start + SCAN_CHUNK], stored, completeness, time.time())
                    step_parsed, step_deferred = self._store_examined(tx, [job], 0)
                    version = tx.bump_version(bool(step_parsed))
                parsed += step_parsed
                deferred.update(step_deferred)
                yield SyncReport(step_parsed, 0, (writer.generation, version), step_deferred)
            absent = [path for path in stored if path not in on_disk and _presence(self.content_dir / path) == "absent"]
            if absent:
                with writer.transaction() as tx:
                    for path in absent:
                        tx.remove(path)
                    version = tx.bump_version(True)
                removed += len(absent)
                yield SyncReport(0, len(absent), (writer.generation, version), {})
        return SyncReport(parsed, removed, (writer.generation, version), deferred)

    def sync_settings(self, writer: Writer) -> tuple[SyncReport, bool]:
        """Reads the site's and the sections' settings files again where they changed, as a watch
        loop does when one of them is saved, and removes the articles of a section that can no
        longer be published: no bundle is looked at.

        Returns the report, and whether a whole pass must follow: the site's time zone changed
        (every article is read again) or a section's articles may be published that were not.
        """
        _, _, report, again = self._settings_step(writer)
        return report, again

    def _settings_step(self, writer: Writer) -> tuple[Site, list[str], SyncReport, bool]:
        """`sync_settings` in one transaction, also the first step of a pass in steps: the settings
        in force, the sections whose articles may be published, the report, and whether a whole
        pass must follow."""
        sections_found = folders(self.content_dir)
        if sections_found is None:
            raise UnreadableContent(f"{self.content_dir}: cannot be listed")
        with writer.transaction() as tx:
            before, published_before = tx.site(), tx.published_sections()
            site, site_changed = self._sync_site(tx)
            sections, sections_changed = self._sync_sections(tx, sections_found)
            gone = _outside_sections(tx, sections)
            for path in gone:
                tx.remove(path)
            version = tx.bump_version(bool(site_changed or sections_changed or gone))
        again = before is None or before.timezone != site.timezone or not published_before.issuperset(sections)
        return site, sections, SyncReport(0, len(gone), (writer.generation, version), {}), again

    def _slugs(self, section: str) -> list[str] | None:
        """The bundle folders of a section; None, said in the log, if it cannot be listed now (its
        articles then stay as they were)."""
        slugs = folders(self.content_dir / section)
        if slugs is None:
            log.warning("%s: cannot be listed; its articles stay as they were", section)
        return slugs

    def _jobs(
        self,
        site: Site,
        paths: list[str],
        stored: Mapping[str, str],
        completeness: Completeness,
        now: float,
        adopt: bool = False,
    ) -> Iterator[_Examine]:
        """The bundles to look at, in slices of SCAN_CHUNK, each with what the store holds for them."""
        for start in range(0, len(paths), SCAN_CHUNK):
            chunk = paths[start : start + SCAN_CHUNK]
            known = {path: stored.get(path, "") for path in chunk}
            yield _Examine(str(self.content_dir), site, chunk, known, completeness, now, adopt)

    def sync_bundles(
        self,
        writer: Writer,
        paths: Iterable[str],
        completeness: Completeness,
        renames: Mapping[str, str] | None = None,
        gone: Collection[str] | None = None,
    ) -> SyncReport:
        """Reads again only the named bundles ("section/slug"), as a watcher does: cheap at any size.

        `renames` maps a bundle's old name to its new one: the old is removed only in the sync that
        reads the new, so that the article never drops out in between. Given `gone` (the bundles
        its caller saw absent, and waited on for a rename's notification), a stored bundle found
        absent that is not among them is deferred for GONE_RECHECK_SECONDS instead of removed: it
        went while this sync began, and the notification that may name its new folder is on its way.
        """
        asked = set(paths)
        wanted = sorted(asked)
        with writer.transaction() as tx:
            site = tx.site()
            if site is None:
                # Nothing was ever stored: only a whole pass knows the site and its sections.
                raise UnreadableContent("the index has no site yet")
            sections = tx.published_sections()
            stored = tx.signatures(wanted)
            now = time.time()
            present: list[str] = []
            removed: list[str] = []
            deferred: dict[str, float] = {}
            for path in wanted:
                section, _, slug = path.partition("/")
                presence = _presence(self.content_dir / path) if section in sections else "absent"
                if slug[:1] in ("", ".", "_"):
                    presence = "absent"
                if presence == "present":
                    present.append(path)
                elif presence == "unknown":
                    deferred[path] = now + completeness.settle_seconds
                elif path in stored and gone is not None and path not in gone:
                    deferred[path] = now + GONE_RECHECK_SECONDS
                elif path in stored:
                    removed.append(path)
            job = _Examine(
                str(self.content_dir), site, present, {p: stored.get(p, "") for p in present}, completeness, now
            )
            parsed, examined_deferred = self._store_examined(tx, [job], len(present))
            deferred.update(examined_deferred)
            renamed = renames or {}
            # The new name read: the old one goes in the same sync, asked for or not. A watcher
            # holds a bundle whose file was closed a moment ago until it is quiet, so a rename
            # followed at once by an edit in the new place brings the old name alone first.
            for source, target in renamed.items():
                if (
                    source not in asked
                    and target in present
                    and target not in deferred
                    and _presence(self.content_dir / source) == "absent"
                    and tx.signatures([source])
                ):
                    removed.append(source)
            # A renamed bundle's old name stays until its new name is read (in this sync or an
            # earlier one); if the new name went too while this sync ran (renamed again), until the
            # next sync reads where it went.
            for path in [path for path in removed if path in renamed]:
                target = renamed[path]
                if target in deferred:
                    deferred[path] = deferred[target]
                elif target not in present and gone is not None and target not in gone and not tx.signatures([target]):
                    deferred[path] = now + GONE_RECHECK_SECONDS
                else:
                    continue
                removed.remove(path)
            for path in removed:
                tx.remove(path)
            version = tx.bump_version(bool(parsed or removed))
        return SyncReport(parsed, len(removed), (writer.generation, version), deferred, frozenset(tx.regrouped))

    def _sync_site(self, tx: Transaction) -> tuple[Site, bool]:
        """The site's settings, read again if their file changed; a broken file keeps the last good ones."""
        signature = _signature_of_files(self.content_dir, (SITE_FILE,))
        stored = tx.site()
        if stored is not None and (signature is None or signature == tx.site_signature()):
            return stored, False
        site, problem = None, None
        try:
            site = read_site(self.content_dir)
        except ContentError as error:
            problem = str(error)
            log.warning("%s", error)
        in_force = tx.store_site(site, signature or "", problem)
        return in_force, in_force != stored

    def _sync_sections(self, tx: Transaction, folders: list[str]) -> tuple[list[str], bool]:
        """Slugs of the sections whose articles may be published, and whether any section changed.

        A section's settings are read again only when their file changed; a broken file keeps
        the last good settings, and a folder that cannot be read keeps what is stored.
        """
        stored = tx.sections()
        publishable: list[str] = []
        changed = False
        for slug in folders:
            signature = _signature_of_files(self.content_dir / slug, (SECTION_FILE,))
            if slug in stored and (signature is None or stored[slug][0] == signature):
                if stored[slug][1]:
                    publishable.append(slug)
                continue
            section, problem = None, None
            try:
                section = read_section(self.content_dir, slug)
            except ContentError as error:
                problem = str(error)
                log.warning("%s", problem)
            if tx.store_section(slug, signature or "", section, problem):
                publishable.append(slug)
            changed = True
        for slug in set(stored) - set(folders):
            tx.remove_section(slug)
            changed = True
        return publishable, changed

    def _store_examined(self, tx: Transaction, jobs: Iterable[_Examine], size: int) -> tuple[int, dict[str, float]]:
        """Examines the bundles and stores what was read; returns how many, and the deferred ones."""
        parsed = 0
        deferred: dict[str, float] = {}
        for result in self._examined(jobs, size):
            liveness.beat()
            for outcome in result:
                if isinstance(outcome, _Deferred):
                    deferred[outcome.path] = outcome.retry_at
                elif isinstance(outcome, _Adopted):
                    tx.adopt(outcome.path, outcome.signature)
                else:
                    tx.store(outcome)
                    parsed += 1
        return parsed, deferred

    def _examined(self, jobs: Iterable[_Examine], size: int) -> Iterator[list[_Outcome]]:
        """`_examine` of each job, in order: in worker processes on every core when there is enough
        work to pay for them, else in the kept worker (`isolated`) or here. A bundle whose reading
        ends a worker process is found and left out, named as broken content; the others are read."""
        if size >= PARALLEL_THRESHOLD and self.workers >= 2:
            yield from self._in_pool(jobs)
        elif self.isolated:
            for job in jobs:
                yield self._in_kept_worker(job)
        else:
            yield from map(_examine, jobs)

    def _in_pool(self, jobs: Iterable[_Examine]) -> Iterator[list[_Outcome]]:
        """Jobs are taken from `jobs` only as workers are ready for them (a pool's own `map` would
        make and queue every one at once). When a worker dies, every job then in the pool is lost:
        those are done again one by one (`_isolating`), then the rest in a new pool."""
        pending = iter(jobs)
        while True:
            lost: list[_Examine] = []
            with _pool(self.workers) as pool, ReadAheadProcess(bundle_file) as ahead:
                running: collections.deque[tuple[_Examine, Future[list[_Outcome]]]] = collections.deque()
                for job in pending:
                    running.append((job, pool.submit(_examine, job)))
                    # Bundles new to the index are read whole: their files are asked for before
                    # the worker gets to them. Known ones are mostly only looked at.
                    ahead.add(f"{job.root}/{path}" for path in job.paths if not job.stored[path])
                    if len(running) >= 2 * self.workers:
                        result, lost = _next_result(running)
                        if lost:
                            break
                        yield result
                while running and not lost:
                    result, lost = _next_result(running)
                    if not lost:
                        yield result
            if not lost:
                return
            for job in lost:
                yield self._isolating(job)

    def _in_kept_worker(self, job: _Examine) -> list[_Outcome]:
        if self._kept is None:
            self._kept = _pool(1)
        try:
            return _result(self._kept.submit(_examine, job))
        except BrokenProcessPool:
            self._kept = None  # a broken pool has stopped already; the next job starts another
            return self._isolating(job)

    def _isolating(self, job: _Examine) -> list[_Outcome]:
        """The job done in a process of its own; if that process dies too, each half of it, down to
        the one bundle whose reading ends it, which is left out as broken with its signature (read
        again only once its files change)."""
        outcomes, status = _alone(job)
        if outcomes is not None:
            return outcomes
        if len(job.paths) > 1:
            half = len(job.paths) // 2
            return self._isolating(_part(job, job.paths[:half])) + self._isolating(_part(job, job.paths[half:]))
        (path,) = job.paths
        if _alone(_part(job, []))[0] is None:
            # Blaming the file would leave out every article the pass meets while this lasts.
            raise WorkersFailing("worker processes end even with nothing to read")
        state = _state_of_bundle(f"{job.root}/{path}", path, job.completeness)
        if state is None:
            return [_Deferred(path, job.now + job.completeness.settle_seconds)]
        if status == -signal.SIGALRM:
            reason = f"reading it took more than the {read_seconds(state[2]):.0f} s allowed"
        else:
            reason = "reading it ended the process (a crash, or the memory ran out)"
        log.error("%s: %s; the article is left out", path, reason)
        return [_left_out(path, state[0], reason)]


_Outcome = Bundle | _Deferred | _Adopted


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, initializer=_reading_worker, initargs=(os.getpid(),))


def read_seconds(look: _Look) -> float:
    """How long reading a bundle of these files may take."""
    return READ_SECONDS + sum(size for _, size, _, _ in look) / READ_BYTES_PER_SECOND


#: Whether this process reads bundles under READ_SECONDS (a worker process; never the indexer or a
#: web process, which must not be ended by a slow read).
_time_limited = False


def _reading_worker(parent: int) -> None:
    global _time_limited
    end_with_parent(parent)
    # What the worker inherited is never garbage: collections need not look at it again.
    gc.freeze()
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    _time_limited = True


def _next_result(
    running: collections.deque[tuple[_Examine, Future[list[_Outcome]]]],
) -> tuple[list[_Outcome], list[_Examine]]:
    """The oldest job's outcomes; or, when the pool broke, nothing and every job it held."""
    job, future = running.popleft()
    try:
        return _result(future), []
    except BrokenProcessPool:
        return [], [job, *(other for other, _ in running)]


def _result(future: Future[list[_Outcome]]) -> list[_Outcome]:
    """The job's outcomes, once a worker has them. Waiting on workers, which end themselves when a
    read takes too long (READ_SECONDS), is a sign of life (`liveness`)."""
    while True:
        try:
            return future.result(timeout=liveness.BEAT_SECONDS)
        except TimeoutError:
            liveness.beat()


def _alone(job: _Examine) -> tuple[list[_Outcome] | None, int | None]:
    """The job done in a process of its own (`alone`)."""
    return alone(_pool(1), _examine, job, _result)


def alone(
    pool: ProcessPoolExecutor, function: Callable[[_Task], _Done], task: _Task, wait: Callable[[Future[_Done]], _Done]
) -> tuple[_Done | None, int | None]:
    """`function(task)` in `pool`, a new pool of one process, which is shut down after; its result
    as `wait` takes it from the future, or None and the process's exit status (negative: the
    signal that ended it) if the process ended before it was done."""
    processes = []
    try:
        with pool:
            future = pool.submit(function, task)
            processes = list(pool._processes.values())  # started by `submit`
            return wait(future), None
    except BrokenProcessPool:
        return None, processes[0].exitcode if processes else None


def _left_out(path: str, signature: str, reason: str) -> Bundle:
    """A bundle the reader itself failed on: left out and named as broken content is, until its
    files change."""
    return Bundle.broken(
        path, path.partition("/")[0], signature, f"{path}/{ARTICLE_FILE}: {reason}; please report this"
    )


def _part(job: _Examine, paths: list[str]) -> _Examine:
    return dataclasses.replace(job, paths=paths, stored={path: job.stored[path] for path in paths})


def _outside_sections(tx: Transaction, sections: Collection[str]) -> list[str]:
    """Stored bundles of a folder that is no longer a publishable section: they go."""
    return [path for old in tx.stored_sections() if old not in sections for path in tx.signatures_in(old)]


def _examine(job: _Examine) -> list[Bundle | _Deferred | _Adopted]:
    """The changed bundles of the slice, read, and those that cannot be read yet."""
    try:
        return _examine_each(job)
    finally:
        _disarm()


def _examine_each(job: _Examine) -> list[Bundle | _Deferred | _Adopted]:
    outcomes: list[Bundle | _Deferred | _Adopted] = []
    for path in job.paths:
        bundle = f"{job.root}/{path}"
        state = _state_of_bundle(bundle, path, job.completeness)
        if state is None:
            outcomes.append(_Deferred(path, job.now + job.completeness.settle_seconds))
            continue
        signature, ready_at, seen = state
        if job.stored[path] == signature:
            continue
        if job.adopt and job.stored[path].partition(".")[0] == signature.partition(".")[0]:
            outcomes.append(_Adopted(path, signature))
            continue
        if ready_at > job.now:
            outcomes.append(_Deferred(path, ready_at))
            continue
        read = _read_in_time(job, path, signature, seen)
        # A writer may have started again while the files were read (truncated, half rewritten):
        # what was read is kept only if every file is still as it was before reading.
        if _unchanged(bundle, seen):
            outcomes.append(read)
            continue
        after = _files_of_bundle(bundle)
        if after is None or _look(after) != seen:
            retry_at = (
                job.now + job.completeness.settle_seconds if after is None else _ready_at(after, path, job.completeness)
            )
            outcomes.append(_Deferred(path, max(retry_at, job.now)))
            continue
        outcomes.append(read)
    return outcomes


def _read_in_time(job: _Examine, path: str, signature: str, seen: _Look) -> Bundle:
    """`_read_bundle`; in a worker process, ended if it takes more than `read_seconds` (or, in a
    run of bundles, more than half of that: see `_alarm_for`)."""
    if _time_limited:
        _alarm_for(read_seconds(seen))
    return _read_bundle(job.root, job.site, path, signature)


#: When the armed SIGALRM goes off (time.monotonic()); 0.0 when none is armed.
_alarm_at = 0.0


def _alarm_for(seconds: float) -> None:
    """Makes sure SIGALRM goes off at most `seconds` from now and at least half of that. Reading a
    bundle takes about a millisecond: arming the timer for each (two system calls) cost more than
    any other call of a first build, so one timer covers a run of bundles. A bundle ended early by
    this, slow but fine, is read again alone (`Scanner._isolating`) with all of its time."""
    global _alarm_at
    now = time.monotonic()
    if not now + seconds / 2 <= _alarm_at <= now + seconds:
        # SIGALRM's default action ends the process, also inside a decoder's loop in C or a wait
        # that never returns; a handler in Python would run only between bytecodes.
        signal.setitimer(signal.ITIMER_REAL, seconds)
        _alarm_at = now + seconds


def _disarm() -> None:
    """No SIGALRM while a worker waits for its next job."""
    global _alarm_at
    if _alarm_at:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _alarm_at = 0.0


def _read_bundle(root: str, site: Site, path: str, signature: str) -> Bundle:
    section, _, slug = path.partition("/")
    try:
        article = read_article(Path(root), section, slug, site)
    except ContentError as error:
        return Bundle.broken(path, section, signature, str(error))
    except Exception as error:
        # A fault of the reader's own on one bundle (some input it was not ready for) leaves that
        # article out, named, as broken content is; raised, it would stop every pass at this bundle.
        log.exception("%s: reading it failed", path)
        return _left_out(path, signature, f"could not be read ({type(error).__name__}: {error})")
    return Bundle.of(path, section, signature, article)


def _presence(bundle: Path) -> str:
    """ "present" for a bundle folder, "absent" if there is none, "unknown" if it cannot be told now."""
    try:
        status = os.lstat(bundle)
    except (FileNotFoundError, NotADirectoryError):
        return "absent"
    except OSError:
        return "unknown"
    return "present" if stat.S_ISDIR(status.st_mode) else "absent"


def folders(directory: str | os.PathLike[str]) -> list[str] | None:
    """Names of the sub-folders that hold content, skipping hidden and `_` ones; None if unreadable."""
    try:
        with os.scandir(directory) as scan:
            entries = list(scan)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError:
        return None
    return sorted(entry.name for entry in entries if entry.name[0] not in "._" and entry.is_dir(follow_symlinks=False))


def _state_of_bundle(bundle: str, path: str, completeness: Completeness) -> tuple[str, float, _Look] | None:
    """A signature that changes whenever the article file or a photo is added, removed, replaced
    or rewritten, when all of them may be read (seconds since the epoch), and the look it was
    made from; None if the bundle cannot be read now.

    Other files (an editor's swap and backup files, notes) are not part of the article. This
    runs for every bundle in a full pass, so it stays on plain strings and one stat per file.
    """
    files = _files_of_bundle(bundle)
    if files is None:
        return None
    lines = sorted(_stat_line(name, status) for name, status in files)
    inodes = sorted(f"{name}:{status.st_ino}" for name, status in files)
    return _signature(lines, inodes), _ready_at(files, path, completeness), _look(files)


#: A bundle's files as one look found them: each one's name, size, modification time and inode,
#: what its signature is made of.
_Look = frozenset[tuple[str, int, int, int]]


def _files_of_bundle(bundle: str) -> list[tuple[str, os.stat_result]] | None:
    """The article file and the photos of a bundle folder, each with its status; None if the
    folder cannot be listed now, or changed while it was listed.

    A listed file that is gone by its stat was removed, or its folder renamed, meanwhile: left
    out, the look would be of a bundle that never was (an empty one, read as "file is missing",
    in place of an article that moved on to a new name), so it is looked at again later.
    """
    files: list[tuple[str, os.stat_result]] = []
    try:
        with os.scandir(bundle) as entries:
            for entry in entries:
                name = entry.name
                if not bundle_file(name):
                    continue
                try:
                    files.append((name, entry.stat()))
                except FileNotFoundError:
                    if not _dangling_link(entry):
                        return None
    except OSError:
        return None
    return files


def _dangling_link(entry: os.DirEntry[str]) -> bool:
    """Whether the entry is still there, as a symbolic link to nothing (left out of the look for good)."""
    try:
        return stat.S_ISLNK(os.lstat(entry.path).st_mode)
    except OSError:
        return False


def bundle_file(name: str) -> bool:
    """Whether a file of this name in a bundle folder is part of the article: its article file or a
    photo (an editor's swap and backup files, notes and hidden files are not)."""
    return name == ARTICLE_FILE or (name[0] != "." and "." + name.rpartition(".")[2].lower() in PHOTO_SUFFIXES)


def _look(files: list[tuple[str, os.stat_result]]) -> _Look:
    return frozenset((name, status.st_size, status.st_mtime_ns, status.st_ino) for name, status in files)


def _unchanged(bundle: str, seen: _Look) -> bool:
    """Whether each file of the look is still as it was (a stat by name, a third of the system calls
    of a new look: a file added since is not part of what was read, and the next look sees it)."""
    for name, size, mtime_ns, inode in seen:
        try:
            status = os.stat(f"{bundle}/{name}")  # as the look saw it (DirEntry.stat follows links)
        except OSError:
            return False
        if (status.st_size, status.st_mtime_ns, status.st_ino) != (size, mtime_ns, inode):
            return False
    return True


def _ready_at(files: list[tuple[str, os.stat_result]], path: str, completeness: Completeness) -> float:
    return max((completeness.ready_at(f"{path}/{name}", status) for name, status in files), default=0.0)


def _signature_of_files(directory: Path, names: Iterable[str]) -> str | None:
    """A signature of the named files, or None if one of them cannot be looked at now."""
    lines, inodes = [], []
    for name in names:
        try:
            status = os.stat(directory / name)
        except (FileNotFoundError, NotADirectoryError):
            lines.append(f"{name}:absent")
            continue
        except OSError:
            return None
        lines.append(_stat_line(name, status))
        inodes.append(f"{name}:{status.st_ino}")
    return _signature(lines, inodes)


def _stat_line(name: str, status: os.stat_result) -> str:
    return f"{name}:{status.st_size}:{status.st_mtime_ns}"


def _signature(lines: list[str], inodes: list[str]) -> str:
    """Sizes and times, then inode numbers: the first part is the same on a node with a copy of the
    files (`rsync -a`, `cp -a`), the second tells a file replaced by another of the same size
    written within the same clock tick."""
    return f"{_digest(lines)}.{_digest(inodes)}"


def _digest(lines: Iterable[str]) -> str:
    return hashlib.blake2b("\n".join(lines).encode(), digest_size=16).hexdigest()
