"""A real shared cache in front of the service as deployed: Varnish with deploy/varnish/default.vcl,
purged by surrogate key on every change, and nginx with deploy/nginx/proxy-cache.conf, which
revalidates. Each runs on loopback, started by the test."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest

from bench import caches, load, servers

from .conftest import Newsroom
from .running import need, settle, start_origin, wait_announcing, wait_for

FEED = "/feeds/innlent/rss.xml"
DAY = "86400"


@pytest.fixture
def room(newsroom: Newsroom) -> Newsroom:
    newsroom.article("innlent", "gos", title="Gos hafið", date="2026-10-01T12:00:00Z", updated="2026-10-02T08:00:00Z")
    newsroom.article("erlent", "kosning", title="Kosning", date="2026-09-01T12:00:00Z")
    settle(newsroom)
    return newsroom


@dataclass
class Stack:
    origin: servers.Server
    cache: servers.Server
    work: Path

    def get(self, path: str = FEED, headers: dict[str, str] | None = None) -> load.Probe:
        return load.probe(self.cache.url(path), headers)

    def origin_requests(self) -> int:
        return caches.varnish_counters(self.work / "varnish")["MAIN.backend_req"]


@pytest.fixture(autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    servers.stop_all()


def varnish_stack(room: Newsroom, work: Path, **settings: str) -> Stack:
    need(caches.varnishd_binary(), "varnishd")
    origin_port, cache_port = servers.free_port(), servers.free_port()
    # Readers reach the service through the cache: its address is the one every feed names.
    public = f"http://127.0.0.1:{cache_port}"
    origin = start_origin(room, work, origin_port, BASE_URL=public, PURGE_URLS=f"{public}/", **settings)
    cache = caches.start_varnish(origin_port, work / "varnish", port=cache_port)
    cache.wait_ready(FEED, 30)
    wait_announcing(work)
    return Stack(origin, cache, work)


def titles(probe: load.Probe) -> list[str]:
    body = gzip.decompress(probe.body) if probe.headers.get("content-encoding") == "gzip" else probe.body
    return [entry.title for entry in feedparser.parse(body).entries]


def test_polls_within_the_shared_lifetime_never_reach_the_origin(room: Newsroom, tmp_path: Path) -> None:
    stack = varnish_stack(room, tmp_path)
    paths = [FEED, "/feeds/atom.xml", "/feeds/feed.json", "/innlent/"]
    first = {path: stack.get(path) for path in paths}
    assert all(probe.status == 200 for probe in first.values())
    assert all(stack.get(path, {"Accept-Encoding": "gzip"}).status == 200 for path in paths)  # the gzip copies
    assert first[FEED].headers["cache-control"].split(", ")[2] == f"s-maxage={DAY}"  # purges are configured
    before = stack.origin_requests()
    variants: list[dict[str, str]] = [
        {},
        {"Accept-Encoding": "gzip"},
        {"Accept-Encoding": "br, gzip;q=0.5"},
        {"If-None-Match": first[FEED].headers["etag"]},
        {"If-Modified-Since": first[FEED].headers["last-modified"]},
    ]
    statuses = [stack.get(paths[number % 4], variants[number % 5]).status for number in range(300)]
    assert set(statuses) <= {200, 304}
    assert stack.origin_requests() == before
    assert stack.get(FEED).headers["x-cache"] == "HIT"


def test_an_edit_shows_through_varnish_within_a_second_even_with_a_day_of_s_maxage(
    room: Newsroom, tmp_path: Path
) -> None:
    stack = varnish_stack(room, tmp_path, S_MAXAGE=DAY)
    assert titles(stack.get()) == ["Gos hafið"]
    assert stack.get().headers["x-cache"] == "HIT" and stack.get("/feeds/erlent/rss.xml").status == 200
    room.article("innlent", "gos", title="Gos hafið, uppfært", date="2026-10-01T12:00:00Z")
    took = wait_for(lambda: titles(stack.get()) == ["Gos hafið, uppfært"], "the edit never showed through Varnish")
    assert took < 1.0
    # Purged exactly: a feed that does not hold the article is still the cached copy.
    assert stack.get("/feeds/erlent/rss.xml").headers["x-cache"] == "HIT"
    assert titles(stack.get("/feeds/rss.xml")) == ["Gos hafið, uppfært", "Kosning"]


def test_validators_and_304_survive_the_cache(room: Newsroom, tmp_path: Path) -> None:
    stack = varnish_stack(room, tmp_path)
    direct = load.probe(stack.origin.url(FEED))
    for encoding in ({}, {"Accept-Encoding": "gzip"}):
        answer = stack.get(FEED, encoding)
        assert answer.headers["last-modified"] == direct.headers["last-modified"] == "Fri, 02 Oct 2026 08:00:00 GMT"
        etag = answer.headers["etag"]
        assert stack.get(FEED, {**encoding, "If-None-Match": etag}).status == 304
        assert stack.get(FEED, {**encoding, "If-Modified-Since": answer.headers["last-modified"]}).status == 304
        assert stack.get(FEED, {**encoding, "If-None-Match": '"annad"'}).status == 200
    # Each copy is the origin's own, validator and all: none is unzipped or zipped again.
    for encoding in ({}, {"Accept-Encoding": "gzip"}):
        assert stack.get(FEED, encoding).headers["etag"] == load.probe(stack.origin.url(FEED), encoding).headers["etag"]


def test_with_the_origin_stopped_varnish_serves_the_last_good_feed(room: Newsroom, tmp_path: Path) -> None:
    stack = varnish_stack(room, tmp_path, S_MAXAGE="1")
    good = stack.get()
    assert titles(good) == ["Gos hafið"]
    stack.origin.stop()
    time.sleep(1.5)  # past s-maxage: only stale-if-error lets Varnish answer now
    for _ in range(3):
        answer = stack.get()
        assert answer.status == 200 and answer.body == good.body
        time.sleep(0.3)


def test_nginx_revalidates_and_the_origin_answers_304(room: Newsroom, tmp_path: Path) -> None:
    need(servers.nginx_binary() if Path(servers.nginx_binary()).exists() else None, "nginx")
    port = servers.free_port()
    # nginx reads max-age, not s-maxage (FEEDS_S_MAXAGE unset follows max-age): one second here.
    origin = start_origin(room, tmp_path, port, MAX_AGE="1", STALE_WHILE_REVALIDATE="0")
    cache = caches.start_nginx_cache(port, tmp_path / "nginx")
    cache.wait_ready(FEED, 30)

    def status() -> str:
        return load.probe(cache.url(FEED)).headers["x-cache-status"]

    assert status() in ("HIT", "MISS")  # the wait above may have filled it already
    assert status() == "HIT"
    time.sleep(2.1)  # nginx counts lifetimes in whole seconds
    # Expired: nginx asks again with the validators it holds, and the origin has nothing new.
    assert status() == "REVALIDATED"
    assert status() in ("HIT", "REVALIDATED")  # a one-second lifetime may have run out again
    room.article("innlent", "gos", title="Gos hafið, uppfært", date="2026-10-01T12:00:00Z")
    wait_for(lambda: b"uppf" in load.probe(origin.url(FEED)).body, "the edit never showed at the origin")
    time.sleep(2.1)
    answer = load.probe(cache.url(FEED))
    assert answer.headers["x-cache-status"] == "EXPIRED" and titles(answer) == ["Gos hafið, uppfært"]
