"""The service under test: who it runs as, its processes as /proc shows them, its health, its index file."""

# ruff: noqa: S603, S607 - starts the service and fixed system tools
from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .answers import HOST, get
from .corpus import BASE_URL

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin" if (REPO / ".venv" / "bin").is_dir() else Path(sys.executable).parent
#: Parts of a command line that mark the indexing process: the coming `index --watch`, and today's.
INDEXER_MARKS = ("index --watch", "feeds.indexer")
SQLITE_MAGIC = b"SQLite format 3\x00"
#: How long the indexer or a web worker may give no sign of life before the service replaces it
#: (FEEDS_WATCHDOG_SECONDS): short enough that a hung one is back within the recovery time the
#: report allows.
WATCHDOG_S = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class RunAs:
    """Who the service runs as. Permission faults do nothing against a process that may ignore permissions."""

    label: str
    user: int | None = None
    group: int | None = None
    #: Put before the command, e.g. setpriv dropping every capability.
    prefix: tuple[str, ...] = ()
    #: Whether chmod faults bite on it.
    permissions_bite: bool = True


def choose_run_as(python: Path, scratch: Path) -> RunAs:
    """The current user if not root; as root, `nobody` if it can run the venv's Python, else root without
    capabilities (setpriv), else root, whom chmod faults do not touch."""
    if os.geteuid() != 0:
        return RunAs(f"the current user (uid {os.geteuid()})")
    options = []
    with contextlib.suppress(KeyError):
        nobody = pwd.getpwnam("nobody")
        options.append(RunAs("nobody", nobody.pw_uid, nobody.pw_gid))
    setpriv = shutil.which("setpriv")
    if setpriv:
        options.append(
            RunAs(
                "root without capabilities (setpriv)", prefix=(setpriv, "--inh-caps=-all", "--bounding-set=-all", "--")
            )
        )
    locked = Path(tempfile.mkdtemp(prefix="locked-", dir=scratch))
    locked.chmod(0)
    refused: list[str] = []
    try:
        for option in options:
            why_not = _why_not(option, python, locked)
            if not why_not:
                return replace(option, label=f"{option.label}; {', '.join(refused)}" if refused else option.label)
            refused.append(f"not {option.label}: {why_not}")
    finally:
        locked.chmod(0o755)
        locked.rmdir()
    return RunAs(f"root, whom permissions do not stop ({', '.join(refused)})", permissions_bite=False)


