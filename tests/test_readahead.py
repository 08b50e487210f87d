"""Reading ahead of a pass's workers: the files a worker will read are in memory when it gets to
them, nothing else is asked for, and a folder it cannot read never stops it."""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from feeds import readahead
from feeds.readahead import ReadAhead, ReadAheadProcess
from feeds.scanner import bundle_file

from .running import wait_for
from .test_server import alive

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def in_memory(path: Path) -> float:
    """The share of the file's pages in the page cache (mincore(2))."""
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, descriptor, 0)
        assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            residency = (ctypes.c_ubyte * pages)()
            assert _libc.mincore(address, size, residency) == 0, os.strerror(ctypes.get_errno())
            return sum(page & 1 for page in residency) / pages
        finally:
            _libc.munmap(address, size)
    finally:
        os.close(descriptor)


def forget(path: Path) -> None:
    """Drops the file's pages from the page cache."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # only clean pages can go
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


def test_the_files_of_each_folder_given_are_asked_for_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each folder is asked for: the folders' inodes are in memory here, which alone would make
    # it pass over most of them (see the next test).
    monkeypatch.setattr(readahead, "SKIP", 0)
    bundles = [tmp_path / "innlent" / f"frett-{number}" for number in range(3)]
    files: list[Path] = []
    for bundle in bundles:
        bundle.mkdir(parents=True)
        for name in ("index.md", "Gos á Reykjanesi.JPG", "kort.png"):
            (bundle / name).write_bytes(os.urandom(256 * 1024))
            files.append(bundle / name)
    others = [bundles[0] / ".index.md.swp", bundles[0] / "minnispunktar.txt"]
    for other in others:
        other.write_bytes(os.urandom(256 * 1024))
    for path in files + others:
        forget(path)
    if any(in_memory(path) for path in files + others):
        pytest.skip(f"{tmp_path} keeps its files in memory whatever is asked (tmpfs?)")
    with ReadAhead(bundle_file) as ahead:
        ahead.add(str(bundle) for bundle in bundles)
        deadline = time.monotonic() + 10
        while any(in_memory(path) < 1 for path in files) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert {path.name: in_memory(path) for path in files} == {path.name: 1.0 for path in files}
    assert [in_memory(path) for path in others] == [0.0, 0.0]


def test_a_folder_that_cannot_be_read_or_a_fifo_for_an_article_file_never_stops_it(tmp_path: Path) -> None:
    fifo = tmp_path / "innlent" / "rormur" / "index.md"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)  # opening it to read would wait for a writer for ever
    photo = tmp_path / "innlent" / "mynd" / "mynd.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(os.urandom(64 * 1024))
    forget(photo)
    started = time.monotonic()
    with ReadAhead(bundle_file, threads=1) as ahead:
        ahead.add(str(tmp_path / "innlent" / name) for name in ("horfin", "rormur", "mynd"))
        while in_memory(photo) < 1 and time.monotonic() - started < 10:
            time.sleep(0.01)
    assert in_memory(photo) == 1.0
    assert time.monotonic() - started < 10


def test_folders_found_in_memory_are_mostly_passed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build over files read a moment ago: asking for them again would cost as much as reading."""
    folders = []
    for number in range(64):
        folder = tmp_path / f"frett-{number}"
        folder.mkdir()
        (folder / "index.md").write_text("---\ntitle: Frétt\n---\n", encoding="utf-8")
        folders.append(str(folder))
    asked: list[str] = []
    ask_for = ReadAhead._ask_for

    def counted(self: ReadAhead, folder: str) -> bool:
        asked.append(folder)
        return ask_for(self, folder)

    monkeypatch.setattr(ReadAhead, "_ask_for", counted)
    with ReadAhead(bundle_file, threads=1) as ahead:
        ahead.add(folders)
        ahead.add([])  # nothing
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not ahead._folders.empty():
            time.sleep(0.01)
    # One in SKIP + 1 (4 of 64), with room for asks slowed by a busy machine.
    assert folders[0] in asked and len(asked) <= 64 // 2


def test_in_a_process_of_its_own_the_files_are_asked_for_and_closing_ends_it(tmp_path: Path) -> None:
    bundles = [tmp_path / "innlent" / f"frett-{number}" for number in range(3)]
    files = []
    for bundle in bundles:
        bundle.mkdir(parents=True)
        for name in ("index.md", "Gos á Reykjanesi.JPG"):
            (bundle / name).write_bytes(os.urandom(256 * 1024))
            files.append(bundle / name)
    for path in files:
        forget(path)
    if any(in_memory(path) for path in files):
        pytest.skip(f"{tmp_path} keeps its files in memory whatever is asked (tmpfs?)")
    with ReadAheadProcess(bundle_file) as ahead:
        assert ahead.pid != os.getpid()
        ahead.add(str(bundle) for bundle in bundles)
        wait_for(lambda: all(in_memory(path) == 1 for path in files), "the files were never asked for")
    wait_for(lambda: not alive(ahead.pid), "closing did not end the process")
    ahead.add([str(bundles[0])])  # closed: nothing, and no error


def test_the_process_holds_no_file_of_this_one_so_never_the_index_lock(tmp_path: Path) -> None:
    lock = tmp_path / "index.lock"
    held = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)
    with ReadAheadProcess(bundle_file) as ahead:
        os.close(held)  # the lock ends with the last descriptor of the open file, in any process

        def free() -> bool:
            other = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            finally:
                os.close(other)
            return True

        wait_for(free, "the read-ahead process kept the lock held")
        assert alive(ahead.pid)


def test_the_process_ends_with_the_one_that_started_it(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from feeds.readahead import ReadAheadProcess\n"
        "from feeds.scanner import bundle_file\n"
        "ahead = ReadAheadProcess(bundle_file)\n"
        "print(ahead.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as parent:
        try:
            assert parent.stdout is not None
            pid = int(parent.stdout.readline())
            assert alive(pid)
        finally:
            parent.kill()
    wait_for(lambda: not alive(pid), "the read-ahead process outlived the indexer that started it")


def test_one_that_cannot_keep_up_is_ended_and_never_makes_a_pass_wait(tmp_path: Path) -> None:
    ahead = ReadAheadProcess(bundle_file)
    try:
        os.kill(ahead.pid, signal.SIGSTOP)  # takes nothing more from its pipe
        folders = [str(tmp_path / "innlent" / f"frett-{number:06}-{'x' * 60}") for number in range(1000)]
        started = time.monotonic()
        for _ in range(100):  # 7 MB of paths, far more than the pipe holds
            ahead.add(folders)
        assert time.monotonic() - started < 5
        wait_for(lambda: not alive(ahead.pid), "a stopped read-ahead process was not ended")
    finally:
        ahead.close()
