"""The faults: damage to the index, permissions taken away, processes killed, the disk filled.

Each has an injection and, for those that last, a restoration; the harness runs them while the
readers go on, then checks that the service recovered.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .corpus import SECTIONS
from .service import RunAs, Service, Tree

SCRAMBLED_BYTES = 64 * 1024
#: How long the reading-process fault waits for the indexer to have one.
READER_WAIT_S = 10.0
FILLER = ".chaos-filler"


class NotInjected(RuntimeError):
    """The fault had nothing to act on (no index file, no indexer process): the service failed it."""


@dataclass
class Context:
    service: Service
    content: Path
    cache: Path
    run_as: RunAs
    #: Whether the cache folder is a tmpfs of its own, which can be filled.
    tmpfs_mb: int | None
    rng: random.Random
    #: Processes the last fault killed.
    killed: set[int] = field(default_factory=set)
    #: What a lasting fault must put back.
    restore_to: dict[Path, int] = field(default_factory=dict)
    #: The section a fault made unreadable.
    locked_section: str = ""

    def locate_index(self) -> Path:
        path = self.service.index_file()
        if path is None or not path.exists():
            raise NotInjected(f"no index file to damage (looked in /healthz and for {self.cache}/*.sqlite3)")
        return path


@dataclass(frozen=True, slots=True)
class Fault:
    letter: str
    name: str
    #: Does the damage and says what it did.
    inject: Callable[[Context], str]
    #: Undoes it, for faults that last.
    restore: Callable[[Context], None] | None = None
    #: "permissions" or "tmpfs" when the fault needs them.
    needs: str = ""
    #: Half-way through a lasting fault, what makes the service act: an edit, or a note written into a
    #: bundle of the locked section (no change to what is published).
    provoke: str = ""

    def cannot_run(self, context: Context) -> str:
        if self.needs == "permissions" and not context.run_as.permissions_bite:
            return f"needs a service that permissions apply to; it runs as {context.run_as.label}"
        if self.needs == "tmpfs" and context.tmpfs_mb is None:
            return "needs root" if os.geteuid() != 0 else "could not mount a tmpfs"
        return ""

    def whole_again(self, context: Context, before: Tree) -> str:
        """What still keeps the service from being whole after the fault; empty when nothing does."""
        service = context.service
        if not service.alive():
            return "the service's main process has exited"
        tree = service.tree()
        if tree.server is None:
            return "no server process"
        if len(tree.workers) < max(2, len(before.workers)):
            return f"{len(tree.workers)} web worker(s) instead of {max(2, len(before.workers))}"
        if before.indexers and not tree.indexers:
            return "no indexer process"
        if context.killed & {*tree.workers, *tree.indexers}:
            return "a killed process is still listed"
        return ""


def _delete_index(context: Context) -> str:
    path = context.locate_index()
    path.unlink()
    return f"deleted {path.name}"


def _truncate_index(context: Context) -> str:
    path = context.locate_index()
    size = path.stat().st_size
    os.truncate(path, 0)
    return f"truncated {path.name} from {size:,} bytes to 0"


def _scramble_index(context: Context) -> str:
    path = context.locate_index()
    with open(path, "r+b") as database:
        database.write(context.rng.randbytes(SCRAMBLED_BYTES))
    return f"overwrote the first {SCRAMBLED_BYTES // 1024} KiB of {path.name} with random bytes"


def _take_away(context: Context, folder: Path, mode: int) -> str:
    context.restore_to[folder] = folder.stat().st_mode & 0o7777
    folder.chmod(mode)
    return f"chmod {mode:03o} {folder}"


def _give_back(context: Context) -> None:
    for folder, mode in list(context.restore_to.items()):
        folder.chmod(mode)
        del context.restore_to[folder]


def _lock_cache(context: Context) -> str:
    return _take_away(context, context.cache, 0o555)


def _lock_section(context: Context) -> str:
    context.locked_section = context.rng.choice(SECTIONS)[0]
    return _take_away(context, context.content / context.locked_section, 0)


def _kill(context: Context, pids: tuple[int, ...], what: str) -> str:
    if not pids:
        raise NotInjected(f"no {what} process found ({context.service.tree().describe()})")
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    context.killed = set(pids)
    return f"SIGKILL to {what} {', '.join(map(str, pids))}"


def _kill_worker(context: Context) -> str:
    return _kill(context, context.service.tree().workers[-1:], "web worker")


def _kill_indexer(context: Context) -> str:
    return _kill(context, context.service.tree().indexers, "indexer")


def _kill_reader(context: Context) -> str:
    """The process the indexer reads bundles in, killed as a crash in a decoder or the out-of-memory
    killer would end it; the writer's edits start one soon after the indexer starts, if none is yet."""
    deadline = time.monotonic() + READER_WAIT_S
    while not (readers := context.service.tree().readers) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _kill(context, readers, "indexer's reading process")


