"""The article store: schema, queries and writes over SQLite files that only the indexer creates.

The index lives in generations: `index-<name>.<n>.sqlite3`, named by a pointer file that is
replaced atomically. A damaged or deleted generation is never repaired in place; the indexer
builds the next one from `content/` and moves the pointer, and readers follow the pointer.
Every error of the database is turned into `IndexUnavailable` here, and nowhere else.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import msgspec

from . import renditions
from .content import ARTICLE_FILE
from .errors import ContentError, FeedsError, IndexUnavailable, NotFound
from .model import Article, Section, Site, Topic

log = logging.getLogger(__name__)

_Value = TypeVar("_Value")
_Params = ParamSpec("_Params")

#: Pages a new generation may keep cached while it is built (KiB): the index by time fills in
#: date order, not in the order bundles are read, and at a million bundles its pages no longer
#: fit SQLite's default 2 MB.
BUILD_CACHE_KIB = 32 * 1024
#: The page size of a new generation. An article is stored as one row of 3 to 10 KB: in 4 KB pages
#: most of them spill into overflow pages. With 8 KB pages the process writing a first build of
#: 100k articles took 5.0-5.2 CPU-s against 6.0-6.1 (the file 3% smaller), and feeds rendered
#: from it took as long; with 16 KB pages they took longer.
PAGE_BYTES = 8192
#: Indexes of the bundle table that a new generation is filled without, and given once it is full
#: (`Writer.unpublished`). The settling of shared GUIDs needs bundle_by_guid, and waits with it.
BUILT_AFTER = ("bundle_by_time", "bundle_by_section", "bundle_by_guid")
#: The index of the topic table that is made again, by one sort, after a new generation's topics go in.
TOPICS_BY_PATH = "topic_by_path"
#: Where a new generation's topics wait until it is full (`Transaction.unstage_topics`): a table
#: with no index, in the connection's temporary database.
TOPICS_STAGED = "CREATE TEMP TABLE IF NOT EXISTS topic_filling (slug TEXT, published INTEGER, path TEXT, name TEXT)"
#: Bumped whenever the tables, their indexes or the stored encoding change; the indexer then builds a new generation.
SCHEMA_VERSION = 9
#: Bundles changed by one transaction beyond which none of them is logged (`Store.changes_since`):
#: whoever follows the log takes a change that large as "anything may have changed".
CHANGE_LOG_LIMIT = 5_000
#: Content versions the change log reaches back, at most; older entries are dropped every
#: CHANGE_LOG_PRUNE_EVERY versions.
CHANGE_LOG_VERSIONS = 100_000
CHANGE_LOG_PRUNE_EVERY = 1024
#: How often a reading thread looks at the pointer and at the database file's header.
CHECK_SECONDS = 0.01
#: How long a process leaves a generation alone after finding it damaged.
DAMAGED_PAUSE_SECONDS = 2.0
#: A reader waits this long for a lock (only checkpoints and recovery take one) before giving up.
READ_BUSY_SECONDS = 2.0
_MAGIC = b"SQLite format 3\x00"
MISSING = "the index file is missing"
REPLACED = "the index file was replaced"
_HEADER_SIZE = 100

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE section (slug TEXT PRIMARY KEY, signature TEXT NOT NULL, data BLOB, error TEXT);
CREATE TABLE bundle (
    path TEXT PRIMARY KEY,
    section TEXT NOT NULL,
    signature TEXT NOT NULL,
    published INTEGER,
    data BLOB,
    error TEXT,
    guid TEXT,
    held BLOB,
    photos TEXT);
CREATE INDEX bundle_by_time ON bundle (published DESC, path DESC) WHERE data IS NOT NULL;
CREATE INDEX bundle_by_section ON bundle (section, published DESC, path DESC) WHERE data IS NOT NULL;
CREATE INDEX bundle_problems ON bundle (path, error) WHERE error IS NOT NULL;
CREATE INDEX bundle_by_guid ON bundle (guid, published, path) WHERE guid IS NOT NULL;
CREATE INDEX bundle_held ON bundle (path) WHERE held IS NOT NULL;
CREATE TABLE topic (
    slug TEXT NOT NULL, published INTEGER NOT NULL, path TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (slug, published, path)) WITHOUT ROWID;
CREATE INDEX topic_by_path ON topic (path);
CREATE TABLE photo (digest TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (digest, path)) WITHOUT ROWID;
CREATE TABLE change (version INTEGER NOT NULL, path TEXT NOT NULL, PRIMARY KEY (version, path)) WITHOUT ROWID;
PRAGMA user_version = {SCHEMA_VERSION};
"""

_encode = msgspec.msgpack.Encoder().encode
_decode_article = msgspec.msgpack.Decoder(Article).decode
_decode_section = msgspec.msgpack.Decoder(Section).decode
_decode_site = msgspec.msgpack.Decoder(Site).decode

DEFAULT_SITE = Site(title="Fréttir", description="")

#: Which generation of the index, and which content version in it; grows with every change.
ContentVersion = tuple[int, int]


@dataclass(frozen=True, slots=True)
class TopicCount:
    """A topic with the number of articles public under it."""

    topic: Topic
    articles: int


