"""The service as deployed by `make run`: the supervisor, granian with two workers, and the indexer."""

from __future__ import annotations

import gzip
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest

from .conftest import Newsroom

FLASK = Path(sys.executable).parent / "flask"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection, so that successive requests reach either worker."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def titles(port: int) -> list[str]:
    status, _, body = get(port, "/feeds/rss.xml")
    assert status == 200
    return [entry.title for entry in feedparser.parse(body).entries]


def processes(field: int, value: int) -> list[int]:
    """Live processes whose /proc stat field (1: parent, 2: process group) has `value`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[field]) == value and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    return processes(1, pid)


def command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Service:
    port: int
    process: subprocess.Popen[bytes]

    def indexer(self) -> int:
        return next(pid for pid in children(self.process.pid) if "index --watch" in command_line(pid))

    def workers(self) -> list[int]:
        granian = next(pid for pid in children(self.process.pid) if "granian" in command_line(pid))
        return [pid for pid in children(granian) if "granian" in command_line(pid)]


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def answers(port: int) -> bool:
    try:
        return get(port, "/healthz")[0] == 200
    except OSError:
        return False


@pytest.fixture
def service(newsroom: Newsroom, tmp_path: Path) -> Iterator[Service]:
    newsroom.article("innlent", "fyrsta", title="Fyrsta frétt", date="2026-10-01T12:00:00Z")
    an_hour_ago = time.time() - 3600
    for path in newsroom.root.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))
    port = free_port()
    environment = {**os.environ, "FEEDS_CONTENT_DIR": str(newsroom.root), "FEEDS_CACHE_DIR": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [str(FLASK), "--app", "app", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        cwd=ROOT, env=environment, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    running = Service(port, process)
    try:
        wait_for(lambda: answers(port) or process.poll() is not None, "the server did not start", 30)
        assert process.poll() is None
        yield running
    finally:
        process.terminate()  # the supervisor stops what it started
        process.wait(timeout=30)
        deadline = time.monotonic() + 15  # processes still exiting have a moment to go
        while (leftovers := processes(2, process.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        assert not leftovers, [(command_line(pid), Path(f"/proc/{pid}/stat").read_text()[:80]) for pid in leftovers]


@pytest.fixture
def server(service: Service) -> int:
    return service.port


def test_every_worker_process_sees_an_edit(newsroom: Newsroom, server: int) -> None:
    assert all(titles(server) == ["Fyrsta frétt"] for _ in range(20))
    newsroom.article("innlent", "fyrsta", title="Fyrsta frétt, leiðrétt", date="2026-10-01T12:00:00Z")
    deadline = time.monotonic() + 10
    while titles(server) != ["Fyrsta frétt, leiðrétt"]:
        assert time.monotonic() < deadline, "the edit never showed up"
        time.sleep(0.02)
    # Fresh connections land on both workers: every one of them answers with the edit.
    time.sleep(0.05)
    assert all(titles(server) == ["Fyrsta frétt, leiðrétt"] for _ in range(40))


def test_validators_and_gzip_through_the_server(server: int) -> None:
    status, headers, body = get(server, "/feeds/atom.xml")
    assert status == 200
    etags = {get(server, "/feeds/atom.xml")[1]["etag"] for _ in range(20)}
    assert etags == {headers["etag"]}  # the same in both workers
    assert get(server, "/feeds/atom.xml", {"If-None-Match": headers["etag"]})[0] == 304
    status, compressed_headers, compressed = get(server, "/feeds/atom.xml", {"Accept-Encoding": "gzip"})
    assert compressed_headers["content-encoding"] == "gzip"
    assert gzip.decompress(compressed) == body


def edit_shows(newsroom: Newsroom, port: int, title: str) -> None:
    newsroom.article("innlent", "fyrsta", title=title, date="2026-10-01T12:00:00Z")
    wait_for(lambda: titles(port) == [title], f"the edit {title!r} never showed up")


def test_a_killed_worker_is_replaced_and_nothing_fails(newsroom: Newsroom, service: Service) -> None:
    before = service.workers()
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    killed_at = time.monotonic()
    statuses = []
    while time.monotonic() < killed_at + 3:  # the other worker answers while the dead one is replaced
        try:
            statuses.append(get(service.port, "/feeds/rss.xml")[0])
        except OSError:
            # Only a connection the dying worker had already taken may be lost with it.
            assert time.monotonic() < killed_at + 0.5
    assert set(statuses) == {200}
    wait_for(lambda: len(service.workers()) == 2 and before[0] not in service.workers(), "no worker replaced it")
    edit_shows(newsroom, service.port, "Eftir að vinnsluferli var drepið")


def test_a_killed_indexer_is_restarted(newsroom: Newsroom, service: Service) -> None:
    first = service.indexer()
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: any(pid != first for pid in children(service.process.pid) if "index --watch" in command_line(pid)),
             "the indexer was not restarted")  # fmt: skip
    edit_shows(newsroom, service.port, "Eftir að skráningin var drepin")
    assert get(service.port, "/healthz")[0] == 200


def test_bare_gunicorn_keeps_the_index_current(newsroom: Newsroom, tmp_path: Path) -> None:
    """`gunicorn app:app` from the project's folder reads gunicorn.conf.py: its master runs the indexer."""
    newsroom.article("innlent", "fyrsta", title="Fyrsta frétt", date="2026-10-01T12:00:00Z")
    port = free_port()
    environment = {**os.environ, "FEEDS_CONTENT_DIR": str(newsroom.root), "FEEDS_CACHE_DIR": str(tmp_path / "cache")}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(
        [str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", "2", "app:app"],
        cwd=ROOT, env=environment, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: answers(port), "gunicorn never became ready", 30)
        assert titles(port) == ["Fyrsta frétt"]
        edit_shows(newsroom, port, "Breytt undir gunicorn")
    finally:
        process.terminate()
        process.wait(timeout=30)
        deadline = time.monotonic() + 15
        while (leftovers := processes(2, process.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        assert not leftovers, [command_line(pid) for pid in leftovers]