def _read_once_then_replace_worker(context: Context) -> str:
    """A one-off process (`flask check`) reads the index and exits while the indexer writes; then a web
    worker is replaced, and the new one opens the index afresh. The closing process must not take the
    index's write-ahead log away from the indexer: the new worker would then never see another edit."""
    try:
        checked = context.service.run_once("check")
    except subprocess.SubprocessError as error:
        raise NotInjected(f"`flask check` did not finish: {error}") from None
    said = f"`flask check` read the index and exited with status {checked.returncode}"
    return f"{said}; then {_kill_worker(context)}"


def _hang_indexer(context: Context) -> str:
    """The indexer stopped (SIGSTOP) where it stands, as a hang would leave it: it must be found
    silent and started again (WATCHDOG_S in the service's environment), its reading processes with it."""
    tree = context.service.tree()
    main = tuple(pid for pid in tree.indexers if pid not in tree.readers)
    if not main:
        raise NotInjected(f"no indexer process found ({tree.describe()})")
    os.kill(main[0], signal.SIGSTOP)
    context.killed = set(tree.indexers)
    return f"SIGSTOP to indexer {main[0]}"


def _hang_worker(context: Context) -> str:
    """A web worker stopped (SIGSTOP) where it stands, as a hang would leave it. granian leaves it
    be, and the connections it takes go unanswered: the supervisor must find it silent (WATCHDOG_S)
    and kill it, and granian start another."""
    workers = context.service.tree().workers
    if not workers:
        raise NotInjected(f"no web worker found ({context.service.tree().describe()})")
    os.kill(workers[-1], signal.SIGSTOP)
    context.killed = {workers[-1]}
    return f"SIGSTOP to web worker {workers[-1]}"


def _fill_disk(context: Context) -> str:
    chunk = b"\0" * 2**20
    written = 0
    filler = os.open(context.cache / FILLER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(2 * (context.tmpfs_mb or 0) + 16):
            try:
                written += os.write(filler, chunk)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
    finally:
        os.close(filler)
    free = os.statvfs(context.cache)
    return f"filled the cache's tmpfs with {written / 2**20:.0f} MiB; {free.f_bavail * free.f_frsize // 1024} KiB left"


def _empty_disk(context: Context) -> None:
    with contextlib.suppress(FileNotFoundError):
        (context.cache / FILLER).unlink()


FAULTS = (
    Fault("a", "index file deleted", _delete_index),
    Fault("b", "index truncated to 0 bytes", _truncate_index),
    Fault("c", "first 64 KiB of the index overwritten", _scramble_index),
    Fault("d", "cache folder read-only", _lock_cache, _give_back, "permissions", "edit"),
    Fault("e", "a section folder unreadable (chmod 000)", _lock_section, _give_back, "permissions", "note"),
    Fault("f", "a web worker killed (SIGKILL)", _kill_worker),
    Fault("g", "the indexer killed (SIGKILL)", _kill_indexer),
    Fault("h", "disk full for the cache folder", _fill_disk, _empty_disk, "tmpfs", "edit"),
    Fault("i", "the indexer's reading process killed (SIGKILL)", _kill_reader),
    Fault("j", "a one-off reader exits, then a web worker is replaced", _read_once_then_replace_worker),
    Fault("k", "the indexer hung (SIGSTOP)", _hang_indexer),
    Fault("l", "a web worker hung (SIGSTOP)", _hang_worker),
)
