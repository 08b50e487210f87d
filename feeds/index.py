"""The article index: metadata of every bundle in SQLite, kept in step with `content/`.

Only `sync` reads the content directory; every query answers from the database, so a
request costs the same at 100,000 articles as at 100.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import msgspec

from .content import ARTICLE_FILE, SECTION_FILE, SITE_FILE, read_article, read_section, read_site
from .errors import ContentError, NotFound
from .images import PHOTO_SUFFIXES
from .model import Article, Section, Site, Topic

log = logging.getLogger(__name__)

_Job = TypeVar("_Job")
_Result = TypeVar("_Result")

#: Bumped whenever the tables or the stored encoding change; an older database is rebuilt.
SCHEMA_VERSION = 2
#: Below this many bundles to look at, worker processes cost more than they save.
PARALLEL_THRESHOLD = 2000
#: Bundles a worker process looks at in one go during a full pass.
SCAN_CHUNK = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS section (
    slug TEXT PRIMARY KEY, signature TEXT NOT NULL, data BLOB, error TEXT);
CREATE TABLE IF NOT EXISTS bundle (
    path TEXT PRIMARY KEY,
    section TEXT NOT NULL,
    signature TEXT NOT NULL,
    published INTEGER,
    data BLOB,
    error TEXT);
CREATE INDEX IF NOT EXISTS bundle_by_time ON bundle (published DESC, path DESC) WHERE data IS NOT NULL;
CREATE INDEX IF NOT EXISTS bundle_by_section ON bundle (section, published DESC, path DESC) WHERE data IS NOT NULL;
CREATE TABLE IF NOT EXISTS topic (
    slug TEXT NOT NULL, published INTEGER NOT NULL, path TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (slug, published, path)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS topic_by_path ON topic (path);
"""

_encode = msgspec.msgpack.Encoder().encode
_decode_article = msgspec.msgpack.Decoder(Article).decode
_decode_section = msgspec.msgpack.Decoder(Section).decode
_decode_site = msgspec.msgpack.Decoder(Site).decode

DEFAULT_SITE = Site(title="Fréttir", description="")


