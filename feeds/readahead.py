"""Reading ahead of a pass's worker processes, so that they seldom wait on the disk.

In a first build from a cold page cache each worker read a bundle's folder, inodes and files one
after the other, waiting for each read: a quarter of two cores' time was spent waiting (100k
articles: 44 s, against 23 s with the files in memory). Threads now ask for the bundles that
workers will read next: they list each folder, open its article file and photos (which reads
their inodes) and ask the kernel to read their bytes in (`posix_fadvise(WILLNEED)`, which does not
wait for them). The workers then find them in memory. Nothing is read twice from disk: what is
asked for is what a worker reads a moment later.

Those threads run in a process of their own (`ReadAheadProcess`), forked from the indexer's. In
the indexer's process they took turns with the thread that stores what the workers read: each of
their system calls let go of Python's lock and then waited to take it back. A first build of a
million articles from a cold page cache took 301.9 s and 580 CPU-s that way, and 270.2 s and 520
CPU-s with the threads in a process of their own (two builds, one just after the other).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, Pipe

from .liveness import end_with_parent

#: Threads that read ahead: reads in flight at once, for a disk that serves several.
THREADS = 2
#: Asking for a folder whose files are all in memory takes 17-47 µs (p10-p99 of 20,000 on this
#: machine); one whose files are on the disk 131-423 µs.
IN_MEMORY_SECONDS = 80e-6
#: Folders passed over after one found in memory.
SKIP = 15
#: The pipe to a `ReadAheadProcess`: about 25,000 folders' paths (1 MiB, what Linux allows a
#: process without privileges by default).
PIPE_BYTES = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class ReadAhead:
    """Asks for the files of the bundle folders it is given, in order, in threads of its own.

    Only a hint: a folder that cannot be read is passed over (its worker will say why).
    """

    def __init__(self, wanted: Callable[[str], bool], threads: int = THREADS) -> None:
        self._wanted = wanted
        self._folders: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"read-ahead-{number}", daemon=True) for number in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def add(self, folders: Iterable[str]) -> None:
        for folder in folders:
            self._folders.put(folder)

    def close(self) -> None:
        """Drops what is queued, without waiting: a thread caught in a call that does not return
        (a folder on a mount gone dead, whose worker is ended by its timer) must not hold up the
        pass. Each thread ends once its call returns."""
        self._closed = True
        for _ in self._threads:
            self._folders.put(None)

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        skip = 0
        while (folder := self._folders.get()) is not None:
            if self._closed:
                continue
            if skip:
                skip -= 1
                continue
            started = time.perf_counter()
            # Found in memory (a build over files read a moment ago): asking costs this process as
            # much as reading them does a worker, for nothing. Ask for one folder in
            # SKIP + 1 then, until one has to come from the disk again.
            if self._ask_for(folder) and time.perf_counter() - started < IN_MEMORY_SECONDS:
                skip = SKIP

    def _ask_for(self, folder: str) -> bool:
        """Whether every file of the folder was asked for."""
        try:
            with os.scandir(folder) as entries:
                names = [entry.name for entry in entries if self._wanted(entry.name)]
            for name in names:
                descriptor = os.open(os.path.join(folder, name), _OPEN_FLAGS)
                try:
                    os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_WILLNEED)
                finally:
                    os.close(descriptor)
        except OSError:
            return False  # a hint only: the worker that reads this folder meets the same fault and names it
        return True


class ReadAheadProcess:
    """A `ReadAhead` in a process of its own, forked from this one; the same promises.

    Adding folders never waits on the disk, and closing never waits for the process: it is killed,
    and reaped by a thread once it has ended (a call on a mount gone dead ends only when it returns).
    The process holds no file this one had open but its end of the pipe (not the index's lock, which
    an open file keeps held), and it ends when this process does.
    """

    def __init__(self, wanted: Callable[[str], bool], threads: int = THREADS) -> None:
        reader, self._writer = Pipe(duplex=False)
        parent = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:
            _serve(reader, parent, wanted, threads)  # never returns
        reader.close()
        self._closed = False
        # Room for a few passes' worth of folders; full (the process stopped or starved), it is
        # behind and is ended: a pass never waits for its hints.
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._writer.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self._writer.fileno(), False)

    def add(self, folders: Iterable[str]) -> None:
        batch = "\0".join(folders)  # no path holds a NUL
        if not batch or self._closed:
            return
        try:
            self._writer.send_bytes(os.fsencode(batch))
        except OSError:
            # It has ended, or cannot take more now (and a part of the batch may have gone): the
            # workers read the folders all the same.
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        os.kill(self.pid, signal.SIGKILL)
        threading.Thread(target=_reap, args=(self.pid,), name="read-ahead-reaper", daemon=True).start()

    def __enter__(self) -> ReadAheadProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # reaped already
        os.waitpid(pid, 0)


def _serve(folders: Connection, parent: int, wanted: Callable[[str], bool], threads: int) -> None:
    """The forked process: asks for the folders that come through the pipe until it closes."""
    try:
        end_with_parent(parent)
        # Only the forking thread lives on here, and of the files only the pipe is needed.
        keep = folders.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        ahead = ReadAhead(wanted, threads)
        while True:
            try:
                batch = folders.recv_bytes()
            except (EOFError, OSError):
                break
            ahead.add(os.fsdecode(batch).split("\0"))
    finally:
        os._exit(0)
