"""The service as deployed by `make run`: the supervisor, granian with two workers, and the indexer."""

from __future__ import annotations

import gzip
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest
from prometheus_client.parser import text_string_to_metric_families

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


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


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
    #: What the supervisor and its children write (granian's access log among it).
    log: Path

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


def restarts(port: int) -> dict[tuple[str, str], float]:
    """feeds_process_restarts_total from /metrics, as Prometheus reads it: by process and cause."""
    status, _, body = get(port, "/metrics")
    assert status == 200
    return {
        (sample.labels["process"], sample.labels["cause"]): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == "feeds_process_restarts_total"
    }


@pytest.fixture
def service(newsroom: Newsroom, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Service]:
    """`flask serve` over the newsroom; with indirect parametrization, these variables set too."""
    newsroom.article("innlent", "fyrsta", title="Fyrsta frétt", date="2026-10-01T12:00:00Z")
    an_hour_ago = time.time() - 3600
    for path in newsroom.root.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))
    port = free_port()
    environment = {**os.environ, "FEEDS_CONTENT_DIR": str(newsroom.root), "FEEDS_CACHE_DIR": str(tmp_path / "cache")}
    environment |= getattr(request, "param", {})
    log = tmp_path / "service.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(FLASK), "--app", "app", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            cwd=ROOT, env=environment, start_new_session=True, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    running = Service(port, process, log)
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
    assert restarts(service.port) == {}
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: any(pid != first for pid in children(service.process.pid) if "index --watch" in command_line(pid)),
             "the indexer was not restarted")  # fmt: skip
    edit_shows(newsroom, service.port, "Eftir að skráningin var drepin")
    assert get(service.port, "/healthz")[0] == 200
    assert restarts(service.port) == {("indexer", "exited"): 1.0}


@pytest.mark.parametrize("service", [{"FEEDS_WATCHDOG_SECONDS": "3"}], indirect=True)
def test_a_hung_indexer_is_killed_and_started_again(newsroom: Newsroom, service: Service) -> None:
    """An indexer that gives no sign of life for longer than FEEDS_WATCHDOG_SECONDS (here stopped, as
    a hang would leave it) is killed and started again, and an edit made meanwhile shows."""
    first = service.indexer()
    time.sleep(5)  # idle for longer than the watchdog allows: a working indexer still says it lives
    assert service.indexer() == first
    os.kill(first, signal.SIGSTOP)
    newsroom.article("innlent", "fyrsta", title="Breytt meðan skráningin stóð föst", date="2026-10-01T12:00:00Z")
    wait_for(lambda: any(pid != first for pid in children(service.process.pid) if "index --watch" in command_line(pid)),
             "the hung indexer was not started again")  # fmt: skip
    assert not alive(first)
    wait_for(lambda: titles(service.port) == ["Breytt meðan skráningin stóð föst"], "the edit never showed up")
    assert f"indexer (pid {first}) gave no sign of life for 3 s" in service.log.read_text()
    # Workers look for the indexer every few seconds: one may have looked while none ran.
    wait_for(lambda: get(service.port, "/healthz")[0] == 200, "/healthz never said ready again")
    assert restarts(service.port) == {("indexer", "silent"): 1.0}, "counted once, as killed for its silence"


@pytest.mark.parametrize("service", [{"FEEDS_WATCHDOG_SECONDS": "3"}], indirect=True)
def test_a_hung_web_worker_is_killed_and_replaced(newsroom: Newsroom, service: Service) -> None:
    """granian alone leaves a stopped worker be, and the connections it takes hang (about half of
    them with two workers): the supervisor kills one silent for FEEDS_WATCHDOG_SECONDS, and granian
    starts another."""
    for _ in range(40):  # the workers have loaded the app, and so beat (answered or not)
        get(service.port, "/feeds/rss.xml")
    before = service.workers()
    assert len(before) == 2
    time.sleep(4)  # idle for longer than the watchdog allows: working workers still say they live
    assert service.workers() == before
    os.kill(before[0], signal.SIGSTOP)
    wait_for(lambda: not alive(before[0]), "the stopped worker was not killed")
    wait_for(lambda: len(service.workers()) == 2, "granian did not start another worker")
    assert before[1] in service.workers()
    statuses = [get(service.port, "/feeds/rss.xml")[0] for _ in range(20)]
    assert statuses == [200] * 20
    assert f"server: its process {before[0]} gave no sign of life for 3 s" in service.log.read_text()
    assert restarts(service.port) == {("server worker", "silent"): 1.0}