@dataclass(frozen=True, slots=True)
class TopicCount:
    """A topic with the number of articles public under it."""

    topic: Topic
    articles: int


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one pass over the content directory changed."""

    parsed: int
    removed: int
    #: The content version after the pass; it grows whenever anything public may have changed.
    version: int
    #: Bundles left as they were because a writer may not be done with them.
    deferred: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Parsed:
    path: str
    section: str
    signature: str
    published: int | None
    data: bytes | None
    error: str | None
    topics: tuple[Topic, ...]


class ContentIndex:
    """Queries over the published articles, answered from an SQLite database.

    Safe to share between threads; several processes may open the same database, and
    whichever calls `sync` updates it for all of them.
    """

    def __init__(self, content_dir: Path, database: Path, workers: int | None = None) -> None:
        self.content_dir = content_dir
        self.database = database
        self.workers = workers or os.cpu_count() or 1
        self._local = threading.local()
        self._sync_lock = threading.Lock()
        database.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as db:
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                db.executescript(
                    "DROP TABLE IF EXISTS meta; DROP TABLE IF EXISTS section;"
                    " DROP TABLE IF EXISTS bundle; DROP TABLE IF EXISTS topic;"
                )
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- reading -----------------------------------------------------------------

    def version(self) -> int:
        """A number that grows whenever the stored content changes."""
        row = self._db().execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        return int(row[0]) if row else 0

    def changed_at(self) -> datetime:
        """When the content version last went up (the epoch if it never did)."""
        row = self._db().execute("SELECT value FROM meta WHERE key = 'changed_at'").fetchone()
        return datetime.fromtimestamp(int(row[0]) if row else 0, UTC)

    def site(self) -> Site:
        row = self._db().execute("SELECT value FROM meta WHERE key = 'site'").fetchone()
        return _decode_site(row[0]) if row else DEFAULT_SITE

    def sections(self) -> tuple[Section, ...]:
        rows = self._db().execute("SELECT data FROM section WHERE data IS NOT NULL ORDER BY slug")
        return tuple(_decode_section(data) for (data,) in rows)

    def section(self, slug: str) -> Section:
        """Raises NotFound for a section that does not exist or cannot be published."""
        row = self._db().execute("SELECT data FROM section WHERE slug = ? AND data IS NOT NULL", (slug,)).fetchone()
        if row is None:
            raise NotFound("section", slug)
        return _decode_section(row[0])

    def topic(self, slug: str, now: datetime) -> Topic:
        """Raises NotFound unless some public article has this topic."""
        row = (
            self._db()
            .execute(
                "SELECT name FROM topic WHERE slug = ? AND published <= ? ORDER BY published DESC LIMIT 1",
                (slug, _seconds(now)),
            )
            .fetchone()
        )
        if row is None:
            raise NotFound("topic", slug)
        return Topic(name=row[0], slug=slug)

    def topics(self, now: datetime) -> tuple[TopicCount, ...]:
        """Every topic of a public article, most used first."""
        rows = self._db().execute(
            "SELECT slug, name, COUNT(*) FROM topic WHERE published <= ? GROUP BY slug ORDER BY COUNT(*) DESC, slug",
            (_seconds(now),),
        )
        return tuple(TopicCount(Topic(name=name, slug=slug), count) for slug, name, count in rows)

    def latest(
        self, now: datetime, limit: int, section: str | None = None, topic: str | None = None
    ) -> tuple[Article, ...]:
        """Public articles, newest first, of a section or a topic or the whole site."""
        at = _seconds(now)
        if topic is not None:
            rows = self._db().execute(
                "SELECT bundle.data FROM topic JOIN bundle USING (path)"
                " WHERE topic.slug = ? AND topic.published <= ?"
                " ORDER BY topic.published DESC, topic.path DESC LIMIT ?",
                (topic, at, limit),
            )
        elif section is not None:
            rows = self._db().execute(
                "SELECT data FROM bundle WHERE data IS NOT NULL AND section = ? AND published <= ?"
                " ORDER BY published DESC, path DESC LIMIT ?",
                (section, at, limit),
            )
        else:
            rows = self._db().execute(
                "SELECT data FROM bundle WHERE data IS NOT NULL AND published <= ?"
                " ORDER BY published DESC, path DESC LIMIT ?",
                (at, limit),
            )
        return tuple(_decode_article(data) for (data,) in rows)

    def article(self, section: str, slug: str, now: datetime) -> Article:
        """Raises NotFound unless the article exists and is public at `now`."""
        row = (
            self._db()
            .execute(
                "SELECT data FROM bundle WHERE path = ? AND data IS NOT NULL AND published <= ?",
                (f"{section}/{slug}", _seconds(now)),
            )
            .fetchone()
        )
        if row is None:
            raise NotFound("article", f"{section}/{slug}")
        return _decode_article(row[0])

    def next_release(self, now: datetime) -> datetime | None:
        """When the next embargoed article becomes public, if one is waiting."""
        row = (
            self._db()
            .execute(
                "SELECT MIN(published) FROM bundle WHERE data IS NOT NULL AND published > ?",
                (_seconds(now),),
            )
            .fetchone()
        )
        return None if row[0] is None else datetime.fromtimestamp(row[0], UTC)

    def problems(self) -> tuple[ContentError, ...]:
        """Every stored file that cannot be published, with the reason."""
        rows = self._db().execute(
            "SELECT 'site', value FROM meta WHERE key = 'site_error'"
            " UNION ALL SELECT slug, error FROM section WHERE error IS NOT NULL"
            " UNION ALL SELECT path, error FROM bundle WHERE error IS NOT NULL ORDER BY 1"
        )
        return tuple(_problem(str(error)) for _, error in rows)

    # -- writing -----------------------------------------------------------------

    def sync(self, settle_seconds: float = 0.0, hold: Container[str] = ()) -> SyncReport:
        """Brings the whole index in step with the content directory, parsing only what changed.

        Bundles named in `hold`, or with a file changed less than `settle_seconds` ago, are
        left as they were (a writer may be half-way through) and listed as deferred.
        """
        return self._write(lambda db: self._sync(db, settle_seconds, hold))

    def sync_bundles(
        self, paths: Iterable[str], settle_seconds: float = 0.0, complete: Mapping[str, int] | None = None
    ) -> SyncReport:
        """Re-reads only the named bundles ("section/slug"), as a watcher does: cheap at any size.

        A bundle with a file changed less than `settle_seconds` ago is deferred, unless that file
        is `complete`: known whole (its writer closed it) at the modification time given, in
        nanoseconds; files are named "section/slug/name".
        """
        return self._write(lambda db: self._sync_bundles(db, set(paths), settle_seconds, complete or {}))

    def _write(self, work: Callable[[sqlite3.Connection], SyncReport]) -> SyncReport:
        with self._sync_lock, self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                report = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return report

    def _sync(self, db: sqlite3.Connection, settle_seconds: float, hold: Container[str]) -> SyncReport:
        site, site_changed = self._sync_site(db)
        sections, sections_changed = self._sync_sections(db)
        stored = dict(db.execute("SELECT path, signature FROM bundle").fetchall())
        paths = [f"{section}/{slug}" for section in sections for slug in _folders(self.content_dir / section)]
        settled_before = time.time() - settle_seconds
        held = {path for path in paths if path in hold}
        chunks = [paths[start : start + SCAN_CHUNK] for start in range(0, len(paths), SCAN_CHUNK)]
        jobs = [
            _Examine(
                str(self.content_dir),
                site,
                chunk,
                {path: stored.get(path, "") for path in chunk},
                settled_before,
                held,
                {},
            )
            for chunk in chunks
        ]
        parsed, deferred = self._store_examined(db, jobs, len(paths))
        removed = set(stored) - set(paths)
        for path in removed:
            _remove(db, path)
        changed = bool(site_changed or sections_changed or parsed or removed)
        return _report(db, changed, parsed, len(removed), deferred)

    def _sync_bundles(
        self, db: sqlite3.Connection, paths: set[str], settle_seconds: float, complete: Mapping[str, int]
    ) -> SyncReport:
        stored_site = _meta(db, "site")
        if not isinstance(stored_site, bytes):
            return self._sync(db, settle_seconds, ())
        if not paths:
            return _report(db, False, 0, 0, [])
        site = _decode_site(stored_site)
        sections = {slug for (slug,) in db.execute("SELECT slug FROM section WHERE data IS NOT NULL")}
        placeholders = ", ".join("?" * len(paths))
        query = f"SELECT path, signature FROM bundle WHERE path IN ({placeholders})"  # noqa: S608 - only "?"s
        stored = dict(db.execute(query, tuple(paths)).fetchall())
        present: list[str] = []
        removed: list[str] = []
        for path in sorted(paths):
            section, _, slug = path.partition("/")
            bundle = self.content_dir / path
            if section not in sections or slug[:1] in ("", ".", "_") or bundle.is_symlink() or not bundle.is_dir():
                if path in stored:
                    removed.append(path)
            else:
                present.append(path)
        for path in removed:
            _remove(db, path)
        job = _Examine(
            str(self.content_dir), site, present, {path: stored.get(path, "") for path in present},
            time.time() - settle_seconds, set(), dict(complete),
        )  # fmt: skip
        parsed, deferred = self._store_examined(db, [job], len(present))
        return _report(db, bool(parsed or removed), parsed, len(removed), deferred)

    def _sync_site(self, db: sqlite3.Connection) -> tuple[Site, bool]:
        """The site's settings, re-read if their file changed; a change marks every article for parsing."""
        signature = _signature_of_files(self.content_dir, (SITE_FILE,))
        stored = _meta(db, "site")
        if signature == _meta(db, "site_signature") and isinstance(stored, bytes):
            return _decode_site(stored), False
        site, problem = DEFAULT_SITE, None
        try:
            site = read_site(self.content_dir)
        except ContentError as error:
            problem = str(error)
            log.warning("%s", error)
        encoded = _encode(site)
        if encoded != stored:
            # Every date without a zone, and so every article, depends on the site's settings.
            db.execute("UPDATE bundle SET signature = ''")
        _set_meta(db, "site", encoded)
        _set_meta(db, "site_signature", signature)
        _set_meta(db, "site_error", problem)
        return site, True

    def _sync_sections(self, db: sqlite3.Connection) -> tuple[list[str], bool]:
        """Slugs of the sections whose articles may be published, and whether any section changed.

        A section's settings are read again only when their file changed.
        """
        stored = {
            slug: (signature, publishable)
            for slug, signature, publishable in db.execute("SELECT slug, signature, data IS NOT NULL FROM section")
        }
        publishable: list[str] = []
        changed = False
        folders = _folders(self.content_dir)
        for slug in folders:
            signature = _signature_of_files(self.content_dir / slug, (SECTION_FILE,))
            if slug in stored and stored[slug][0] == signature:
                if stored[slug][1]:
                    publishable.append(slug)
                continue
            data, problem = None, None
            try:
                data = _encode(read_section(self.content_dir, slug))
                publishable.append(slug)
            except ContentError as error:
                problem = str(error)
                log.warning("%s", problem)
            db.execute("INSERT OR REPLACE INTO section VALUES (?, ?, ?, ?)", (slug, signature, data, problem))
            changed = True
        for slug in set(stored) - set(folders):
            db.execute("DELETE FROM section WHERE slug = ?", (slug,))
            changed = True
        return publishable, changed

    def _store_examined(self, db: sqlite3.Connection, jobs: list[_Examine], size: int) -> tuple[int, list[str]]:
        """Examines the bundles, stores what was parsed; returns how many, and the deferred paths."""
        parsed = 0
        deferred: list[str] = []
        for result in self._map(_examine, jobs, size):
            for outcome in result:
                if isinstance(outcome, str):
                    deferred.append(outcome)
                else:
                    _store(db, outcome)
                    parsed += 1
        return parsed, deferred

    def _map(self, function: Callable[[_Job], _Result], jobs: list[_Job], size: int) -> Iterator[_Result]:
        """`map`, in worker processes on every core when there is enough work to pay for them."""
        if size < PARALLEL_THRESHOLD or self.workers < 2:
            yield from map(function, jobs)
            return
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            yield from pool.map(function, jobs)

    # -- connections -------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._open()
            self._local.connection = connection
        return connection

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        connection = self._open()
        try:
            yield connection
        finally:
            connection.close()

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.database, isolation_level=None, check_same_thread=False, timeout=30)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        return connection


