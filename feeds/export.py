"""Static export: every public URL of the service written as a file, through the service's own request path.

Each feed, archive document and page is the body the app answers a GET with (its WSGI entry, the
same as a server's), so the files are byte for byte what the service sends for the same base URL.
Photos and renditions are the very files the photo views send (hard-linked where the file system
allows, else copied). A URL maps to a file: `/feeds/atom.xml` to `feeds/atom.xml`, `/innlent/` to
`innlent/index.html`; each text file gets a `.gz` beside it for `gzip_static`.

Only what changed is written. A manifest in the cache directory (feeds.manifest) keeps, for every
file, a fingerprint of what it was made from (the articles, the site and the code), the digest of
its bytes and its inode, size and modification time: a file whose inputs are unchanged, and which
is still as it was written, is neither rendered nor written; one rendered to the same bytes is kept.
A run that follows another looks only at what changed since (`Exporter.run`): the bundles the
index logged as changed, the embargoes lifted and the archive periods ended, found as the indexer
finds what to purge (changes.ChangeTracker, started from the manifest); anything else (new code,
settings, another index, a log that does not reach back) is a whole run, which looks at every
public URL and every file.
`--watch` follows the index with the indexer's own change tracking (changes.ChangeTracker, driven
by announcer.Announcer as for purges), and re-exports exactly the documents, pages and articles
that changed bytes.

Every file is written whole under a temporary name in its own folder, then renamed over the old
one, so a reader never sees part of one; once a run has written its files, the file system is
synced (one `syncfs`, not one `fsync` per file) and only then is the manifest changed, in one
transaction. A crash leaves files newer than the manifest, which the next run finds by their
inode, size and time (a whole run), or writes again (a run after changes, which looks again at
every change since the manifest's run). One export writes an OUTDIR at a time (a lock in the cache
directory); one killed while it wrote leaves temporary files, which the next removes.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import fcntl
import hashlib
import io
import logging
import multiprocessing
import os
import re
import shutil
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import click
import msgspec
from flask import Flask, current_app
from flask.cli import with_appcontext

from . import edge, liveness, watcher
from .announcer import Announcer
from .changes import ChangeTracker, Seen, fingerprint, scope_of_document
from .dates import month_of
from .description import Feed, Scope
from .errors import ConfigError, FeedsError, NotFound, Unavailable
from .formats import FORMATS
from .indexer import IndexerBusy, indexer_alive
from .liveness import end_with_parent
from .manifest import Entry, Manifest, Position, Since
from .model import Article, Section
from .notify import FIRST_RETRY_SECONDS, LONGEST_RETRY_SECONDS, Notifier
from .publisher import Publisher
from .render.kept import keep_items
from .render.opml import OPML_FILE
from .render_cache import body_digest, gzip_body
from .renditions import rendition
from .scanner import alone
from .store import Store

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger(__name__)

#: Bundles changed since the last run beyond which a whole run is made instead: it costs about as
#: much as the scopes and months that many changes touch.
CHANGES_LIMIT = 2_000
#: The Content-Type each kind of file is served with, by how its name ends: the service's, and
#: what deploy/nginx/static.conf sends for the same names. A rendered answer must agree.
CONTENT_TYPES = {
    **{format_.file_name: format_.content_type for format_ in FORMATS},
    ".html": "text/html; charset=utf-8",
    f".{OPML_FILE.rpartition('.')[2]}": "text/x-opml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".ico": "image/vnd.microsoft.icon",
}
#: Photo types by file name, as static.conf maps them; a photo whose bytes say otherwise is reported.
PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
PHOTO_TYPES[".gif"] = "image/gif"
#: Always looked at: the front page and the OPML (which list every section and topic), the icon
#: and robots.txt (a few small files).
FIXED_URLS = ("/", f"/{OPML_FILE}", "/favicon.ico", "/robots.txt")
#: Articles per task handed to a worker process.
CHUNK = 500
#: Articles whose items each process keeps written, in every format: a month of the site's,
#: reused by its sections and topics.
ARTICLES_KEPT = 20_000
#: How often a watching export saves its manifest at most (it is saved on stop too).
MANIFEST_SAVE_SECONDS = 10.0


class ExportError(FeedsError):
    """A URL the service publishes could not be exported; names the URL and the reason."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


Task = list[tuple["Unit", "Entry | None"]]
#: What became of one file: its name, its entry, and "written", "kept", or a warning about it. With
#: no entry: GONE (the service no longer answers it), or why it could not be made now.
Done = tuple[str, "Entry | None", str]
GONE = "gone"


@dataclass(frozen=True, slots=True)
class Source:
    """How a URL's body is made: rendered by the app, or a photo file (with a width for a rendition)."""

    section: str = ""
    slug: str = ""
    file: str = ""
    width: int = 0

    @property
    def rendered(self) -> bool:
        return not self.file


RENDERED = Source()


@dataclass(frozen=True, slots=True)
class Unit:
    """One URL to export: its inputs' fingerprint (None: always looked at) and where its body comes from."""

    url: str
    inputs: str | None
    source: Source = RENDERED
    #: Units of one group go to one process together: a month ("2025-06"), "current" or "articles".
    group: str = "current"