@dataclass(frozen=True, slots=True)
class Bundle:
    """What the indexer learnt of one article bundle, ready to store: encoded where it was read
    (in a worker process), so that what crosses to the writer is bytes and a few plain values."""

    #: "section/slug".
    path: str
    section: str
    #: Changes whenever a file of the bundle does.
    signature: str
    #: When the article is published, in seconds since the epoch; None for a draft or a bundle
    #: that cannot be published.
    published: int | None = None
    #: The article, encoded as the index keeps it; None as for `published`.
    data: bytes | None = None
    #: The photos it goes out without, one reason a line.
    left_out: str | None = None
    #: Its topics, as (slug, name).
    topics: tuple[tuple[str, str], ...] = ()
    #: Why the bundle cannot be published as it stands; its last good version stays published.
    error: str | None = None
    #: `Article.guid_key`: the bundles that share one are published one at a time (`Transaction.store`).
    guid: str | None = None
    #: The digests of its photos in `content/` (`Image.digest`), which name their renditions.
    photos: tuple[str, ...] = ()

    @classmethod
    def of(cls, path: str, section: str, signature: str, article: Article | None) -> Bundle:
        """An article read (or None for a draft), encoded."""
        if article is None:
            return cls(path, section, signature)
        return cls(
            path, section, signature, _seconds(article.published), _encode(article),
            "\n".join(article.left_out) or None, tuple((topic.slug, topic.name) for topic in article.topics),
            guid=article.guid_key, photos=tuple({image.digest: None for image in article.images if image.digest}),
        )  # fmt: skip

    @classmethod
    def broken(cls, path: str, section: str, signature: str, error: str) -> Bundle:
        return cls(path, section, signature, error=error)


