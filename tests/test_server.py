"""The service as deployed: granian with two worker processes, over a content folder the test writes."""

from __future__ import annotations

import gzip
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest

from .conftest import Newsroom

GRANIAN = Path(sys.executable).parent / "granian"
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


@pytest.fixture
def server(newsroom: Newsroom, tmp_path: Path) -> Iterator[int]:
    newsroom.article("innlent", "fyrsta", title="Fyrsta frétt", date="2026-10-01T12:00:00Z")
    an_hour_ago = time.time() - 3600
    for path in newsroom.root.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))
    port = free_port()
    environment = {**os.environ, "FEEDS_CONTENT_DIR": str(newsroom.root), "FEEDS_CACHE_DIR": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [str(GRANIAN), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
         "--blocking-threads", "1", "app:app"],
        cwd=ROOT, env=environment, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(port, "/feeds/rss.xml")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "the server did not start"
            time.sleep(0.1)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


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