@dataclass
class Report:
    """What one run did."""

    written: int = 0
    kept: int = 0
    removed: int = 0
    #: URLs rendered or files placed (the rest were known unchanged without it).
    looked_at: int = 0
    #: Files that could not be made now (a rendition on a full disk): left as they were, each
    #: with a warning, and looked at again by the next run.
    unmade: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    #: Whether only what changed since the last run was looked at (else every URL and file).
    since_last: bool = False

    def add(self, other: Report) -> None:
        self.written += other.written
        self.kept += other.kept
        self.removed += other.removed
        self.looked_at += other.looked_at
        self.unmade += other.unmade
        self.warnings += other.warnings

    def __str__(self) -> str:
        files = self.written + self.kept
        return (
            f"{files} files: written {self.written}, kept {self.kept}, removed {self.removed}"
            f" ({self.looked_at} rendered or placed{f', {self.unmade} could not be made now' if self.unmade else ''})"
            f" in {self.seconds:.2f} s"
            f", {'what changed since the last run' if self.since_last else 'every URL'} looked at"
        )


def file_for(url: str) -> str:
    """The file that holds a URL, relative to the export folder: "/innlent/" is "innlent/index.html",
    "/innlent/gos/%C3%9Eingvellir.jpg" is "innlent/gos/Þingvellir.jpg" (a web server decodes the path)."""
    path = unquote(url.lstrip("/"))
    return f"{path}index.html" if url.endswith("/") else path


def compressible(relative: str) -> bool:
    """Whether a file gets a .gz beside it: every text document (feeds, pages, OPML, robots.txt)."""
    return _content_type(relative).endswith("charset=utf-8")


def _content_type(relative: str) -> str:
    name = relative.rpartition("/")[2]
    if name in CONTENT_TYPES:
        return CONTENT_TYPES[name]
    suffix = "." + name.rpartition(".")[2].lower()
    return CONTENT_TYPES.get(suffix) or PHOTO_TYPES.get(suffix, "application/octet-stream")


