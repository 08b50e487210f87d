"""What a static export knows of its OUTDIR, kept in an SQLite file in the cache directory.

For every file: a fingerprint of what it was made from, the digest of its bytes, and its size,
modification time and inode. For the run as a whole: where it stood (`Since`), and the month,
section and topics of every public article it exported. A run after one edit reads and writes a
few rows of it, not the whole (at 100k articles a manifest of one piece was 57 MB, read and
written again by every run).

Nothing a run changes is stored before `Manifest.save`, which the export calls once the files are
synced, in one transaction: after a crash the manifest is the one before the run, and the files
newer than it are found by their inode, size and time.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

log = logging.getLogger(__name__)

#: Bumped when the manifest's meaning changes; an older one is taken as none.
MANIFEST_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS file (
    name TEXT PRIMARY KEY, inputs TEXT, digest TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, gzipped INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS article (
    path TEXT PRIMARY KEY, month TEXT NOT NULL, section TEXT NOT NULL, topics BLOB NOT NULL) WITHOUT ROWID;
"""

#: Where a public article stood: its month, its section and its topics.
Position = tuple[str, str, tuple[str, ...]]


class Entry(msgspec.Struct, array_like=True, frozen=True):
    """What the manifest knows of one exported file."""

    #: A fingerprint of everything the file was made from; None: to be looked at next time.
    inputs: str | None
    #: Of the bytes (for a photo, of the photo's version).
    digest: str
    size: int
    mtime_ns: int
    inode: int
    #: Whether a .gz lies beside it.
    gzipped: bool


class Since(msgspec.Struct, array_like=True, frozen=True):
    """Where the last run stood, so that the next need look only at what changed after it."""

    #: The index's generation and content version when the run began.
    generation: int
    version: int
    #: The clock then, in seconds since the epoch.
    now: float
    #: A fingerprint of the code, base URL, site and sections the run exported with.
    common: str
    #: OUTDIR itself then (device and inode): one removed and made again is not the one the
    #: files were written to. Empty in manifests written before it was kept.
    outdir: str = ""


_encode = msgspec.msgpack.Encoder().encode
_decode_since = msgspec.msgpack.Decoder(Since).decode
_decode_topics = msgspec.msgpack.Decoder(tuple[str, ...]).decode
_decode_paths = msgspec.msgpack.Decoder(list[str]).decode