@dataclass(frozen=True, slots=True)
class IndexFiles:
    """Where one content directory's index lives in the cache directory."""

    cache_dir: Path
    #: "index-<hash of the content directory>".
    name: str

    @property
    def lock(self) -> Path:
        """Held by the one indexer that writes this index."""
        return self.cache_dir / f"{self.name}.lock"

    @property
    def pointer(self) -> Path:
        """Names the generation readers use."""
        return self.cache_dir / f"{self.name}.current"

    @property
    def status(self) -> Path:
        """The indexer's last word on its health, for /healthz."""
        return self.cache_dir / f"{self.name}.status.json"

    @property
    def damage_report(self) -> Path:
        """Written by a reader that met a damaged database, for the indexer to look into."""
        return self.cache_dir / f"{self.name}.damaged"

    def database(self, generation: int) -> Path:
        return self.cache_dir / f"{self.name}.{generation}.sqlite3"

    def report_damage(self, generation: int, reason: str) -> None:
        """Tells the indexer that a generation failed a reader; the first report stands until it is read."""
        try:
            descriptor = os.open(self.damage_report, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError:
            return  # one is waiting already, or the cache cannot be written: the indexer's own checks remain
        with os.fdopen(descriptor, "w", encoding="utf-8") as report:
            report.write(f"{generation} {reason}\n")

    def take_damage_report(self) -> tuple[int, str] | None:
        """The generation a reader reported damaged, and why; the report is removed."""
        try:
            text = self.damage_report.read_text(encoding="utf-8")
            self.damage_report.unlink()
        except (OSError, UnicodeDecodeError):
            return None
        generation, _, reason = text.strip().partition(" ")
        return (int(generation), reason) if generation.isdigit() else None

    def current(self) -> int | None:
        """The generation the pointer names, or None if there is none (or it cannot be read)."""
        try:
            text = self.pointer.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() else None

    def point_to(self, generation: int) -> None:
        """Makes `generation` the current one, atomically: a reader sees the old pointer or the new."""
        temporary = self.pointer.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(f"{generation}\n", encoding="ascii")
        os.replace(temporary, self.pointer)

    def generations(self) -> list[int]:
        """Every generation with a database file, oldest first."""
        prefix, suffix = f"{self.name}.", ".sqlite3"
        found = []
        for path in self.cache_dir.glob(f"{self.name}.*{suffix}"):
            middle = path.name[len(prefix) : -len(suffix)]
            if middle.isdigit():
                found.append(int(middle))
        return sorted(found)

    def remove(self, generation: int) -> None:
        """Deletes a generation's files; readers still holding it go on reading until they move on."""
        database = self.database(generation)
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def damage(path: Path) -> str | None:
    """Why the database file is unfit to read (missing, truncated, overwritten), or None.

    Cheap enough to run a hundred times a second: one stat and one 100-byte read, through a
    descriptor kept open (`_Headers`).
    """
    try:
        size, header = _HEADERS.read(path)
    except FileNotFoundError:
        return MISSING
    except OSError as error:
        return f"the index file cannot be read ({error.strerror})"
    if len(header) < _HEADER_SIZE or not header.startswith(_MAGIC):
        return "the index file is not an SQLite database (truncated or overwritten)"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages, counter, valid_for = (int.from_bytes(header[at : at + 4], "big") for at in (28, 24, 92))
    if counter == valid_for and size < pages * page_size:
        return "the index file is shorter than its header says (truncated)"
    return None


class _Headers:
    """Reads database files' headers, each through one descriptor that stays open.

    Closing a descriptor of a file drops every POSIX lock that the process holds on that file,
    SQLite's own included. A connection of another process that closes may then take the database
    for its own: it checkpoints the write-ahead log and deletes it, and whatever this process
    writes after that goes to a deleted log that no other process reads. So a file is opened
    once, and its descriptor closed only once the file at that path is another or gone: no writer
    writes a replaced or deleted generation (the indexer builds a new one then).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: By path: the inode and the descriptor of the file it named when opened.
        self._open: dict[str, tuple[int, int]] = {}
        # A process forked while another thread held the lock would wait for it for ever.
        os.register_at_fork(after_in_child=self._new_lock)

    def _new_lock(self) -> None:
        self._lock = threading.Lock()

    def read(self, path: Path) -> tuple[int, bytes]:
        """The file's size and its first 100 bytes; FileNotFoundError or OSError as `open` raises them."""
        key = str(path)
        with self._lock:
            for held_path, (inode, descriptor) in list(self._open.items()):
                if _inode(held_path) != inode:
                    del self._open[held_path]
                    os.close(descriptor)
            held = self._open.get(key)
            if held is None:
                descriptor = os.open(key, os.O_RDONLY)
                held = self._open[key] = (os.fstat(descriptor).st_ino, descriptor)
            return os.fstat(held[1]).st_size, os.pread(held[1], _HEADER_SIZE, 0)


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


_HEADERS = _Headers()


def _reading(method: Callable[Concatenate[Store, _Params], _Value]) -> Callable[Concatenate[Store, _Params], _Value]:
    """Turns every way a damaged or vanished database can fail a query into IndexUnavailable.

    The one place where errors of SQLite (and of decoding what it returns) are mapped.
    """

    @functools.wraps(method)
    def read(store: Store, /, *args: _Params.args, **kwargs: _Params.kwargs) -> _Value:
        try:
            return method(store, *args, **kwargs)
        except FeedsError:
            raise
        except (sqlite3.Error, msgspec.MsgspecError, UnicodeError, ValueError, TypeError, IndexError) as error:
            generation = store._forget()
            # Busy, locked or out of memory is passing; anything else says the file is damaged.
            if generation is not None and not isinstance(error, sqlite3.OperationalError):
                store._damaged = (generation, time.monotonic() + DAMAGED_PAUSE_SECONDS)
                store.files.report_damage(generation, f"{type(error).__name__}: {error}")
            raise IndexUnavailable(f"the index cannot be read: {error}") from error

    return read


class Store:
    """Queries over the published articles, from the current generation of the index.

    Safe to share between threads; each thread has its own connection, re-opened when the
    pointer moves. Raises IndexUnavailable when the index cannot be read, never anything of SQLite.
    """

    def __init__(self, files: IndexFiles) -> None:
        self.files = files
        self._local = threading.local()
        #: A generation this process found damaged, and until when it is not read again.
        self._damaged: tuple[int | None, float] = (None, 0.0)

    # -- reading -----------------------------------------------------------------

    @_reading
    def version(self) -> ContentVersion:
        """A pair that grows whenever the stored content changes."""
        generation, db = self._db()
        row = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        return generation, int(row[0]) if row else 0

    @_reading
    def changed_at(self) -> datetime:
        """When the content version last went up (the epoch if it never did)."""
        row = self._row("SELECT value FROM meta WHERE key = 'changed_at'")
        return datetime.fromtimestamp(int(row[0]) if row else 0, UTC)

    @_reading
    def site(self) -> Site:
        row = self._row("SELECT value FROM meta WHERE key = 'site'")
        return _decode_site(row[0]) if row else DEFAULT_SITE

    @_reading
    def sections(self) -> tuple[Section, ...]:
        rows = self._rows("SELECT data FROM section WHERE data IS NOT NULL ORDER BY slug")
        return tuple(_decode_section(data) for (data,) in rows)

    @_reading
    def section(self, slug: str) -> Section:
        """Raises NotFound for a section that does not exist or cannot be published."""
        row = self._row("SELECT data FROM section WHERE slug = ? AND data IS NOT NULL", (slug,))
        if row is None:
            raise NotFound("section", slug)
        return _decode_section(row[0])

    @_reading
    def topic(self, slug: str, now: datetime) -> Topic:
        """Raises NotFound unless some public article has this topic."""
        row = self._row(
            "SELECT name FROM topic WHERE slug = ? AND published <= ? ORDER BY published DESC LIMIT 1",
            (slug, _seconds(now)),
        )
        if row is None:
            raise NotFound("topic", slug)
        return Topic(name=row[0], slug=slug)

    @_reading
    def topics(self, now: datetime) -> tuple[TopicCount, ...]:
        """Every topic of a public article, most used first."""
        rows = self._rows(
            "SELECT slug, name, COUNT(*) FROM topic WHERE published <= ? GROUP BY slug ORDER BY COUNT(*) DESC, slug",
            (_seconds(now),),
        )
        return tuple(TopicCount(Topic(name=name, slug=slug), count) for slug, name, count in rows)

    @_reading
    def latest(
        self, now: datetime, limit: int, section: str | None = None, topic: str | None = None
    ) -> tuple[Article, ...]:
        """Public articles, newest first, of a section or a topic or the whole site."""
        at = _seconds(now)
        parameters: tuple[object, ...]
        if topic is not None:
            query, parameters = (
                "SELECT bundle.data FROM topic JOIN bundle USING (path)"
                " WHERE topic.slug = ? AND topic.published <= ? AND bundle.data IS NOT NULL"
                " ORDER BY topic.published DESC, topic.path DESC LIMIT ?",
                (topic, at, limit),
            )
        elif section is not None:
            query, parameters = (
                "SELECT data FROM bundle WHERE data IS NOT NULL AND section = ? AND published <= ?"
                " ORDER BY published DESC, path DESC LIMIT ?",
                (section, at, limit),
            )
        else:
            query, parameters = (
                "SELECT data FROM bundle WHERE data IS NOT NULL AND published <= ?"
                " ORDER BY published DESC, path DESC LIMIT ?",
                (at, limit),
            )
        rows = self._rows(query, parameters)
        return tuple(_decode_article(data) for (data,) in rows)

    @_reading
    def count(self, now: datetime) -> int:
        """How many articles are public at `now`."""
        row = self._row("SELECT COUNT(*) FROM bundle WHERE data IS NOT NULL AND published <= ?", (_seconds(now),))
        return int(row[0])

    @_reading
    def article(self, section: str, slug: str, now: datetime) -> Article:
        """Raises NotFound unless the article exists and is public at `now`."""
        row = self._row(
            "SELECT data FROM bundle WHERE path = ? AND data IS NOT NULL AND published <= ?",
            (f"{section}/{slug}", _seconds(now)),
        )
        if row is None:
            raise NotFound("article", f"{section}/{slug}")
        return _decode_article(row[0])

    @_reading
    def between(
        self, start: datetime, end: datetime, section: str | None = None, topic: str | None = None
    ) -> tuple[Article, ...]:
        """Every article published from `start` up to (not including) `end`, newest first, of a
        section or a topic or the whole site: an archive month. Keep `end` at most a second past now."""
        tables, published, where, parameters = _scope_sql(section, topic)
        # Every name in these queries is a constant of _scope_sql; the values are parameters.
        rows = self._rows(
            f"SELECT bundle.data FROM {tables} WHERE {where} AND {published} >= ? AND {published} < ?"  # noqa: S608
            f" ORDER BY {published} DESC, bundle.path DESC",
            (*parameters, _seconds(start), _seconds(end)),
        )
        return tuple(_decode_article(data) for (data,) in rows)

    @_reading
    def count_between(
        self, start: datetime, end: datetime, section: str | None = None, topic: str | None = None
    ) -> int:
        """How many articles were published from `start` up to (not including) `end`, of a section
        or a topic or the whole site: the size of an archive period. Keep `end` at most a second past now."""
        tables, published, where, parameters = _scope_sql(section, topic)
        row = self._row(
            f"SELECT COUNT(*) FROM {tables} WHERE {where} AND {published} >= ? AND {published} < ?",  # noqa: S608
            (*parameters, _seconds(start), _seconds(end)),
        )
        return int(row[0])

    @_reading
    def nth_published(
        self, now: datetime, n: int, section: str | None = None, topic: str | None = None
    ) -> datetime | None:
        """When the `n`th newest article public at `now` was published, of a section or a topic or
        the whole site; None if there are fewer than `n`."""
        tables, published, where, parameters = _scope_sql(section, topic)
        row = self._row(
            f"SELECT {published} FROM {tables} WHERE {where} AND {published} <= ?"  # noqa: S608
            f" ORDER BY {published} DESC, bundle.path DESC LIMIT 1 OFFSET ?",
            (*parameters, _seconds(now), n - 1),
        )
        return None if row is None else _moment(row[0])

    @_reading
    def published_near(
        self, before: datetime, since: datetime, now: datetime, section: str | None = None, topic: str | None = None
    ) -> tuple[datetime | None, datetime | None]:
        """When the newest article published before `before`, and the oldest published from `since`
        up to `now`, were published: an archive month's neighbours."""
        tables, published, where, parameters = _scope_sql(section, topic)
        older, newer = self._row(
            f"SELECT (SELECT MAX({published}) FROM {tables} WHERE {where} AND {published} < ?),"  # noqa: S608
            f" (SELECT MIN({published}) FROM {tables} WHERE {where} AND {published} >= ? AND {published} <= ?)",
            (*parameters, _seconds(before), *parameters, _seconds(since), _seconds(now)),
        )
        return _moment(older), _moment(newer)

    @_reading
    def changes_since(self, version: ContentVersion) -> frozenset[str] | None:
        """The bundles ("section/slug") whose stored article changed in any way (stored, removed,
        held back or published again) after `version`; None if the log does not reach back that
        far: another generation, a version before its log begins, or a change too large to log."""
        generation, db = self._db()
        if generation != version[0]:
            return None
        # One statement, one snapshot: the log's start and its entries as one writer left them.
        rows = db.execute(
            "SELECT NULL, value FROM meta WHERE key = 'log_from'"
            " UNION ALL SELECT path, NULL FROM change WHERE version > ?",
            (version[1],),
        ).fetchall()
        log_from = next((int(value) for path, value in rows if path is None), None)
        if log_from is None or version[1] < log_from:
            return None
        return frozenset(path for path, _ in rows if path is not None)

    @_reading
    def published_between(self, after: datetime, until: datetime) -> list[str]:
        """The bundles of the public articles published after `after` and up to `until`: those an
        embargo released between the two."""
        rows = self._rows(
            "SELECT path FROM bundle WHERE data IS NOT NULL AND published > ? AND published <= ?",
            (_seconds(after), _seconds(until)),
        )
        return [path for (path,) in rows]

    @_reading
    def next_release(self, now: datetime) -> datetime | None:
        """When the next embargoed article becomes public, if one is waiting."""
        row = self._row("SELECT MIN(published) FROM bundle WHERE data IS NOT NULL AND published > ?", (_seconds(now),))
        return None if row[0] is None else datetime.fromtimestamp(row[0], UTC)

    @_reading
    def problems(self) -> tuple[ContentError, ...]:
        """Every stored file that cannot be published as it stands, with the reason."""
        rows = self._rows(
            "SELECT 'site', value FROM meta WHERE key = 'site_error'"
            " UNION ALL SELECT slug, error FROM section WHERE error IS NOT NULL"
            " UNION ALL SELECT path, error FROM bundle WHERE error IS NOT NULL"
        )
        problems = [(where, _problem(line)) for where, error in rows for line in str(error).splitlines()]
        held = self._rows(
            "SELECT held.path, held.guid, keeper.path FROM bundle AS held"
            " LEFT JOIN bundle AS keeper ON keeper.guid = held.guid AND keeper.data IS NOT NULL"
            " WHERE held.held IS NOT NULL"
        )
        problems += [(path, _held_back(path, guid, keeper)) for path, guid, keeper in held]
        # Stable: a file's problems keep their order.
        return tuple(problem for _, problem in sorted(problems, key=lambda found: found[0]))

    # -- connections -------------------------------------------------------------

    def _rows(self, sql: str, parameters: Iterable[object] = ()) -> list[Any]:
        return self._db()[1].execute(sql, tuple(parameters)).fetchall()

    def _row(self, sql: str, parameters: Iterable[object] = ()) -> Any:
        return self._db()[1].execute(sql, tuple(parameters)).fetchone()

    def _db(self) -> tuple[int, sqlite3.Connection]:
        """This thread's connection to the current generation, checked at most every CHECK_SECONDS."""
        local = self._local
        now = time.monotonic()
        connection: sqlite3.Connection | None = getattr(local, "connection", None)
        if connection is not None and now < local.checked_at + CHECK_SECONDS:
            return local.generation, connection
        generation = self.files.current()
        if generation is None:
            self._forget()
            raise IndexUnavailable("the index is not built yet")
        if (generation, True) == (self._damaged[0], now < self._damaged[1]):
            # Found damaged here a moment ago: answer at once, rather than open it again for every
            # request and slow down the rebuild; look again after DAMAGED_PAUSE_SECONDS in case the
            # indexer found it sound.
            self._forget()
            raise IndexUnavailable(f"generation {generation} of the index is damaged; a new one is being built")
        problem = damage(self.files.database(generation))
        if problem is not None:
            # A connection already open may still read the file that was deleted: the last good state.
            if connection is not None and local.generation == generation and problem == MISSING:
                local.checked_at = now
                return generation, connection
            self._forget()
            raise IndexUnavailable(problem)
        if connection is None or local.generation != generation:
            self._forget()
            connection = open_reader(self.files.database(generation))
            local.connection, local.generation = connection, generation
        local.checked_at = now
        return generation, connection

    def _forget(self) -> int | None:
        """Closes this thread's connection; returns the generation it read, if it had one."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is None:
            return None
        with contextlib.suppress(sqlite3.Error):
            connection.close()
        generation: int = self._local.generation
        return generation


def open_reader(path: Path) -> sqlite3.Connection:
    """A connection that only reads an existing database, and never creates one."""
    connection = sqlite3.connect(
        f"file:{path}?mode=rw", uri=True, isolation_level=None, check_same_thread=False, timeout=READ_BUSY_SECONDS
    )
    try:
        connection.execute("PRAGMA query_only = ON")
        if connection.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            raise IndexUnavailable(f"{path.name} was written by another version of the publisher")
    except BaseException:
        connection.close()
        raise
    return connection


class Writer:
    """The indexer's connection to one generation: every write goes through here, in transactions."""

    def __init__(self, files: IndexFiles, generation: int, *, create: bool) -> None:
        self.files = files
        self.generation = generation
        self.path = files.database(generation)
        if create:
            self.files.remove(generation)
        self.connection = self._connect(create)
        #: While a new generation is filled (`unpublished`): shared GUIDs are settled at the end.
        self._filling = False
        try:
            self.inode = os.stat(self.path).st_ino
        except BaseException:
            self.connection.close()
            raise

    def _connect(self, create: bool) -> sqlite3.Connection:
        connection = sqlite3.connect(
            f"file:{self.path}?mode={'rwc' if create else 'rw'}", uri=True, isolation_level=None, timeout=30
        )
        try:
            if create:
                connection.execute(f"PRAGMA page_size = {PAGE_BYTES}")  # before the first table
                connection.execute("PRAGMA journal_mode = WAL")
                connection.executescript(_SCHEMA)
            elif connection.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"{self.path.name} has schema {SCHEMA_VERSION} missing")
            connection.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            connection.close()
            raise
        return connection

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.connection.close()

    def copy_of(self, source: sqlite3.Connection) -> None:
        """Makes this new generation a copy of the one `source` reads (SQLite's backup API). One
        written before PAGE_BYTES was its page size keeps its own: a backup cannot change the page
        size of a file in WAL mode, so the copy goes in under a rollback journal."""
        (page_bytes,) = source.execute("PRAGMA page_size").fetchone()
        if page_bytes == self.connection.execute("PRAGMA page_size").fetchone()[0]:
            source.backup(self.connection)
            return
        self._reconnect("DELETE")
        try:
            source.backup(self.connection)
        finally:
            self._reconnect("WAL")

    @contextlib.contextmanager
    def unpublished(self) -> Iterator[None]:
        """For filling a new generation that no reader opens yet.

        Its pages are written once, not to the write-ahead log and then again to the file (at a
        million bundles the log grew to 4.4 GB): a rollback journal in memory still undoes a failed
        transaction, and a build that dies is thrown away whole. More of its pages are cached, for
        the indexes that fill in another order than the bundles are read.

        The indexes in BUILT_AFTER are made at the end, each by one sort, and the articles that
        share a GUID are settled then, all at once (`Transaction.settle_every_guid`): inserted one
        bundle at a time, in an order of their own, they cost the writer a third more CPU at a
        million bundles. The topics are staged meanwhile and go in by one sort at the end too
        (`Transaction.unstage_topics`). The write-ahead log is back at the end, as readers need it.
        """
        self._reconnect("MEMORY")
        db = self.connection
        db.execute(f"PRAGMA cache_size = -{BUILD_CACHE_KIB}")
        indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'").fetchall()
        made_after = [sql for name, sql in indexes if name in BUILT_AFTER]
        try:
            for name in BUILT_AFTER:
                db.execute(f"DROP INDEX IF EXISTS {name}")
            db.execute(TOPICS_STAGED)
            self._filling = True
            yield
            with self.transaction() as tx:
                # Made again by one sort: the topics go in by topic, which is no order of paths.
                db.execute(f"DROP INDEX {TOPICS_BY_PATH}")
                tx.unstage_topics()
                db.execute(dict(indexes)[TOPICS_BY_PATH])
            self._filling = False
            with self.transaction() as tx:
                for sql in made_after:
                    db.execute(sql)
                tx.settle_every_guid()
                # What the generation holds now is its start: changes are logged from here on.
                tx.set_meta("log_from", int(tx.meta("version") or 0))
        finally:
            self._filling = False
            self._reconnect("WAL")

    def _reconnect(self, journal_mode: str) -> None:
        """A fresh connection in `journal_mode`: SQLite keeps the mode as it was, without a word,
        while any statement of the connection is open, and a lookup whose one row was read but not
        its end leaves its statement open."""
        self.connection.close()
        self.connection = self._connect(create=False)
        mode = self.connection.execute(f"PRAGMA journal_mode = {journal_mode}").fetchall()
        if mode != [(journal_mode.lower(),)]:
            raise sqlite3.OperationalError(f"{self.path.name}: journal mode {journal_mode} refused ({mode})")

    def damage(self) -> str | None:
        """Why this generation can no longer be trusted: its file gone, replaced, truncated or overwritten."""
        problem = damage(self.path)
        if problem is None:
            try:
                if os.stat(self.path).st_ino != self.inode:
                    return REPLACED
            except OSError:
                return MISSING
        return problem

    def paths_in(self, section: str) -> list[str]:
        """Every bundle stored under a section folder ("section/slug"), in order."""
        rows = self.connection.execute(
            "SELECT path FROM bundle WHERE path >= ? AND path < ? ORDER BY path", _section_range(section)
        )
        return [path for (path,) in rows]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One write transaction: all of it is stored, or none of it."""
        db = self.connection
        db.execute("BEGIN IMMEDIATE")
        try:
            tx = Transaction(db, filling=self._filling)
            yield tx
            unused = tx.photos_unused()
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        for problem in tx.held_back.values():
            log.warning("%s", problem)
        # Only once no stored article has them: a rendition removed too early is made again, but
        # one of an article that failed to store would be gone for nothing.
        renditions.discard(self.files.cache_dir, unused)

    def photo_in_use(self, photo: str) -> bool:
        """Whether a stored article (published, embargoed, held back, or a broken save's last good
        version) has the photo with this digest."""
        return _photo_in_use(self.connection, photo)


class Transaction:
    """Reads and writes inside one of the indexer's transactions."""

    def __init__(self, db: sqlite3.Connection, filling: bool = False) -> None:
        self.db = db
        #: A new generation is being filled: shared GUIDs are settled at its end, and nothing is logged.
        self.filling = filling
        #: Bundles whose article was held back or published again in this transaction, because
        #: an article that shares its GUID came or went (a bundle held back as it is stored, too).
        self.regrouped: set[str] = set()
        #: Digests of photos some stored article had before this transaction and has no more.
        self._photos_dropped: set[str] = set()
        #: Bundles whose stored article this transaction changed: logged with its version.
        self._changed: set[str] = set()
        #: Bundles this transaction held back for a shared GUID and did not release again, with
        #: why: logged once it commits. A bundle renamed is stored under its new name before its
        #: old one is removed, and is held back only for that moment.
        self.held_back: dict[str, ContentError] = {}

    def meta(self, key: str) -> bytes | str | int | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: bytes | str | int | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def site(self) -> Site | None:
        stored = self.meta("site")
        return _decode_site(stored) if isinstance(stored, bytes) else None

    def store_site(self, site: Site | None, signature: str, problem: str | None) -> Site:
        """Stores the site's settings; with `site` None (a broken file) the last good ones stay.

        Returns the settings in force. A new time zone marks every article for reading again,
        since every date written without a zone is read in it; articles depend on nothing else.
        """
        stored = self.site()
        in_force = site or stored or DEFAULT_SITE
        if in_force != stored:
            if stored is None or in_force.timezone != stored.timezone:
                self.db.execute("UPDATE bundle SET signature = ''")
            self.set_meta("site", _encode(in_force))
        self.set_meta("site_signature", signature)
        self.set_meta("site_error", problem)
        return in_force

    def site_signature(self) -> str | None:
        stored = self.meta("site_signature")
        return stored if isinstance(stored, str) else None

    def sections(self) -> dict[str, tuple[str, bool]]:
        """Each stored section's signature, and whether it is published."""
        rows = self.db.execute("SELECT slug, signature, data IS NOT NULL FROM section")
        return {slug: (signature, bool(published)) for slug, signature, published in rows}

    def store_section(self, slug: str, signature: str, section: Section | None, problem: str | None) -> bool:
        """Stores a section; with `section` None for a broken file its last good settings stay.

        Returns whether the section is published.
        """
        if section is None and problem is not None:
            self.db.execute(
                "INSERT INTO section VALUES (?, ?, NULL, ?)"
                " ON CONFLICT (slug) DO UPDATE SET signature = excluded.signature, error = excluded.error",
                (slug, signature, problem),
            )
        else:
            data = None if section is None else _encode(section)
            self.db.execute("INSERT OR REPLACE INTO section VALUES (?, ?, ?, ?)", (slug, signature, data, problem))
        row = self.db.execute("SELECT data IS NOT NULL FROM section WHERE slug = ?", (slug,)).fetchone()
        return bool(row[0])

    def remove_section(self, slug: str) -> None:
        self.db.execute("DELETE FROM section WHERE slug = ?", (slug,))

    def published_sections(self) -> set[str]:
        return {slug for (slug,) in self.db.execute("SELECT slug FROM section WHERE data IS NOT NULL")}

    def signatures_in(self, section: str) -> dict[str, str]:
        """The stored signature of every bundle in a section's folder."""
        query = "SELECT path, signature FROM bundle WHERE path >= ? AND path < ?"
        rows = self.db.execute(query, _section_range(section))
        return dict(rows.fetchall())

    def stored_sections(self) -> list[str]:
        """The folders that stored bundles are in: a seek in the path index for each, not a scan."""
        found: list[str] = []
        row = self.db.execute("SELECT MIN(path) FROM bundle").fetchone()
        while row is not None and row[0] is not None:
            found.append(row[0].partition("/")[0])
            after = _section_range(found[-1])[1]
            row = self.db.execute("SELECT MIN(path) FROM bundle WHERE path >= ?", (after,)).fetchone()
        return found

    def signatures(self, paths: Iterable[str]) -> dict[str, str]:
        """The stored signature of each bundle named (whole passes read a section at a time: `signatures_in`)."""
        found: dict[str, str] = {}
        for path in paths:
            row = self.db.execute("SELECT signature FROM bundle WHERE path = ?", (path,)).fetchone()
            if row is not None:
                found[path] = row[0]
        return found

    def store(self, bundle: Bundle) -> None:
        """Stores what was read of a bundle. A bundle that became unreadable or invalid keeps its
        last good version, published, with the error beside it; a draft is removed from view."""
        if bundle.error is not None:
            log.warning("%s", bundle.error)
            self.db.execute(
                "INSERT INTO bundle (path, section, signature, error) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (path) DO UPDATE SET signature = excluded.signature, error = excluded.error",
                (bundle.path, bundle.section, bundle.signature, bundle.error),
            )
            return
        # Published, with the photos it goes out without named as its problems.
        if bundle.left_out is not None:
            log.warning("%s", bundle.left_out)
        stored, guid, photos = self._stored(bundle.path)
        self.held_back.pop(bundle.path, None)  # settled again below
        self.db.execute(
            "INSERT OR REPLACE INTO bundle (path, section, signature, published, data, error, guid, photos)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                bundle.path, bundle.section, bundle.signature, bundle.published, bundle.data, bundle.left_out,
                bundle.guid, " ".join(bundle.photos),
            ),
        )  # fmt: skip
        self._photos_changed(bundle.path, photos, bundle.photos)
        self._touch(bundle.path)
        topics = [(slug, bundle.published, bundle.path, name) for slug, name in bundle.topics]
        if self.filling and not stored:
            # A new generation's topics wait in a table of their own, in the order they come, and
            # go into `topic` by one sort at its end (`unstage_topics`): a bundle new to it has none.
            if bundle.data is not None:
                self.db.executemany("INSERT INTO temp.topic_filling VALUES (?, ?, ?, ?)", topics)
        else:
            self.unstage_topics()
            self.db.execute("DELETE FROM topic WHERE path = ?", (bundle.path,))
            if bundle.data is not None:
                self.db.executemany("INSERT INTO topic VALUES (?, ?, ?, ?)", topics)
        for key in {guid, bundle.guid}:
            if key is not None:
                self._settle(key)

    def adopt(self, path: str, signature: str) -> None:
        """Keeps a bundle as stored, under this node's signature of the same files."""
        self.db.execute("UPDATE bundle SET signature = ? WHERE path = ?", (signature, path))

    def remove(self, path: str) -> None:
        _, guid, photos = self._stored(path)
        self.unstage_topics()
        self.db.execute("DELETE FROM bundle WHERE path = ?", (path,))
        self.db.execute("DELETE FROM topic WHERE path = ?", (path,))
        self.held_back.pop(path, None)
        self._photos_changed(path, photos, ())
        self._touch(path)
        if guid is not None:
            self._settle(guid)

    def photos_unused(self) -> set[str]:
        """Digests of the photos that stored articles had before this transaction and none has now."""
        return {photo for photo in self._photos_dropped if not _photo_in_use(self.db, photo)}

    def _stored(self, path: str) -> tuple[bool, str | None, tuple[str, ...]]:
        """Whether a bundle is stored, and the GUID key and the photos of its article."""
        rows = self.db.execute("SELECT guid, photos FROM bundle WHERE path = ?", (path,)).fetchall()
        if not rows:
            return False, None, ()
        guid, photos = rows[0]
        return True, guid, tuple(photos.split()) if photos else ()

    def unstage_topics(self) -> None:
        """Moves the topics staged while a new generation is filled into `topic`, in its order.

        Done at the end of the filling, and before a bundle's topics are replaced or removed
        (a bundle stored twice in one filling, or a copied generation's). Inserted one bundle at
        a time, in the order bundles are read, the rows went into the table's key (slug, published,
        path) and into topic_by_path in no order of either: at a million bundles the writer took
        82 CPU-s that way and 76 CPU-s this way, in one measurement each on a noisy machine.
        """
        if self.filling:
            self.db.execute("INSERT INTO topic SELECT * FROM temp.topic_filling ORDER BY slug, published, path")
            self.db.execute("DELETE FROM temp.topic_filling")

    def _photos_changed(self, path: str, before: tuple[str, ...], after: tuple[str, ...]) -> None:
        if before == after:
            return
        gone = set(before) - set(after)
        self.db.executemany("DELETE FROM photo WHERE digest = ? AND path = ?", [(photo, path) for photo in gone])
        self.db.executemany(
            "INSERT OR IGNORE INTO photo VALUES (?, ?)", [(photo, path) for photo in set(after) - set(before)]
        )
        self._photos_dropped |= gone

    def _settle(self, guid: str) -> None:
        """Of the stored articles that share a GUID, publishes the one published first (then the
        first by path, so that every node agrees whatever order it read them in) and holds back the
        others: readers keep one item per GUID, so a second one would reach few subscribers, or
        replace the first in their lists. `Store.problems` names each one held back."""
        if self.filling:
            return
        rows = self.db.execute(
            "SELECT path, data IS NOT NULL FROM bundle WHERE guid = ? ORDER BY published, path", (guid,)
        ).fetchall()
        for rank, (path, public) in enumerate(rows):
            if rank == 0 and not public:
                self._release(path)
            elif rank > 0 and public:
                self.held_back[path] = _held_back(path, guid, rows[0][0])
                self._hold(path)

    def settle_every_guid(self) -> None:
        """Settles every GUID that stored articles share, as `_settle` does one."""
        shared = self.db.execute(
            "SELECT guid FROM bundle WHERE guid IS NOT NULL GROUP BY guid HAVING COUNT(*) > 1"
        ).fetchall()
        for (guid,) in shared:
            self._settle(guid)

    def _hold(self, path: str) -> None:
        # Every query of published articles asks for `data IS NOT NULL`: moved aside, the
        # article is in no feed, page or count, and its topics go with it.
        self.db.execute("UPDATE bundle SET held = data, data = NULL WHERE path = ?", (path,))
        self.db.execute("DELETE FROM topic WHERE path = ?", (path,))
        self.regrouped.add(path)
        self._touch(path)

    def _release(self, path: str) -> None:
        self.held_back.pop(path, None)
        ((data, published),) = self.db.execute(
            "UPDATE bundle SET data = held, held = NULL WHERE path = ? RETURNING data, published", (path,)
        ).fetchall()
        self.db.executemany(
            "INSERT INTO topic VALUES (?, ?, ?, ?)",
            [(topic.slug, published, path, topic.name) for topic in _decode_article(data).topics],
        )
        self.regrouped.add(path)
        self._touch(path)

    def bump_version(self, changed: bool) -> int:
        """Raises the content version if anything changed (and on the first pass); returns it, and
        logs the bundles changed under it."""
        version = int(self.meta("version") or 0)
        if changed or version == 0 or self._changed:
            version += 1
            self.set_meta("version", version)
            self.set_meta("changed_at", int(time.time()))
            self._log(version)
        return version

    def _touch(self, path: str) -> None:
        if not self.filling:  # a new generation is filled unlogged: it is nobody's change
            self._changed.add(path)

    def _log(self, version: int) -> None:
        """Logs the bundles this transaction changed under `version`; a change too large to log
        starts the log again."""
        if self.filling:
            return
        if len(self._changed) > CHANGE_LOG_LIMIT:  # read as a module global, for the tests
            self.db.execute("DELETE FROM change")
            self.set_meta("log_from", version)
        else:
            self.db.executemany("INSERT OR IGNORE INTO change VALUES (?, ?)", [(version, p) for p in self._changed])
        if version % CHANGE_LOG_PRUNE_EVERY == 0:
            oldest = version - CHANGE_LOG_VERSIONS
            if oldest > int(self.meta("log_from") or 0):
                self.db.execute("DELETE FROM change WHERE version <= ?", (oldest,))
                self.set_meta("log_from", oldest)
        self._changed.clear()