def _why_not(option: RunAs, python: Path, locked: Path) -> str:
    """Why the service cannot run as `option` with chmod faults biting: the venv's Python does not run,
    or is not refused a folder with mode 000; empty if it can."""
    script = "import os, sys\ntry:\n    os.listdir(sys.argv[1])\nexcept PermissionError:\n    sys.exit(3)\n"
    try:
        done = subprocess.run(
            [*option.prefix, str(python), "-c", script, str(locked)],
            user=option.user, group=option.group, extra_groups=[] if option.user is not None else None,
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        return f"it cannot run {python} ({error})"
    if done.returncode == 3:
        return ""
    return f"{python} exits with {done.returncode}" if done.returncode else "a folder with mode 000 does not stop it"


@dataclass(frozen=True, slots=True)
class Tree:
    """The service's processes, found by walking /proc from the process we started."""

    server: int | None
    workers: tuple[int, ...]
    #: The indexer and the processes it forked to read bundles in (`readers`).
    indexers: tuple[int, ...]
    #: The indexer's reading processes: none until it first reads, then one kept between edits.
    readers: tuple[int, ...] = ()

    def describe(self) -> str:
        described = f"server {self.server}, workers {list(self.workers)}, indexer {list(self.indexers)}"
        return described + (f" (reading in {list(self.readers)})" if self.readers else "")


def process_table() -> dict[int, tuple[int, str, str]]:
    """Every process: pid → (parent pid, state letter, command line)."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            command = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        table[int(entry.name)] = (int(stat[1]), stat[0], command)
    return table


def tree_of(root: int) -> Tree:
    """The server (topmost process whose command names granian), its worker children, and the indexer."""
    table = process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, state, _) in table.items():
        if state != "Z":
            children.setdefault(parent, []).append(pid)
    family: list[int] = []
    pending = [root] if root in table and table[root][1] != "Z" else []
    while pending and len(family) < 1000:
        pid = pending.pop(0)
        family.append(pid)
        pending += sorted(children.get(pid, []))
    indexers = tuple(pid for pid in family if any(mark in table[pid][2] for mark in INDEXER_MARKS))
    # A forked reading process has its indexer's command line; its parent tells them apart.
    readers = tuple(pid for pid in indexers if table[pid][0] in indexers)
    server = next((pid for pid in family if "granian" in table[pid][2]), None)
    if server is None:  # a server that does not say its name: the first child of ours with children
        server = next((pid for pid in children.get(root, []) if pid not in indexers and children.get(pid)), None)
    if server is None:
        return Tree(None, (), indexers, readers)
    workers = tuple(pid for pid in children.get(server, []) if pid not in indexers and "_tracker" not in table[pid][2])
    return Tree(server, workers, indexers, readers)


@dataclass
class Service:
    """One run of the service, in a process group of its own; `stop` ends the whole group."""

    root: Path
    content: Path
    cache: Path
    log: Path
    port: int
    settle_s: float
    run_as: RunAs
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @staticmethod
    def command_for(root: Path, port: int, scratch: Path) -> tuple[list[str], str]:
        """`flask --app app serve` where the service has it, else granian as `make run` started it before;
        and a label."""
        flask = str(BIN / "flask")
        env = {**os.environ, "FEEDS_CONTENT_DIR": str(scratch), "FEEDS_CACHE_DIR": str(scratch / "cache")}
        try:
            probe = subprocess.run(
                [flask, "--app", "app", "serve", "--help"], cwd=root, env=env, capture_output=True, timeout=120
            )
            serves = probe.returncode == 0
        except (OSError, subprocess.SubprocessError):
            serves = False
        shutil.rmtree(scratch, ignore_errors=True)
        if serves:
            return [
                flask,
                "--app",
                "app",
                "serve",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                "2",
            ], "flask serve"
        granian = [
            str(BIN / "granian"), "--interface", "wsgi", "--host", HOST, "--port", str(port), "--workers", "2",
            "--blocking-threads", "1", "--http", "1", "--no-ws", "--runtime-mode", "st", "app:app",
        ]  # fmt: skip
        return granian, "granian (no `flask serve` in this tree)"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "FEEDS_CONTENT_DIR": str(self.content),
            "FEEDS_CACHE_DIR": str(self.cache),
            "FEEDS_SETTLE_SECONDS": str(self.settle_s),
            "FEEDS_WATCHDOG_SECONDS": str(WATCHDOG_S),
            "FEEDS_BASE_URL": BASE_URL,
        }

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "ab") as output:
            output.write(f"--- start {self.starts} at {time.time():.3f}: {' '.join(self.command)}\n".encode())
            output.flush()
            self.process = subprocess.Popen(
                [*self.run_as.prefix, *self.command],
                cwd=self.root, env=self.environment(), stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True, user=self.run_as.user, group=self.run_as.group,
                extra_groups=[] if self.run_as.user is not None else None,
            )  # fmt: skip

    def run_once(self, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        """A one-off `flask --app app ARGUMENTS` as the service's user, over its content and cache."""
        return subprocess.run(
            [*self.run_as.prefix, str(BIN / "flask"), "--app", "app", *arguments],
            cwd=self.root, env=self.environment(), capture_output=True, timeout=timeout,
            user=self.run_as.user, group=self.run_as.group,
            extra_groups=[] if self.run_as.user is not None else None,
        )  # fmt: skip

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tree(self) -> Tree:
        return tree_of(self.process.pid) if self.process is not None else Tree(None, (), ())

    def wait_ready(self, timeout: float) -> float:
        """Seconds until the site's feed answered 200 (and /healthz, if there is one, said ready); raises if never."""
        started = time.monotonic()
        deadline = started + timeout
        for _ in range(int(timeout / 0.1) + 1):
            if time.monotonic() > deadline:
                break
            if not self.alive():
                raise RuntimeError(
                    f"the service exited with {self.process and self.process.returncode}:\n{self.log_tail()}"
                )
            if get(self.port, "/feeds/rss.xml", timeout=5).status == 200:
                health = self.health()
                if health is None or health[1].get("ready") is True:
                    return time.monotonic() - started
            time.sleep(0.1)
        raise RuntimeError(f"the service did not answer /feeds/rss.xml within {timeout:.0f} s:\n{self.log_tail()}")

    def health(self) -> tuple[int, dict[str, Any]] | None:
        """/healthz's status and JSON, or None if the service has none (yet)."""
        answer = get(self.port, "/healthz", timeout=5)
        if answer.status not in (200, 503) or "json" not in answer.headers.get("content-type", ""):
            return None
        try:
            document = json.loads(answer.body)
        except ValueError:
            return None
        return (answer.status, document) if isinstance(document, dict) and "status" in document else None

    def unhealthy(self) -> str:
        """What /healthz says stands in the way of serving, if it exists and says anything: not ready, or an
        index it finds unhealthy. A "degraded" status (content errors, such as broken articles) is healthy."""
        health = self.health()
        if health is None:
            return ""
        status, document = health
        index = document.get("index")
        index_healthy = not isinstance(index, dict) or index.get("healthy") is not False
        if status == 200 and document.get("ready") is True and index_healthy:
            return ""
        return f"/healthz answers {status}: {document.get('status')}, {document.get('reason') or 'no reason given'}"

    def index_file(self) -> Path | None:
        """The live index: as /healthz names it, else the newest *.sqlite3 in the cache folder."""
        health = self.health()
        named = health[1].get("index", {}).get("path") if health else None
        if isinstance(named, str) and named:
            return Path(named)
        with contextlib.suppress(OSError):
            found = sorted(self.cache.glob("*.sqlite3"), key=lambda path: path.stat().st_mtime)
            return found[-1] if found else None
        return None

    def index_is_whole(self) -> bool:
        """Whether the live index file exists and starts as an SQLite database does."""
        path = self.index_file()
        try:
            with open(path or "", "rb") as database:
                return database.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
        except OSError:
            return False

    def stop(self) -> None:
        """Ends the whole process group: TERM, then KILL what is left."""
        if self.process is None:
            return
        group = self.process.pid
        _signal_group(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        _signal_group(group, signal.SIGKILL)  # workers or an indexer left behind by a server that exited first
        deadline = time.monotonic() + 10
        for _ in range(200):
            if not _group_alive(group) or time.monotonic() > deadline:
                break
            time.sleep(0.05)

    def log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    def log_errors(self, since: int, limit: int = 3) -> list[str]:
        """The last lines of the service's log after byte `since` that report an error."""
        try:
            with open(self.log, "rb") as log:
                log.seek(since)
                text = log.read(4 * 2**20).decode(errors="replace")
        except OSError:
            return []
        found = [line.strip()[:240] for line in text.splitlines() if "ERROR" in line or "Error:" in line]
        return found[-limit:]

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@contextlib.contextmanager
def tmpfs(folder: Path, size_mb: int) -> Iterator[bool]:
    """`folder` as a tmpfs of `size_mb` (root only), unmounted on the way out whatever happens; yields whether
    it was mounted."""
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(folder)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        mounted = done.returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            for attempt in (["umount", str(folder)], ["umount", "-l", str(folder)]):
                if subprocess.run(attempt, capture_output=True, timeout=60, check=False).returncode == 0:
                    break
                time.sleep(0.5)
