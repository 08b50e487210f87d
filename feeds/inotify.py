"""File notifications from Linux's inotify, read directly: a content folder, its sections and
(optionally) its bundles, with each rename as one notice the moment the kernel reports it.

A library was used here before (watchdog). It held every rename up to half a second to pair its
two halves, and a bundle renamed within the tree could drop out of the feeds meanwhile; it said
that the kernel's queue overflowed only in a log record; and it walked into every bundle at start
to watch folders that hold no content. The kernel reports both halves of a rename one after the
other, so pairing needs no more than one more look at the queue.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import errno
import logging
import os
import select
import struct
from dataclasses import dataclass

log = logging.getLogger(__name__)

# From <sys/inotify.h>.
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_DONT_FOLLOW = 0x2000000
IN_EXCL_UNLINK = 0x4000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

#: What each watched folder reports: files written, closed, made, removed and renamed; and its
#: own removal or renaming (which matters only for the content folder itself).
_CHANGES = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
MASK = _CHANGES | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK
#: How long a rename's first half waits for its second when the queue held only the first.
PAIR_WAIT_SECONDS = 0.005
_HEADER = struct.Struct("iIII")
_BUFFER = 256 * 1024


class Kind(enum.Enum):
    #: A file was closed after writing: whole, as far as this writer goes.
    CLOSED = "closed"
    #: A file was written to, or its times changed: any earlier close no longer vouches for it.
    WRITTEN = "written"
    #: Something was made or removed (or moved out of the tree: it is gone from here).
    CHANGED = "changed"
    #: Something was renamed into place: `path` is where it is now, `source` where it was (None if
    #: it came from outside the watched tree).
    MOVED = "moved"
    #: The kernel's queue overflowed and notifications were lost: anything may have changed.
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Notice:
    kind: Kind
    path: str
    directory: bool = False
    source: str | None = None


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


def _checked(result: int, what: str) -> int:
    if result < 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")
    return result


class Notifications:
    """Watches `root` and the folders below it down to `depth` levels (1: the sections; 2: the
    sections' bundles too), skipping hidden and `_` folders, and follows folders as they are made,
    renamed and removed. Not thread-safe: one reader.

    Watched folders are kept by their path inside `root` ("" for the root itself), to keep a
    million of them small.
    """

    def __init__(self, root: str, depth: int) -> None:
        self.root = root.rstrip("/") or "/"
        self.depth = depth
        self._fd = _checked(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1")
        #: Each watched folder's path, at its watch descriptor: the kernel numbers them from 1 up,
        #: so a list is the smallest map (a million paths: about 80 MB; two dicts took 180 MB).
        self._paths: list[str | None] = [None]
        self._count = 0
        #: Whether the root itself was removed or renamed: what is watched is not `root` any more.
        self.lost_root = False
        #: Folders left unwatched because the kernel's limit on watches was reached.
        self.refused = 0
        try:
            self._watch_tree("", 0)
        except BaseException:
            self.close()
            raise
        if not self._count:
            self.close()
            if self.refused:
                raise OSError(errno.ENOSPC, f"cannot watch {self.root}: the kernel's limit on watches is reached")
            raise OSError(errno.ENOENT, f"cannot watch {self.root}: it is not a readable folder")

    @property
    def watches(self) -> int:
        return self._count

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Notifications:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def read(self, timeout: float) -> list[Notice]:
        """Waits up to `timeout` seconds for a notification, then returns every one queued, in order."""
        if not self._ready(timeout):
            return []
        raw = self._drain()
        # The kernel queues a rename's two halves one after the other, but a read may fall between.
        if raw and raw[-1][1] & IN_MOVED_FROM and self._ready(PAIR_WAIT_SECONDS):
            raw.extend(self._drain())
        return self._notices(raw)

    # -- reading ------------------------------------------------------------------

    def _ready(self, timeout: float) -> bool:
        try:
            readable, _, _ = select.select([self._fd], [], [], max(timeout, 0.0))
        except InterruptedError:
            return False
        return bool(readable)

    def _drain(self) -> list[tuple[int, int, int, str]]:
        """Every event queued now: (watch, mask, cookie, name)."""
        found: list[tuple[int, int, int, str]] = []
        while True:
            try:
                data = os.read(self._fd, _BUFFER)
            except BlockingIOError:
                return found
            offset = 0
            while offset < len(data):
                wd, mask, cookie, length = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                name = os.fsdecode(data[offset : offset + length].rstrip(b"\0"))
                offset += length
                found.append((wd, mask, cookie, name))

    def _notices(self, raw: list[tuple[int, int, int, str]]) -> list[Notice]:
        notices: list[Notice] = []
        sources: dict[int, tuple[str, bool]] = {}  # a rename's first half, by cookie, until its second
        for wd, mask, cookie, name in raw:
            if mask & IN_Q_OVERFLOW:
                # Whatever else came is moot (a whole pass follows), and its descriptors are the old ones.
                self._rewatch()
                return [*notices, Notice(Kind.LOST, self.root, True)]
            if mask & IN_IGNORED:
                self._forget(wd)
                continue
            folder = self._paths[wd] if 0 < wd < len(self._paths) else None
            if folder is None:
                continue
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT):
                # Below the root, the parent's notice of the same change is the one that counts.
                if folder == "":
                    self.lost_root = True
                    notices.append(Notice(Kind.CHANGED, self.root, True))
                continue
            path = f"{folder}/{name}" if folder else name
            directory = bool(mask & IN_ISDIR)
            if mask & IN_MOVED_FROM:
                sources[cookie] = (path, directory)
            elif mask & IN_MOVED_TO:
                source = sources.pop(cookie, None)
                if directory:
                    self._moved(None if source is None else source[0], path)
                origin = None if source is None else self._absolute(source[0])
                notices.append(Notice(Kind.MOVED, self._absolute(path), directory, origin))
            elif mask & IN_CLOSE_WRITE:
                notices.append(Notice(Kind.CLOSED, self._absolute(path), directory))
            elif mask & (IN_MODIFY | IN_ATTRIB):
                notices.append(Notice(Kind.WRITTEN, self._absolute(path), directory))
            else:  # made or removed
                if directory and mask & IN_CREATE:
                    self._watch_tree(path, _level(path))
                notices.append(Notice(Kind.CHANGED, self._absolute(path), directory))
        for path, directory in sources.values():  # moved out of the tree: gone from here
            if directory:
                self._unwatch_tree(path)
            notices.append(Notice(Kind.CHANGED, self._absolute(path), directory))
        return notices

    def _absolute(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    # -- watches --------------------------------------------------------------------

    def _watch_tree(self, path: str, level: int) -> None:
        """Watches `path` and the content folders below it down to `depth`, a level at a time (so
        that, at the kernel's limit, the sections are watched before any bundle). A folder that
        went meanwhile is skipped (its removal is notified), and so is one past the limit (the
        rolling verification finds edits there)."""
        layer = [path]
        while layer and level <= self.depth:
            below: list[str] = []
            for folder in layer:
                if self._watch(folder) and level < self.depth:
                    below += (f"{folder}/{name}" if folder else name for name in _subfolders(self._absolute(folder)))
            layer, level = below, level + 1

    def _watch(self, path: str) -> bool:
        """Watches one folder unless it is hidden or `_`; whether it is watched."""
        if path.rpartition("/")[2][:1] in (".", "_"):
            return False
        absolute = self._absolute(path)
        try:
            wd = _checked(_libc.inotify_add_watch(self._fd, os.fsencode(absolute), MASK), absolute)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                if not self.refused:
                    log.warning(
                        "the kernel's limit on inotify watches is reached: %s and others are not watched", absolute
                    )
                self.refused += 1
                return False
            if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                return False
            raise
        if wd >= len(self._paths):
            self._paths.extend([None] * (wd + 1 - len(self._paths)))
        if self._paths[wd] is None:
            self._count += 1
        # The same folder watched again (renamed, say) keeps its descriptor: only its path changes.
        self._paths[wd] = path
        return True

    def _moved(self, source: str | None, target: str) -> None:
        """Follows a folder renamed to `target`: its watches keep their folders, under new names."""
        if not self._wanted(target):  # renamed to a hidden name, say: not content any more
            if source is not None:
                self._unwatch_tree(source)
            return
        if source is not None and _level(source) < self.depth:
            # A section: the watches of its bundles are renamed too (a look at every watch, but rare).
            prefix = source + "/"
            for wd, old in enumerate(self._paths):
                if old is not None and old.startswith(prefix):
                    self._paths[wd] = target + old[len(source) :]
        # The folder itself keeps its descriptor, which watching it at its new path finds.
        self._watch_tree(target, _level(target))

    def _wanted(self, path: str) -> bool:
        parts = path.split("/")
        return len(parts) <= self.depth and not any(part[:1] in (".", "_") for part in parts)

    def _unwatch_tree(self, path: str) -> None:
        """Stops watching a folder that left the tree, and the folders below it."""
        if _level(path) >= self.depth:
            try:  # the one descriptor, found by a scan in C rather than a second map
                wanted = [self._paths.index(path)]
            except ValueError:
                return
        else:
            prefix = path + "/"
            wanted = [wd for wd, old in enumerate(self._paths) if old == path or (old and old.startswith(prefix))]
        for wd in wanted:
            self._forget(wd)
            _libc.inotify_rm_watch(self._fd, wd)  # fails harmlessly if the kernel dropped it already

    def _forget(self, wd: int) -> None:
        if 0 < wd < len(self._paths) and self._paths[wd] is not None:
            self._paths[wd] = None
            self._count -= 1

    def _rewatch(self) -> None:
        """After lost notifications, the watches may not match the folders: start again, with a
        new descriptor (which numbers its watches from 1 again)."""
        os.close(self._fd)
        self._fd = _checked(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1")
        self._paths, self._count = [None], 0
        self._watch_tree("", 0)


def _subfolders(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _level(path: str) -> int:
    """How deep a folder is: 0 for the root (""), 1 for a section, 2 for a bundle."""
    return path.count("/") + 1 if path else 0