def _section_range(section: str) -> tuple[str, str]:
    """Where a section's bundles lie in the path index, from the first bound up to the second.

    Paths are "section/slug", and "/" sorts just before "0": the range holds exactly the paths
    that start with "section/", whatever other section names begin the same way.
    """
    return f"{section}/", f"{section}0"


def _scope_sql(section: str | None, topic: str | None) -> tuple[str, str, str, tuple[str, ...]]:
    """Where one scope's published articles are: tables, publication column, condition, parameters."""
    if topic is not None:
        where = "topic.slug = ? AND bundle.data IS NOT NULL"
        return "topic JOIN bundle USING (path)", "topic.published", where, (topic,)
    if section is not None:
        return "bundle", "bundle.published", "bundle.data IS NOT NULL AND bundle.section = ?", (section,)
    return "bundle", "bundle.published", "bundle.data IS NOT NULL", ()


def _moment(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _photo_in_use(db: sqlite3.Connection, photo: str) -> bool:
    return bool(db.execute("SELECT 1 FROM photo WHERE digest = ? LIMIT 1", (photo,)).fetchall())


def _held_back(path: str, guid: str, keeper: str | None) -> ContentError:
    return ContentError(
        f"{path}/{ARTICLE_FILE}",
        f"held back: it shares its GUID (…,{guid}) with {keeper}, published before it, and readers show one"
        " item per GUID: give it an id of its own",
    )


def _problem(line: str) -> ContentError:
    path, _, reason = line.partition(": ")
    return ContentError(path, reason)