@dataclass(frozen=True, slots=True)
class _Examine:
    """A slice of a full pass, for one worker process: look at these bundles, parse the changed."""

    root: str
    site: Site
    paths: list[str]
    #: What the index holds for each path ("" if nothing).
    stored: dict[str, str]
    #: Files changed after this (seconds since the epoch) may still be being written.
    settled_before: float
    held: set[str]
    #: Files ("section/slug/name") known whole at the modification time given (ns): not waited for.
    complete: dict[str, int]


def _examine(job: _Examine) -> list[_Parsed | str]:
    """The changed bundles of the slice, parsed, and the names of those deferred."""
    outcomes: list[_Parsed | str] = []
    for path in job.paths:
        signature, newest = _state_of_bundle(f"{job.root}/{path}", path, job.complete)
        if job.stored[path] == signature:
            continue
        if path in job.held or newest > job.settled_before:
            outcomes.append(path)
        else:
            outcomes.append(_parse_bundle(job.root, job.site, path, signature))
    return outcomes


def _parse_bundle(root: str, site: Site, path: str, signature: str) -> _Parsed:
    section, _, slug = path.partition("/")
    try:
        article = read_article(Path(root), section, slug, site)
    except ContentError as error:
        return _Parsed(path, section, signature, None, None, str(error), ())
    if article is None:
        return _Parsed(path, section, signature, None, None, None, ())
    return _Parsed(path, section, signature, _seconds(article.published), _encode(article), None, article.topics)