class Manifest:
    """The manifest of one OUTDIR for one base URL; one exporter's, used under its lock.

    Entries are read as they are asked for and kept until `save`; `everything` reads them all (a
    whole run).
    """

    def __init__(self, path: Path, base_url: str) -> None:
        self.path = path
        self.base_url = base_url
        self._db = self._open()
        stored = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if stored.get("version") != MANIFEST_VERSION or stored.get("base_url") != base_url:
            stored = {}
            with self._transaction():
                self._db.execute("DELETE FROM file")
                self._db.execute("DELETE FROM article")
                self._db.execute("DELETE FROM meta")
        #: Where the last run stood; a run sets it, and `save` stores it with the run's changes.
        self.since: Since | None = None
        with contextlib.suppress(KeyError, msgspec.DecodeError):
            self.since = _decode_since(stored["since"])
        #: The change keys of what could not be made (articles some of whose files could not be,
        #: "article:/innlent/slug/", and documents, "page:/feeds/rss.xml"; manifests before these
        #: kept an article's path alone): the next run, of whatever kind, looks at them again.
        #: Stored by `save` too.
        self.unmade: set[str] = set()
        with contextlib.suppress(KeyError, msgspec.DecodeError):
            self.unmade = set(_decode_paths(stored["unmade"]))
        #: How many files the manifest holds, with this run's changes.
        self.count = int(stored.get("files", 0))
        #: Entries read or changed in this process; None: known not to be there.
        self._entries: dict[str, Entry | None] = {}
        self._complete = False
        self._changed: set[str] = set()
        #: Positions read or changed in this process, likewise; and which changed.
        self._positions: dict[str, Position | None] = {}
        self._positions_changed: set[str] = set()
        #: Whether every stored position goes at the next save (a whole run placed them all).
        self._replace_positions = False

    def _open(self) -> sqlite3.Connection:
        for attempt in range(2):
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            try:
                db.executescript(_SCHEMA)
                db.execute("SELECT COUNT(*) FROM meta").fetchall()
                return db
            except sqlite3.DatabaseError as error:
                db.close()
                if attempt:
                    raise
                # Damaged or not a manifest: every file is looked at again, and nothing is lost.
                log.warning("%s: not used (%s); every file is looked at", self.path, error)
                for suffix in ("", "-journal", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        Path(f"{self.path}{suffix}").unlink()
        raise AssertionError("unreachable")

    # -- files -----------------------------------------------------------------------------

    def get(self, name: str) -> Entry | None:
        if name in self._entries:
            return self._entries[name]
        if self._complete:
            return None
        row = self._db.execute("SELECT * FROM file WHERE name = ?", (name,)).fetchone()
        entry = None if row is None else _entry(row)
        self._entries[name] = entry
        return entry

    def put(self, name: str, entry: Entry) -> None:
        if self.get(name) is None:
            self.count += 1
        self._entries[name] = entry
        self._changed.add(name)

    def pop(self, name: str) -> Entry | None:
        """Forgets a file; returns what was known of it."""
        entry = self.get(name)
        if entry is not None:
            self.count -= 1
            self._entries[name] = None
            self._changed.add(name)
        return entry

    def everything(self) -> list[str]:
        """Every file's name (all entries are read)."""
        if not self._complete:
            for row in self._db.execute("SELECT * FROM file"):
                self._entries.setdefault(row[0], _entry(row))
            self._complete = True
        return [name for name, entry in self._entries.items() if entry is not None]

    def under(self, prefixes: Collection[str]) -> list[str]:
        """The names of the files that begin with any of these ("innlent/slug/", "feeds/archive/2023-09")."""
        found: set[str] = set()
        for prefix in prefixes:
            for row in self._db.execute("SELECT * FROM file WHERE name >= ? AND name < ?", _range(prefix)):
                self._entries.setdefault(row[0], _entry(row))
                found.add(row[0])
        if prefixes:
            starts = tuple(prefixes)
            found.update(name for name in self._changed if name.startswith(starts))
        return sorted(name for name in found if self._entries.get(name) is not None)

    # -- articles --------------------------------------------------------------------------

    def positions(self, paths: Collection[str]) -> dict[str, Position]:
        """Where each of these articles stood when last exported, for those that were public."""
        found: dict[str, Position] = {}
        for path in paths:
            if path not in self._positions and not self._replace_positions:
                row = self._db.execute("SELECT month, section, topics FROM article WHERE path = ?", (path,)).fetchone()
                self._positions[path] = None if row is None else (row[0], row[1], _decode_topics(row[2]))
            position = self._positions.get(path)
            if position is not None:
                found[path] = position
        return found

    def place(self, positions: Mapping[str, Position | None], every: bool = False) -> None:
        """Records where articles stand now (None: not public); with `every`, these are all there are."""
        if every:
            self._positions, self._positions_changed = {}, set()
            self._replace_positions = True
        self._positions.update(positions)
        self._positions_changed.update(positions)

    # -- storing ---------------------------------------------------------------------------

    def save(self) -> None:
        """Stores this run's changes, and where it stood (`since`), in one transaction."""
        db = self._db
        with self._transaction():
            if self._replace_positions:
                db.execute("DELETE FROM article")
            placed = {path: self._positions.get(path) for path in self._positions_changed}
            unplaced = [(path,) for path, where in placed.items() if not where]
            db.executemany("DELETE FROM article WHERE path = ?", unplaced)
            db.executemany(
                "INSERT OR REPLACE INTO article VALUES (?, ?, ?, ?)",
                [(path, *where[:2], _encode(where[2])) for path, where in placed.items() if where],
            )
            removed = [(name,) for name in self._changed if self._entries.get(name) is None]
            db.executemany("DELETE FROM file WHERE name = ?", removed)
            db.executemany(
                "INSERT OR REPLACE INTO file VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (name, *msgspec.structs.astuple(entry))
                    for name in self._changed
                    if (entry := self._entries.get(name)) is not None
                ],
            )
            meta = {"version": MANIFEST_VERSION, "base_url": self.base_url, "files": self.count}
            meta["unmade"] = _encode(sorted(self.unmade))
            if self.since is not None:
                meta["since"] = _encode(self.since)
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
            if self.since is None:
                db.execute("DELETE FROM meta WHERE key = 'since'")
        self._changed.clear()
        # Read for one run: the next asks again for what it needs. A watching export lives for weeks,
        # and after a whole run at 100k articles the entries alone held about 170 MiB.
        self._entries, self._complete = {}, False
        self._positions, self._positions_changed, self._replace_positions = {}, set(), False

    @property
    def held(self) -> int:
        """How many files' entries and articles' positions this process keeps in memory."""
        return len(self._entries) + len(self._positions)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """All of it or none of it. (The connection is in autocommit mode, where `with connection`
        would commit every statement on its own: a whole run's rows took 18 s at 10k articles.)"""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()


def _entry(row: Any) -> Entry:
    """An entry from its row (its name first)."""
    return Entry(row[1], row[2], row[3], row[4], row[5], bool(row[6]))


def _range(prefix: str) -> tuple[str, str]:
    """Names that begin with `prefix` lie from it up to the name with its last letter the next one."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)