class Exporter:
    """Writes the service's public surface into `outdir` as files, keeping what did not change.

    One run at a time (a lock): a watching export's changes wait for a run in progress.
    """

    def __init__(self, app: Flask, outdir: Path, base_url: str, workers: int = 1) -> None:
        self.app = app
        self.publisher: Publisher = app.extensions["feeds"]
        self.outdir = outdir.resolve()
        self.base_url = base_url.rstrip("/")
        self.workers = max(1, workers)
        configured = self.publisher.settings.base_url
        if configured and configured != self.base_url:
            # The service writes its configured address into every URL, whatever the request says.
            raise ConfigError("base_url", f"FEEDS_BASE_URL is {configured}: export with that base URL, or unset it")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("base_url", f"{base_url!r} is not an absolute http(s) URL")
        self._environ: dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": parts.path,
            "QUERY_STRING": "",
            "SERVER_NAME": parts.hostname,
            "SERVER_PORT": str(parts.port or (443 if parts.scheme == "https" else 80)),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": parts.netloc,
            "wsgi.url_scheme": parts.scheme,
            "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        files = self.publisher.store.files
        name = hashlib.blake2b(os.fsencode(self.outdir), digest_size=8).hexdigest()
        self.manifest_file = files.cache_dir / f"export-{name}.sqlite3"
        with contextlib.suppress(FileNotFoundError):  # the manifest of one piece, before 3
            (files.cache_dir / f"export-{name}.manifest").unlink()
        self._claim = _claim(files.cache_dir / f"export-{name}.lock", self.outdir)
        self._manifest = Manifest(self.manifest_file, self.base_url)
        self._lock = threading.Lock()
        #: Files made (written, kept or left out) by this exporter and its worker processes: in
        #: shared memory, which the processes forked for a run inherit (`stalled`).
        self._made = multiprocessing.get_context("fork").RawValue("Q", 0)
        #: Since when files are being made (monotonic), and the count last seen then; None: not now.
        self._making_since: float | None = None
        self._seen_made = (0, 0.0)
        self._saved_at = time.monotonic()
        self._folders: set[str] = set()

    # -- whole runs ------------------------------------------------------------------------

    def run(self, whole: bool = False) -> Report:
        """Exports everything the service publishes now; removes files of what it no longer does.

        After another run, looks only at what changed since, unless `whole`: then, and whenever
        the changes cannot be known, every public URL and every file in OUTDIR is looked at (a file
        changed or removed there by someone else is written again).
        """
        with self._lock:
            started = time.perf_counter()
            report = None if whole else self._since_last()
            if report is None:
                report = self._whole()
            self._save()
            report.seconds = time.perf_counter() - started
            return report

    def _whole(self) -> Report:
        self._folders.clear()
        mark = self._mark()
        self._manifest.everything()  # each URL's entry is looked at: read them all at once
        articles: dict[str, Position] = {}
        units = list(self.plan(articles))
        self._manifest.place(articles, every=True)
        report = self._export(units)
        wanted = {file_for(unit.url) for unit in units}
        report.removed += self._remove([name for name in self._manifest.everything() if name not in wanted])
        self._manifest.since = mark
        return report

    def _mark(self) -> Since:
        """The index's version, the clock, the settings and OUTDIR, read before anything is
        exported: what changes meanwhile is looked at again next time."""
        store = self.publisher.store
        generation, version = store.version()
        now = self.publisher.clock().timestamp()
        return Since(generation, version, now, self._common(store.sections()), self._outdir_identity())

    def _outdir_identity(self) -> str:
        """OUTDIR's device and inode, made first if there is none yet."""
        self.outdir.mkdir(parents=True, exist_ok=True)
        status = os.stat(self.outdir)
        return f"{status.st_dev}:{status.st_ino}"

    def _common(self, sections: Iterable[Section]) -> str:
        """A fingerprint of what every file is also made from: the code, the base URL, the site's
        and the sections' settings (every page shows them)."""
        return fingerprint((_code_version(), self.base_url, self.publisher.store.site(), sections))

    def _since_last(self) -> Report | None:
        """Exports what changed since the last run; None if that cannot be known."""
        since = self._manifest.since
        if since is None:
            return None
        mark = self._mark()
        if (mark.generation, mark.common) != (since.generation, since.common) or mark.now < since.now:
            return None
        if not self._outdir_as_left(since, mark.outdir):
            return None
        store = self.publisher.store
        changed = store.changes_since((since.generation, since.version))
        if changed is None:
            return None
        then, now = datetime.fromtimestamp(since.now, UTC), datetime.fromtimestamp(mark.now, UTC)
        bundles = set(changed) | set(store.published_between(then, now))
        if len(bundles) > CHANGES_LIMIT:
            return None
        keys = self._periods_ended(then, now)
        if bundles:
            keys |= self._touched(bundles, now)
        report = self._changed(keys)
        self._manifest.since = mark
        report.kept = self._manifest.count - report.written
        report.since_last = True
        return report

    def _outdir_as_left(self, since: Since | None, outdir: str) -> bool:
        """Whether OUTDIR (`outdir`: its `_outdir_identity` now) is the one the last run wrote to,
        and still holds its front page and site feed. The manifest is kept in the cache directory:
        an OUTDIR removed (`rm -rf public`) or emptied since would otherwise get only the files that
        changed. (They may be newer than the manifest says: a run that died before saving it wrote
        them, and the changes it exported are looked at again.)"""
        return (
            since is not None
            and since.outdir == outdir
            and all(
                self._manifest.get(name) is not None and os.path.exists(self.outdir / name)
                for name in (file_for("/"), file_for(Scope().document_path(FORMATS[0].file_name)))
            )
        )

    def _touched(self, bundles: Collection[str], now: datetime) -> set[str]:
        """Keys of what changed bundles touched, found as the indexer finds what to purge: the
        tracker starts from what the manifest says of the scopes and months they were or are in."""
        store = self.publisher.store
        zone = ZoneInfo(store.site().timezone)
        paths = [f"/{bundle}/" for bundle in bundles]
        before = {path: Seen("", *where) for path, where in self._manifest.positions(paths).items()}
        after: list[Seen] = []
        for bundle in bundles:
            section, _, slug = bundle.partition("/")
            with contextlib.suppress(NotFound):
                after.append(Seen.of(store.article(section, slug, now), zone))
        seen = [*before.values(), *after]
        scopes = {Scope(), *(scope for one in seen for scope in one.scopes)}
        months = {archive for one in seen for archive in one.archives()}
        names = [file_for(scope.document_path(format_.file_name)) for scope in scopes for format_ in FORMATS]
        names += self._manifest.under([file_for(archive.feed_path) for archive in months])
        documents = {f"/{name}": entry.digest for name in names if (entry := self._manifest.get(name)) is not None}
        tracker = ChangeTracker(self.publisher, base_url=self.base_url, cached=True)
        tracker.resume(documents, before)
        keys = set(tracker.look(sorted(bundles)).keys) | tracker.look_at_archives().keys
        known = tracker.known or {}
        self._manifest.place({path: _position(known.get(path)) for path in paths})
        return keys

    def _periods_ended(self, then: datetime, now: datetime) -> set[str]:
        """Keys of the archive documents whose period ended between two runs: each says it is
        complete now. Only the period a scope's newest articles were filed in can have, and its end
        is an hour's, at the finest."""
        site = self.publisher.store.site()
        zone = ZoneInfo(site.timezone)
        if _hour(then, zone) == _hour(now, zone):
            return set()
        scopes = {found[0] for name in self._manifest.under(["feeds/"]) if (found := scope_of_document(f"/{name}"))}
        keys: set[str] = set()
        for scope in scopes:
            period = self.publisher.archive_plan(scope, site, now).period_of(then)
            if then < period.span(zone)[1] <= now:
                archive = scope.archive(period.name)
                keys.update(f"feed:{archive.document_path(format_.file_name)}" for format_ in FORMATS)
                keys.add(edge.page_key(archive.page_path))
        return keys

    def plan(self, articles: dict[str, Position] | None = None) -> Iterator[Unit]:
        """Every public URL, with a fingerprint of what its body is made from; each public article's
        month, section and topics go into `articles`, by path.

        Found as a reader finds them: each scope's subscription feed (the site, every section, every
        topic), then its archive month by month through `prev-archive`; the site's feed and archive
        name every public article once, and each article its photos. A feed document and the page
        of the same articles are made from the same description, so its fingerprint stands for all
        four; to it, and to each article's, are added the site, the sections, the base URL and the
        code, which every page shows or is written by.
        """
        publisher, store = self.publisher, self.publisher.store
        now = publisher.clock()
        sections = store.sections()
        common = self._common(sections)
        for url in FIXED_URLS:
            yield Unit(url, None)
        scopes = [Scope(), *(Scope(section=s.slug) for s in sections)]
        scopes += [Scope(topic=count.topic.slug) for count in store.topics(now)]
        zone = ZoneInfo(store.site().timezone)
        found_articles: dict[str, Position] = {} if articles is None else articles
        for scope in scopes:
            try:
                feed = publisher.feed(scope, self.base_url)
            except NotFound:  # gone since it was listed
                continue
            yield from _scope_units(scope, fingerprint((common, feed)))
            # The months the subscription feed holds have archive documents too, linked from their
            # neighbours' `next-archive`; the others are found through `prev-archive`.
            found = {feed.archive.previous, *(month_of(article.published, zone) for article in feed.articles)}
            months = sorted(month for month in found if month is not None)
            seen = set(months)
            documents: Iterator[Feed] = iter([feed])
            while (document := next(documents, None)) is not None or months:
                if document is None:
                    try:
                        document = publisher.feed(scope.archive(months.pop()), self.base_url)
                    except NotFound:
                        continue
                    month = document.scope.month or ""
                    yield from _scope_units(document.scope, fingerprint((common, document)), group=month)
                    for neighbour in (document.archive.previous, document.archive.following):
                        if neighbour is not None and neighbour not in seen:
                            seen.add(neighbour)
                            months.append(neighbour)
                if scope == Scope():
                    for article in document.articles:
                        if article.path not in found_articles:
                            topics = tuple(topic.slug for topic in article.topics)
                            found_articles[article.path] = (month_of(article.published, zone), article.section, topics)
                            yield Unit(article.path, fingerprint((common, article)), group="articles")
                            yield from _photos(article)

    # -- what changed, from the indexer's change tracking ----------------------------------

    def changed(self, keys: Collection[str]) -> Report:
        """Re-exports what the surrogate keys of one change name (changes.Changes.keys): `feed:` and
        `page:` documents, and each `article:` with its photos; and the front page and the OPML."""
        with self._lock:
            started = time.perf_counter()
            # Folders made before may have been removed since (the memo spares a whole run's mkdirs).
            self._folders.clear()
            if not self._outdir_as_left(self._manifest.since, self._outdir_identity()):
                # OUTDIR removed or emptied while watching: the files of this change alone would
                # leave the rest missing until the next whole run.
                report = self._whole()
                self._save()
            else:
                report = self._changed(keys)
            if time.monotonic() - self._saved_at >= MANIFEST_SAVE_SECONDS:
                self._save()
            report.seconds = time.perf_counter() - started
            return report

    def _changed(self, keys: Collection[str]) -> Report:
        urls: dict[str, None] = dict.fromkeys(FIXED_URLS[:2])
        articles: list[str] = []
        # With what the last run could not make: `_export` then knows all that still cannot be.
        keys = {*keys, *map(_unmade_key, self._manifest.unmade)}
        for key in sorted(keys):
            kind, _, path = key.partition(":")
            if kind in ("feed", "page"):
                urls[path] = None
            elif kind == "article":
                urls[path] = None
                articles.append(path)
        units = [Unit(url, None) for url in urls]
        report = Report()
        # Files of each article's folder that it no longer has (photos removed or replaced) go.
        keep: dict[str, set[str]] = {}
        for path in articles:
            section, _, slug = path.strip("/").partition("/")
            try:
                photos = list(_photos(self.publisher.article(section, slug)))
            except NotFound:
                photos = []
            units += photos
            keep[path.lstrip("/")] = {file_for(unit.url) for unit in photos} | {file_for(path)}
        gone = [name for name in self._manifest.under(keep) if name not in keep[_article_folder(name)]]
        report.add(self._export(units))
        report.removed += self._remove(gone)
        return report

    def stalled(self, seconds: float) -> str | None:
        """Why the export seems hung: files are being made, and none was for `seconds` (a worker
        process stopped, a write that never returns); None otherwise. Safe from any thread: it
        takes no lock, since a hung run holds the one it would wait for."""
        since = self._making_since
        if since is None or seconds <= 0:
            return None
        made, now = self._made.value, time.monotonic()
        if made != self._seen_made[0]:
            self._seen_made = (made, now)
            return None
        quiet = now - max(since, self._seen_made[1])
        return f"the export has made no file for {quiet:.0f} s" if quiet >= seconds else None

    def close(self) -> None:
        """Saves the manifest (a watching export saves it now and then, and when it stops), and
        lets OUTDIR go (`release`)."""
        with self._lock:
            self._save()
        self.release()

    def release(self) -> None:
        """Lets OUTDIR go to another export, saying that this one left no file half written."""
        if self._claim.closed:
            return
        self._claim.truncate(0)
        self._claim.close()  # and with it the lock

    # -- doing it --------------------------------------------------------------------------

    def _export(self, units: list[Unit]) -> Report:
        report = Report()
        todo: Task = []
        for unit in units:
            relative = file_for(unit.url)
            old = self._manifest.get(relative)
            if (
                old is not None
                and unit.inputs is not None
                and old.inputs == unit.inputs
                and self._intact(relative, old)
            ):
                report.kept += 1
            else:
                todo.append((unit, old))
        report.looked_at = len(todo)
        # While files are being made, and no longer: a watching export is taken as hung when
        # this goes on with none made for a while (`stalled`).
        self._making_since = time.monotonic()
        try:
            gone, unmade = self._make_all(todo, report)
        finally:
            self._making_since = None
        report.removed += self._remove(gone)
        _sync(self.outdir)
        # Every run looks at each article the last one could not make (a whole run at all of them,
        # `_changed` at those): what is left is the ones that still cannot be. Not before the run
        # is done: one that fails keeps them for the next.
        self._manifest.unmade = unmade
        return report

    def _make_all(self, todo: Task, report: Report) -> tuple[list[str], set[str]]:
        """Makes the files, in worker processes for many; counts them in `report` and returns the
        names of those the service no longer answers, and the articles some of whose files could
        not be made now."""
        results: Iterable[list[Done]]
        tasks = _tasks(todo)
        if self.workers > 1 and len(todo) > CHUNK:
            results = self._in_processes(tasks)
        else:
            keep_items(ARTICLES_KEPT)
            results = map(self._do, tasks)
        gone: list[str] = []
        unmade: set[str] = set()
        for result in results:
            for relative, entry, outcome in result:
                if entry is None:
                    if outcome == GONE:
                        gone.append(relative)
                    else:  # what was there (if anything) stays, and the next run tries again
                        report.warnings.append(outcome)
                        report.unmade += 1
                        unmade.add(relative)
                    continue
                self._manifest.put(relative, entry)
                if outcome == "written":
                    report.written += 1
                elif outcome == "kept":
                    report.kept += 1
                else:
                    report.warnings.append(outcome)
                    report.written += 1
        return gone, _unmade_keys(unmade, todo)

    def _in_processes(self, tasks: list[Task]) -> Iterator[list[Done]]:
        """The tasks done by forked worker processes, each with its own connections to the index,
        in the order they finish. A worker process that ends (killed, out of memory, a crash in a
        decoder) takes the tasks it and the others held with it: those are done again one by one,
        each in a process of its own (`_isolating`), then the rest in a new pool."""
        global _forked
        _forked = self
        pending = collections.deque(tasks)
        while pending:
            lost: list[Task] = []
            yield from self._in_pool(pending, lost)
            if lost:
                log.warning("an export worker process ended: its %d tasks are done again, each alone", len(lost))
                self._sweep(lost)
            for task in lost:
                yield self._isolating(task)

    def _isolating(self, task: Task) -> list[Done]:
        """The task done in a process of its own; if that process ends too, each half of it, down to
        the one file whose making ends it: that one is left as it was, named in a warning, and
        looked at again by the next run, and every other file is made. If a process with nothing
        to make ends too, the fault is not in the files, and the run fails (ExportError)."""
        done, status = _alone(task)
        if done is not None:
            return done
        self._sweep([task])
        if len(task) > 1:
            half = len(task) // 2
            return self._isolating(task[:half]) + self._isolating(task[half:])
        if _alone([])[0] is None:
            # Blaming the file would leave every file of the run unmade while this lasts.
            raise ExportError(str(self.outdir), "its worker processes end even with nothing to make")
        ((unit, _),) = task
        how = f"signal {-status}" if status is not None and status < 0 else f"exit status {status}"
        reason = f"{unit.url}: making it ended its process ({how}); what was there stays, and the next run tries again"
        log.error("%s", reason)
        return [(file_for(unit.url), None, reason)]

    def _in_pool(self, pending: collections.deque[Task], lost: list[Task]) -> Iterator[list[Done]]:
        """The outcomes of tasks taken from `pending` as workers are ready for them (a pool's own
        `map` would queue every one at once); if the pool breaks, the tasks it held go to `lost`."""
        with _pool(self.workers) as pool:
            running: dict[Future[list[Done]], Task] = {}
            while pending or running:
                while pending and len(running) < 2 * self.workers:
                    task = pending.popleft()
                    running[pool.submit(_work, task)] = task
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = running.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        lost.append(task)
                if lost:
                    # Every future of a broken pool ends, done before the break or failed with it.
                    for future, task in running.items():
                        try:
                            yield future.result()
                        except BrokenProcessPool:
                            lost.append(task)
                    return

    def _sweep(self, tasks: Iterable[Task]) -> None:
        """Removes the temporary files that ended processes left beside the tasks' files."""
        folders = {os.path.dirname(self.outdir / file_for(unit.url)) for task in tasks for unit, _ in task}
        for folder in folders:
            with contextlib.suppress(FileNotFoundError):
                _remove_temporaries(folder, os.listdir(folder), keep=_running)

    def _do(self, task: Task) -> list[Done]:
        """Makes each unit's body and writes it unless the same bytes are there; None for a URL the
        service does not answer (any more)."""
        done: list[Done] = []
        packed: list[Future[None]] = []
        # Each .gz is compressed and written by a thread of its own (zlib lets go of the GIL) while
        # the next body is rendered; the task is done once they are all written. A task is one
        # period's documents, in four formats each: its articles are looked up once.
        with ThreadPoolExecutor(1, thread_name_prefix="gzip") as packer, self.publisher.describing_once():

            def pack(target: Path, body: bytes) -> None:
                packed.append(packer.submit(_pack, target, body))

            for unit, old in task:
                done.append(self._make(unit, old, pack))
                self._made.value += 1  # processes may overwrite each other's count: it moves all the same
        for written in packed:
            written.result()
        return done

    def _make(self, unit: Unit, old: Entry | None, pack: Callable[[Path, bytes], None]) -> Done:
        relative = file_for(unit.url)
        if not unit.source.rendered:
            placed = self._place(unit, relative, old)
            return placed if placed is not None else (relative, None, GONE)
        body = self._get(unit.url)
        if body is None:
            return (relative, None, GONE)
        digest = body_digest(body)
        if old is not None and old.digest == digest and self._intact(relative, old):
            return (relative, msgspec.structs.replace(old, inputs=unit.inputs), "kept")
        gzipped = compressible(relative)
        target = self.outdir / relative
        self._folder(target.parent)
        status = _replace(target, body)
        if gzipped:
            pack(target.with_name(target.name + ".gz"), body)
        return (relative, Entry(unit.inputs, digest, *status, gzipped), "written")

    def _get(self, url: str) -> bytes | None:
        """The body the service answers a GET of `url` with; None for a 404."""
        environ: WSGIEnvironment = {**self._environ, "PATH_INFO": url, "wsgi.input": io.BytesIO()}
        answer: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> Any:
            answer.append((status, headers))
            return lambda data: None

        chunks = self.app.wsgi_app(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status, headers = answer[-1]
        if status.startswith("404"):
            return None
        if not status.startswith("200"):
            raise ExportError(url, f"the service answered {status}")
        content_type = next((value for name, value in headers if name.lower() == "content-type"), "")
        expected = _content_type(file_for(url))
        if content_type != expected:
            # static.conf would send another type than the service for this name.
            raise ExportError(url, f"the service sends {content_type!r}, a file of this name is served as {expected!r}")
        return body

    def _place(self, unit: Unit, relative: str, old: Entry | None) -> Done | None:
        """A photo or a rendition: the very file its view sends, linked (or copied) into place.

        A rendition that cannot be made now is left out with the reason, not the run: one photo
        must not stop the export of everything else."""
        source = unit.source
        try:
            _, image, path = self.publisher.photo(source.section, source.slug, source.file)
            digest = f"{image.digest}-{source.width}"
            if old is not None and old.digest == digest and self._intact(relative, old):
                return relative, msgspec.structs.replace(old, inputs=unit.inputs), "kept"
            if source.width:
                path = rendition(self.publisher.store.files.cache_dir, image, path, source.width)
        except NotFound:
            return None
        except Unavailable as error:
            return relative, None, f"{unit.url}: not exported, tried again by the next run: {error}"
        size, mtime_ns, inode = self._link(path, relative)
        outcome = "written"
        expected = PHOTO_TYPES.get(Path(relative).suffix.lower())
        if expected != image.media_type:
            outcome = f"{unit.url}: the service sends it as {image.media_type}, nginx by its name as {expected}"
        return relative, Entry(unit.inputs, digest, size, mtime_ns, inode, False), outcome

    def _intact(self, relative: str, entry: Entry) -> bool:
        """Whether the file is still the one written (and its .gz is there)."""
        try:
            status = os.stat(self.outdir / relative)
        except OSError:
            return False
        if (status.st_size, status.st_ino) != (entry.size, entry.inode):
            return False
        # A photo may be the very file of content/ (a link), whose time is content/'s affair.
        if entry.gzipped and status.st_mtime_ns != entry.mtime_ns:
            return False
        return not entry.gzipped or os.path.exists(self.outdir / f"{relative}.gz")

    def _link(self, source: Path, relative: str) -> tuple[int, int, int]:
        target = self.outdir / relative
        self._folder(target.parent)
        temporary = _temporary(target)
        try:
            try:
                if not os.stat(source).st_mode & stat.S_IROTH:
                    raise PermissionError("not for everyone to read")  # e.g. a rendition, made private
                os.link(source, temporary)
            except OSError:
                # Another file system, a file with the most links it may have, or one that the web
                # server could not read: a copy, readable by all.
                shutil.copyfile(source, temporary)
                os.chmod(temporary, 0o644)
            os.replace(temporary, target)
            # A rename between two links of one file does nothing: the file is in place (a photo
            # edited in content/ in place, which the export had linked), and the new link stays.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        status = os.stat(target)
        return status.st_size, status.st_mtime_ns, status.st_ino

    def _folder(self, folder: Path) -> None:
        key = str(folder)
        if key not in self._folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._folders.add(key)

    def _remove(self, names: Iterable[str]) -> int:
        """Removes files (with their .gz) and the folders they leave empty."""
        removed = 0
        folders: set[Path] = set()
        for relative in names:
            entry = self._manifest.pop(relative)
            target = self.outdir / relative
            for path in (target, target.with_name(target.name + ".gz")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            removed += entry is not None
            folders.add(target.parent)
        for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
            while folder != self.outdir and folder.is_relative_to(self.outdir):
                try:
                    folder.rmdir()
                except OSError:
                    break
                self._folders.discard(str(folder))
                folder = folder.parent
        return removed

    # -- the manifest ----------------------------------------------------------------------

    def _save(self) -> None:
        self._manifest.save()
        self._saved_at = time.monotonic()


def _photos(article: Article) -> Iterator[Unit]:
    """The article's own photos and their renditions, each a URL of its own."""
    for image in article.images:
        if image.file is None:
            continue
        source = Source(article.section, article.slug, image.file)
        yield Unit(image.src, fingerprint(("photo", image.digest)), source, group="articles")
        for width, _ in image.renditions:
            source = Source(article.section, article.slug, image.file, width)
            yield Unit(image.rendition_src(width), fingerprint(("rendition", image.digest, width)), source, "articles")


def _scope_units(scope: Scope, inputs: str, group: str = "current") -> Iterator[Unit]:
    for format_ in FORMATS:
        yield Unit(scope.document_path(format_.file_name), inputs, group=group)
    if scope.page_path not in FIXED_URLS:  # the site's page is the front page
        yield Unit(scope.page_path, inputs, group=group)


def _tasks(todo: Task) -> list[Task]:
    """Work for the processes: the documents of one month together (each article's items are
    written once and reused by its site's, section's and topics' documents), articles in chunks."""
    by_month: dict[str, Task] = {}
    for unit, old in todo:
        by_month.setdefault(unit.group, []).append((unit, old))
    articles = by_month.pop("articles", [])
    tasks = sorted(by_month.values(), key=len, reverse=True)
    tasks += [articles[start : start + CHUNK] for start in range(0, len(articles), CHUNK)]
    return tasks


_forked: Exporter | None = None


def _start_worker(parent: int) -> None:
    end_with_parent(parent)  # a killed export leaves no worker behind
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A broken pool ends its other workers with SIGTERM. A watching export's handler for SIGTERM
    # (`_watch`), inherited by the fork, would catch it, and the pool wait for ever.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A forked process must not use its parent's SQLite connections: it opens its own.
    publisher = _exporter().publisher
    publisher.store = Store(publisher.store.files)
    keep_items(ARTICLES_KEPT)


def _work(task: Task) -> list[Done]:
    return _exporter()._do(task)


def _alone(task: Task) -> tuple[list[Done] | None, int | None]:
    """The task done in a worker process of its own (`scanner.alone`)."""
    return alone(_pool(1), _work, task, Future.result)


def _pool(workers: int) -> ProcessPoolExecutor:
    """Forked worker processes of this export (`_start_worker`)."""
    return ProcessPoolExecutor(
        workers, multiprocessing.get_context("fork"), initializer=_start_worker, initargs=(os.getpid(),)
    )


def _exporter() -> Exporter:
    if _forked is None:
        raise RuntimeError("not in a worker process of an export")
    return _forked


def _position(seen: Seen | None) -> Position | None:
    return None if seen is None else (seen.month, seen.section, seen.topics)


def _unmade_keys(files: Collection[str], todo: Task) -> set[str]:
    """The keys that bring the files back into a run of `changed`: a file of an article (its page,
    a photo, a rendition) by the article's, so that its other files are looked at too; a feed
    document or a page of many articles by its own."""
    if not files:
        return set()
    units = {file_for(unit.url): unit for unit, _ in todo}
    return {
        edge.article_key(f"/{_article_folder(name)}") if units[name].group == "articles" else f"page:{units[name].url}"
        for name in files
    }


def _unmade_key(stored: str) -> str:
    """A key kept by `_unmade_keys`; an article's path ("/innlent/slug/"), as manifests kept them before."""
    return edge.article_key(stored) if stored.startswith("/") else stored


def _article_folder(name: str) -> str:
    """The article folder a file name is in: "innlent/slug/" for "innlent/slug/640w-x/gos.jpg"."""
    section, _, rest = name.partition("/")
    return f"{section}/{rest.partition('/')[0]}/"


def _hour(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(minute=0, second=0, microsecond=0)


def _pack(target: Path, body: bytes) -> None:
    """Writes the .gz of a body whole, by rename: the same bytes as the service's gzip copy."""
    _replace(target, gzip_body(body))


#: The name of a file being written (`_temporary`), with the id of the process that writes it.
_TEMPORARY = re.compile(r"\..+\.(\d+)\.\d+\.tmp")


def _temporary(target: Path) -> Path:
    """A name beside `target` for this thread of this process to write it under (_TEMPORARY reads
    the process id back)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def _claim(lock: Path, outdir: Path) -> io.FileIO:
    """The lock of one OUTDIR, held until `Exporter.release`: one export of it at a time. It holds
    the process id of an export that has not let go: when it is found so, that process ended while
    it wrote (killed, the machine down), and the temporary files it left are removed."""
    claim = io.FileIO(lock, "a+")
    try:
        fcntl.flock(claim.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        claim.close()
        holder = lock.read_text(encoding="ascii", errors="replace").strip() or "?"
        raise ExportError(str(outdir), f"another export of it runs (process {holder})") from None
    claim.seek(0)
    if claim.read():
        for folder, _, names in os.walk(outdir):
            _remove_temporaries(folder, names)
        claim.truncate(0)
    claim.write(str(os.getpid()).encode())
    claim.flush()
    return claim


def _remove_temporaries(folder: str, names: Iterable[str], keep: Callable[[int], bool] = lambda writer: False) -> None:
    """Removes the temporary files among the folder's `names`, except those whose writing process
    `keep` names."""
    for name in names:
        found = _TEMPORARY.fullmatch(name)
        if found and not keep(int(found[1])):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's
    return True


def _replace(target: Path, data: bytes) -> tuple[int, int, int]:
    """Writes `data` under a temporary name beside `target`, then renames it over `target`."""
    temporary = _temporary(target)
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            status = os.fstat(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return status.st_size, status.st_mtime_ns, status.st_ino


def _sync(folder: Path) -> None:
    """Flushes the file system that holds `folder` to disk: one call for every file of a run."""
    descriptor = os.open(folder, os.O_RDONLY) if folder.exists() else None
    if descriptor is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if getattr(libc, "syncfs", None) is None or libc.syncfs(descriptor) != 0:
            os.sync()
    finally:
        os.close(descriptor)


_CODE: str | None = None


def _code_version() -> str:
    """A digest of the package's code, templates and assets (but this module, which writes no
    body): new code may write other bytes."""
    global _CODE
    if _CODE is None:
        digest = hashlib.blake2b(digest_size=16)
        root = Path(__file__).parent
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path != Path(__file__):
                digest.update(os.fsencode(path.relative_to(root)) + b"\0" + path.read_bytes())
        _CODE = digest.hexdigest()
    return _CODE


class ExportSink(Notifier):
    """Where the announcer hands each change when exporting: re-exports what its keys name.

    A change whose export fails (a full disk, a folder someone made unwritable) is kept and tried
    again, with the changes that come after it, until it is written: its files would otherwise stay
    stale until those very documents changed again. So is a run that left files out because they
    could not be made now (a rendition; the exporter keeps which): the next is due soon, not at
    the next change.
    """

    def __init__(self, exporter: Exporter) -> None:
        super().__init__((), ())
        self.exporter = exporter
        self._settings: str | None = None
        self._lock = threading.Lock()
        #: Keys of the changes not yet exported, and whether everything must be looked at.
        self._pending: set[str] = set()
        self._whole = False
        self._retry_in = FIRST_RETRY_SECONDS
        self._retry_at: float | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._retry, name="export-retry", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def submit(self, feed_urls: Collection[str], keys: Collection[str]) -> None:
        with self._lock:
            self._pending.update(keys)
            try:
                # The site's or a section's settings show on every page, which no key names: all is
                # looked at (and what its fingerprint says is unchanged, kept without rendering).
                store = self.exporter.publisher.store
                settings = fingerprint((store.site(), store.sections()))
                self._whole |= self._settings not in (None, settings)
                self._settings = settings
            except (FeedsError, OSError):
                self._whole = True
            self._export()

    def retry_unmade(self, report: Report) -> None:
        """Tries again, on the same schedule as a failed change, what a run (one not done through
        this sink) could not make."""
        with self._lock:
            self._after(report)

    def _export(self) -> None:
        keys = sorted(self._pending)
        try:
            report = self.exporter.run() if self._whole else self.exporter.changed(keys)
        except (FeedsError, OSError) as error:
            # Nothing is half-written (each file is whole or not there), and the keys stay pending.
            log.error("re-export failed: %s; trying again in %.1f s", error, self._retry_in)
            self._retry_later()
            return
        self._pending.clear()
        self._whole = False
        log.info("re-exported %d keys: %s", len(keys), report)
        for warning in report.warnings:
            log.warning("%s", warning)
        self._after(report)

    def _after(self, report: Report) -> None:
        if report.unmade:
            # The exporter keeps what it could not make and looks at it again at every run: one
            # is due even if nothing else changes.
            self._retry_later()
        else:
            self._retry_at, self._retry_in = None, FIRST_RETRY_SECONDS

    def _retry_later(self) -> None:
        """Has the retry thread export again after `_retry_in`, which doubles each time up to LONGEST_RETRY_SECONDS."""
        self._retry_at = time.monotonic() + self._retry_in
        self._retry_in = min(self._retry_in * 2, LONGEST_RETRY_SECONDS)
        self._wake.set()

    def _retry(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                retry_at = self._retry_at
            self._wake.wait(None if retry_at is None else max(retry_at - time.monotonic(), 0.0))
            self._wake.clear()
            with self._lock:
                if self._stop.is_set():
                    return
                if self._retry_at is not None and time.monotonic() >= self._retry_at:
                    self._export()


@click.command("export")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--base-url", help="Prefix of every URL in the files (default: FEEDS_BASE_URL, else the site's).")
@click.option("--watch", is_flag=True, help="Keep exporting each change until stopped.")
@click.option("--whole", is_flag=True, help="Look at every URL and file, not only at what changed since the last run.")
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default=True, help="Processes for a full run.")
@with_appcontext
def export_command(outdir: Path, base_url: str | None, watch: bool, whole: bool, workers: int) -> None:
    """Writes every feed, archive document, page and photo the service publishes into OUTDIR as
    files, with a .gz beside each text file; a later run writes only what changed.

    With --watch it keeps the index current (as `index --watch` does) and re-exports each change;
    while another indexer runs, it follows that one's index instead.
    """
    publisher: Publisher = current_app.extensions["feeds"]
    if not indexer_alive(publisher.store.files):
        with contextlib.suppress(IndexerBusy):  # one just started: it brings the index up to date
            publisher.sync_now(wait_seconds=0)
    base = base_url or publisher.settings.base_url or publisher.store.site().base_url
    if not base:
        raise click.UsageError("no base URL: give --base-url, or set FEEDS_BASE_URL or the site's base_url")
    try:
        exporter = Exporter(current_app._get_current_object(), outdir, base, workers)  # type: ignore[attr-defined]
    except (FeedsError, OSError) as error:
        raise click.ClickException(str(error)) from None
    try:
        try:
            report = exporter.run(whole=whole)
        except (FeedsError, OSError) as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"exported {exporter.outdir} for {exporter.base_url}: {report}")
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
        if watch:
            _watch(publisher, exporter)
    finally:
        exporter.release()


def _watch(publisher: Publisher, exporter: Exporter) -> None:
    """Re-exports each change until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s export[%(process)d] %(levelname)s %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    sink = ExportSink(exporter)
    announcer = Announcer(ChangeTracker(publisher), sink, exporter.base_url)
    # The watch loop beats (to systemd's watchdog, deploy/systemd/feeds-export.service); a run of
    # the export that makes no file for FEEDS_WATCHDOG_SECONDS stops it.
    liveness.withhold_beats_while(lambda: exporter.stalled(publisher.settings.watchdog_seconds))
    announcer.start()
    try:
        # Its first look takes the feeds as they are; what changed since the run above is caught here.
        while not announcer.ready.wait(0.1):
            if stop.is_set():
                return
        report = exporter.run()
        click.echo(f"caught up: {report}")
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
        sink.retry_unmade(report)
        click.echo(f"exporting every change to {exporter.outdir}")
        # Under systemd (deploy/systemd/feeds-export.service): started; its watchdog counts from here,
        # fed by the watch loop's beats.
        liveness.notify_systemd("READY=1")
        watcher.watch(
            publisher.indexer(isolated=True),
            publisher.content_dir,
            publisher.settings.rescan_seconds,
            stop,
            on_sync=announcer.changed,
            verify_per_second=publisher.settings.verify_per_second,
        )
    finally:
        liveness.notify_systemd("STOPPING=1")
        announcer.stop()
        exporter.close()