def _report(db: sqlite3.Connection, changed: bool, parsed: int, removed: int, deferred: list[str]) -> SyncReport:
    """Bumps the content version if anything changed, and says what the pass did."""
    version = int(_meta(db, "version") or 0)
    if changed or version == 0:
        version += 1
        _set_meta(db, "version", version)
        _set_meta(db, "changed_at", int(time.time()))
    return SyncReport(parsed=parsed, removed=removed, version=version, deferred=tuple(deferred))


def _remove(db: sqlite3.Connection, path: str) -> None:
    db.execute("DELETE FROM bundle WHERE path = ?", (path,))
    db.execute("DELETE FROM topic WHERE path = ?", (path,))


def _store(db: sqlite3.Connection, parsed: _Parsed) -> None:
    if parsed.error:
        log.warning("%s", parsed.error)
    db.execute(
        "INSERT OR REPLACE INTO bundle VALUES (?, ?, ?, ?, ?, ?)",
        (parsed.path, parsed.section, parsed.signature, parsed.published, parsed.data, parsed.error),
    )
    db.execute("DELETE FROM topic WHERE path = ?", (parsed.path,))
    db.executemany(
        "INSERT INTO topic VALUES (?, ?, ?, ?)",
        [(topic.slug, parsed.published, parsed.path, topic.name) for topic in parsed.topics],
    )


