"""Conditional GET, compression and the render cache, as aggregators meet them."""

from __future__ import annotations

import gzip
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from zlib_ng import zlib_ng

from feeds import create_app
from feeds.description import Scope
from feeds.formats import format_for
from feeds.render_cache import GZIP_LEVEL, GZIP_TAG, gzip_body

from .conftest import Clock, Newsroom

FEED = "/feeds/rss.xml"
#: The defaults: readers keep a feed a minute, and so do shared caches unless purges are configured.
CACHE_CONTROL = "public, max-age=60, s-maxage=60, stale-while-revalidate=60, stale-if-error=86400"


@pytest.fixture
def room(newsroom: Newsroom) -> Newsroom:
    newsroom.article(
        "innlent", "fyrsta", title="Fyrsta frétt", date="2026-10-01T12:00:00Z", updated="2026-10-02T08:30:00Z"
    )
    newsroom.article("erlent", "onnur", title="Önnur frétt", date="2026-09-01T12:00:00Z")
    return newsroom


def test_feed_carries_strong_validators_and_caching_headers(room: Newsroom, client: FlaskClient) -> None:
    response = client.get(FEED)
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert parsedate_to_datetime(response.headers["Last-Modified"]).isoformat() == "2026-10-02T08:30:00+00:00"
    assert response.headers["Cache-Control"] == CACHE_CONTROL
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.headers["Content-Length"] == str(len(response.data))


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"If-None-Match": "{etag}"}, 304),
        ({"If-None-Match": 'W/{etag}, "annad"'}, 304),
        ({"If-None-Match": "*"}, 304),
        ({"If-None-Match": '"annad"'}, 200),
        ({"If-Modified-Since": "Fri, 02 Oct 2026 08:30:00 GMT"}, 304),
        ({"If-Modified-Since": "Sat, 03 Oct 2026 00:00:00 GMT"}, 304),
        ({"If-Modified-Since": "Fri, 02 Oct 2026 08:29:59 GMT"}, 200),
        ({"If-Modified-Since": "ekki dagsetning"}, 200),
        # If-None-Match wins over If-Modified-Since (RFC 9110 section 13.2.2).
        ({"If-None-Match": '"annad"', "If-Modified-Since": "Sat, 03 Oct 2026 00:00:00 GMT"}, 200),
    ],
)
def test_conditional_requests(room: Newsroom, client: FlaskClient, headers: dict[str, str], status: int) -> None:
    etag = client.get(FEED).headers["ETag"]
    response = client.get(FEED, headers={name: value.format(etag=etag) for name, value in headers.items()})
    assert response.status_code == status
    if status == 304:
        assert response.data == b""
        assert response.headers["ETag"] == etag
        assert response.headers["Cache-Control"] == CACHE_CONTROL


def test_gzip_round_trips_with_its_own_etag(room: Newsroom, client: FlaskClient) -> None:
    plain = client.get(FEED)
    compressed = client.get(FEED, headers={"Accept-Encoding": "br;q=1.0, gzip;q=0.8"})
    assert compressed.headers["Content-Encoding"] == "gzip"
    assert compressed.headers["Vary"] == "Accept-Encoding"
    assert compressed.headers["Content-Length"] == str(len(compressed.data))
    assert gzip.decompress(compressed.data) == plain.data
    assert compressed.headers["ETag"] != plain.headers["ETag"]
    # Other code or another level compresses to other bytes: the ETag must change with them.
    assert compressed.headers["ETag"] == plain.headers["ETag"][:-1] + f'-{GZIP_TAG}"'
    assert f"gzip{GZIP_LEVEL}-zng{zlib_ng.ZLIBNG_VERSION}" == GZIP_TAG
    again = client.get(FEED, headers={"Accept-Encoding": "gzip", "If-None-Match": compressed.headers["ETag"]})
    assert again.status_code == 304
    assert client.get(FEED, headers={"Accept-Encoding": "gzip"}).data == compressed.data


def test_gzip_copy_is_the_same_bytes_on_another_node_and_in_the_export(
    room: Newsroom, app: Flask, clock: Clock, tmp_path: Path
) -> None:
    """Its strong ETag promises that: a node with a cache of its own must not send other bytes."""
    first = app.test_client().get(FEED, headers={"Accept-Encoding": "gzip"})
    other = create_app({"CONTENT_DIR": room.root, "CACHE_DIR": tmp_path / "other", "INDEXER": "inline"}, clock=clock)
    restarted = other.test_client().get(FEED, headers={"Accept-Encoding": "gzip"})
    assert restarted.headers["ETag"] == first.headers["ETag"]
    assert restarted.data == first.data
    plain = app.test_client().get(FEED).data
    assert gzip_body(plain) == first.data  # what the export writes as the .gz
    header = first.data[:10]
    assert header[:3] == b"\x1f\x8b\x08" and header[3] == 0, "no name, no comment, no extra field"
    assert header[4:8] == bytes(4), "no time"


@pytest.mark.parametrize("accept", ["gzip;q=0", "identity", "deflate, br", "gzip;q=nonsense", ""])
def test_no_gzip_unless_accepted(room: Newsroom, client: FlaskClient, accept: str) -> None:
    response = client.get(FEED, headers={"Accept-Encoding": accept})
    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers
    assert response.data.startswith(b"<?xml")