def test_a_reload_replaces_every_worker_and_no_request_fails(newsroom: Newsroom, service: Service) -> None:
    """SIGHUP to the supervisor (`kill -HUP`, systemd's reload): granian starts a new worker before
    it stops each old one, which finishes what it was answering; the indexer runs on."""
    before, indexer = service.workers(), service.indexer()
    stop = threading.Event()
    statuses: list[int] = []
    failures: list[str] = []

    retried: list[str] = []

    def poll_on_fresh_connections() -> None:
        while not stop.is_set():
            try:
                statuses.append(get(service.port, "/feeds/rss.xml")[0])
            except (http.client.RemoteDisconnected, ConnectionResetError) as error:
                # A connection the kernel handed to a worker in the instant it stopped is closed
                # with no answer; a GET is idempotent, and clients and proxies send it again once
                # (RFC 9110, 9.2.2), which must then succeed.
                retried.append(repr(error))
                try:
                    statuses.append(get(service.port, "/feeds/rss.xml")[0])
                except OSError as again:
                    failures.append(f"fresh connection, sent again: {again!r}")
            except OSError as error:
                failures.append(f"fresh connection: {error!r}")

    def poll_on_one_connection() -> None:
        connection: http.client.HTTPConnection | None = None
        while not stop.is_set():
            reused = connection is not None
            connection = connection or http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
            try:
                connection.request("GET", "/feeds/rss.xml")
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
            except OSError as error:
                connection.close()
                connection = None
                # An old worker closes the keep-alive connections it holds idle; a request sent on one
                # at that moment meets a closed connection, and clients send it again on a new one
                # (RFC 9112, 9.3.1), which the next round does here. A new connection never fails.
                if not (reused and isinstance(error, http.client.RemoteDisconnected | ConnectionResetError)):
                    failures.append(f"kept-alive connection: {error!r}")
        if connection is not None:
            connection.close()

    pollers = [threading.Thread(target=poll_on_fresh_connections) for _ in range(4)]
    pollers += [threading.Thread(target=poll_on_one_connection) for _ in range(2)]
    for poller in pollers:
        poller.start()
    try:
        time.sleep(0.5)
        os.kill(service.process.pid, signal.SIGHUP)
        wait_for(lambda: len(service.workers()) == 2 and not set(service.workers()) & set(before),
                 "the workers were not all replaced", 40)  # fmt: skip
        time.sleep(0.5)
    finally:
        stop.set()
        for poller in pollers:
            poller.join(timeout=15)
    assert failures == []
    assert set(statuses) == {200} and len(statuses) > 200
    assert len(retried) <= 4, retried  # at most the one connection each old worker held as it stopped
    assert service.indexer() == indexer
    edit_shows(newsroom, service.port, "Eftir endurhleðslu")


def test_a_reload_loads_the_app_afresh() -> None:
    """granian's main process reads its logging configuration (which names our access log's
    formatter) and forks every worker from itself: were the app imported there, the workers of a
    reload would run the code of the first start."""
    script = (
        "import json, sys\n"
        "from granian.log import LogLevels, configure_logging\n"
        "configure_logging(LogLevels.info, json.load(open('feeds/granian-logging.json')), True)\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('feeds', 'flask', 'app')))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == ["['feeds',", "'feeds.access_log']"]


#: nginx's and Apache's `combined`: address, identity, user, [time], "request", status, bytes
#: (granian does not count them), "referer", "user agent"; quotes and backslashes escaped.
COMBINED = re.compile(
    r"127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "
    r'"GET /feeds/rss\.xml\?lesandi=1 HTTP/1\.1" 200 - "https://lesandi\.example/" "Lesari \\x22prufa\\x22/1\.0"'
)


def test_the_access_log_is_in_the_combined_log_format(service: Service) -> None:
    headers = {"Referer": "https://lesandi.example/", "User-Agent": 'Lesari "prufa"/1.0'}
    assert get(service.port, "/feeds/rss.xml?lesandi=1", headers)[0] == 200
    wait_for(lambda: "lesandi=1" in service.log.read_text(errors="replace"), "no access log line")
    lines = [line for line in service.log.read_text(errors="replace").splitlines() if "lesandi=1" in line]
    assert len(lines) == 1 and COMBINED.fullmatch(lines[0]), lines


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


def test_an_indexer_killed_during_a_first_build_leaves_no_worker_holding_the_index(
    newsroom: Newsroom, tmp_path: Path
) -> None:
    """Its worker processes end with it: a worker outliving it kept the index's lock (a forked
    process shares the lock's open file), and every indexer started after it waited for ever."""
    newsroom.numbered(3000)
    environment = {**os.environ, "FEEDS_CONTENT_DIR": str(newsroom.root), "FEEDS_CACHE_DIR": str(tmp_path / "cache")}
    command = [str(FLASK), "--app", "app", "index"]
    first = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(children(first.pid)) >= 2 or first.poll() is not None, "no worker processes started")
    workers = children(first.pid)
    assert first.poll() is None, "the build ended before it could be killed"
    first.kill()
    first.wait()
    wait_for(lambda: not any(map(alive, workers)), "a worker outlived its indexer", 5)
    again = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "read 3000 bundles" in again.stdout