def _folders(directory: Path) -> list[str]:
    """Names of the sub-folders that hold content, skipping hidden and `_` ones."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(entry.name for entry in entries if entry.name[0] not in "._" and entry.is_dir(follow_symlinks=False))


def _state_of_bundle(bundle: str, path: str, complete: Mapping[str, int]) -> tuple[str, float]:
    """A signature that changes whenever the article file or a photo is added, removed,
    replaced or rewritten, and the newest modification time among them, leaving out the
    files named in `complete` ("section/slug/name").

    Other files (an editor's swap and backup files, notes) are not part of the article. This
    runs for every bundle in a full pass, so it stays on plain strings and one stat per file.
    """
    lines: list[str] = []
    newest = 0.0
    try:
        with os.scandir(bundle) as entries:
            for entry in entries:
                name = entry.name
                if name != ARTICLE_FILE and (
                    name[0] == "." or "." + name.rpartition(".")[2].lower() not in PHOTO_SUFFIXES
                ):
                    continue
                try:
                    status = entry.stat()
                except OSError:
                    lines.append(f"{name}:unreadable")
                    continue
                lines.append(_stat_line(name, status))
                if complete.get(f"{path}/{name}") != status.st_mtime_ns:
                    newest = max(newest, status.st_mtime)
    except OSError:
        return "", 0.0
    lines.sort()
    return _digest(lines), newest


def _signature_of_files(directory: Path, names: Iterable[str]) -> str:
    lines = []
    for name in names:
        try:
            lines.append(_stat_line(name, os.stat(directory / name)))
        except OSError:
            lines.append(f"{name}:absent")
    return _digest(lines)


def _stat_line(name: str, status: os.stat_result) -> str:
    return f"{name}:{status.st_size}:{status.st_mtime_ns}:{status.st_ino}"


def _digest(lines: Iterable[str]) -> str:
    return hashlib.blake2b("\n".join(lines).encode(), digest_size=16).hexdigest()


def _meta(db: sqlite3.Connection, key: str) -> bytes | str | int | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def _set_meta(db: sqlite3.Connection, key: str, value: bytes | str | int | None) -> None:
    if value is None:
        db.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _problem(line: str) -> ContentError:
    path, _, reason = line.partition(": ")
    return ContentError(path, reason)