@pytest.mark.parametrize("url", [FEED, "/feeds/innlent/atom.xml", "/feeds/feed.json"])
def test_head_answers_with_the_headers_of_get(room: Newsroom, client: FlaskClient, url: str) -> None:
    get, head = client.get(url), client.head(url)
    assert head.status_code == 200 and head.data == b""
    for name in ("ETag", "Last-Modified", "Content-Type", "Content-Length", "Cache-Control"):
        assert head.headers[name] == get.headers[name]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"MAX_AGE": 300}, "public, max-age=300, s-maxage=300, stale-while-revalidate=60, stale-if-error=86400"),
        # Purged on every change, a shared cache may keep a feed for a day; readers still poll every minute.
        (
            {"PURGE_URLS": "http://127.0.0.1:9/"},
            "public, max-age=60, s-maxage=86400, stale-while-revalidate=60, stale-if-error=86400",
        ),
        (
            {"S_MAXAGE": 600, "STALE_WHILE_REVALIDATE": 5, "STALE_IF_ERROR": 0},
            "public, max-age=60, s-maxage=600, stale-while-revalidate=5, stale-if-error=0",
        ),
    ],
)
def test_cache_lifetimes_are_configurable(
    room: Newsroom, clock: Clock, tmp_path: Path, settings: dict[str, object], expected: str
) -> None:
    app = create_app(
        {"CONTENT_DIR": room.root, "CACHE_DIR": tmp_path / "c", "INDEXER": "inline", **settings}, clock=clock
    )
    client = app.test_client()
    for url in (FEED, "/", "/innlent/", "/innlent/fyrsta/"):
        assert client.get(url).headers["Cache-Control"] == expected, url


def test_etag_is_the_same_in_every_worker_and_after_a_restart(room: Newsroom, clock: Clock, tmp_path: Path) -> None:
    def etag(cache: str) -> str:
        app = create_app({"CONTENT_DIR": room.root, "CACHE_DIR": tmp_path / cache, "INDEXER": "inline"}, clock=clock)
        return str(app.test_client().get(FEED).headers["ETag"])

    first, second_worker, after_restart = etag("shared"), etag("shared"), etag("fresh")
    assert first == second_worker == after_restart


def test_a_feed_is_rendered_once_per_content_version(room: Newsroom, app: Flask, client: FlaskClient) -> None:
    publisher = app.extensions["feeds"]
    rss = format_for("rss.xml")
    client.get(FEED)
    first = publisher.rendered(Scope(), rss, "http://localhost")
    assert publisher.rendered(Scope(), rss, "http://localhost") is first
    room.article("innlent", "thridja", title="Þriðja frétt", date="2026-10-05T00:00:00Z")
    client.get(FEED)
    assert publisher.rendered(Scope(), rss, "http://localhost") is not first


def test_an_edit_changes_the_etag_and_the_304_becomes_a_200(room: Newsroom, client: FlaskClient) -> None:
    etag = client.get(FEED).headers["ETag"]
    room.article(
        "innlent", "fyrsta", title="Fyrsta frétt, leiðrétt", date="2026-10-01T12:00:00Z", updated="2026-10-02T08:30:00Z"
    )
    response = client.get(FEED, headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response.headers["ETag"] != etag


def test_an_embargo_lifting_changes_the_cached_feed(room: Newsroom, client: FlaskClient, clock: Clock) -> None:
    room.article("innlent", "bann", title="Í banni", date="2026-11-01T12:05:00Z")
    before = client.get(FEED)
    assert client.get(FEED, headers={"If-None-Match": before.headers["ETag"]}).status_code == 304
    clock.advance(minutes=5)
    after = client.get(FEED, headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert parsedate_to_datetime(after.headers["Last-Modified"]).isoformat() == "2026-11-01T12:05:00+00:00"


@pytest.mark.parametrize("host", ['evil"><script>', "a b", "x" * 300 + "/y", "bad_host:80"])
def test_a_hostile_host_header_is_refused_not_reflected(room: Newsroom, client: FlaskClient, host: str) -> None:
    for url in (FEED, "/"):
        response = client.get(url, headers={"Host": host})
        assert response.status_code == 400, (url, host)


def test_last_modified_is_formatted_for_http(room: Newsroom, client: FlaskClient) -> None:
    response = client.get(FEED)
    stamp = int(parsedate_to_datetime(response.headers["Last-Modified"]).timestamp())
    assert response.headers["Last-Modified"] == formatdate(stamp, usegmt=True)


def test_the_render_cache_keeps_to_its_budget(room: Newsroom, clock: Clock, tmp_path: Path) -> None:
    room.article("innlent", "long", title="Löng frétt", body="Langur texti. " * 3000)  # about 40 KB a document
    app = create_app(
        {"CONTENT_DIR": room.root, "CACHE_DIR": tmp_path / "c", "INDEXER": "inline", "RENDER_CACHE_MB": 1},
        clock=clock,
    )
    client = app.test_client()
    publisher = app.extensions["feeds"]
    rss = format_for("rss.xml")
    first = client.get(FEED)
    # Many hosts, each its own document: far more than a megabyte's worth is asked for.
    for number in range(400):
        assert client.get(FEED, headers={"Host": f"h{number}.example.is"}).status_code == 200
    assert publisher.rendered(Scope(), rss, "http://h399.example.is") is publisher.rendered(
        Scope(), rss, "http://h399.example.is"
    )
    kept = [len(entry.body) for entry in publisher._cache.values()]
    assert min(kept) > 40_000 and 1 < len(kept) < 400
    assert sum(kept) <= 1024 * 1024
    assert client.get(FEED).data == first.data  # forgotten, rendered again, the same bytes


def test_syncing_no_bundles_changes_nothing(room: Newsroom, app: Flask, client: FlaskClient) -> None:
    client.get(FEED)
    publisher = app.extensions["feeds"]
    version = publisher.store.version()
    indexer = publisher.indexer()
    indexer.acquire(wait=False)
    try:
        assert indexer.open().version == version
        assert indexer.sync_bundles([]).version == version
        assert indexer.sync_bundles(["innlent/fyrsta"]).parsed == 0  # unchanged on disk
    finally:
        indexer.release()
