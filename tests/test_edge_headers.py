"""What shared caches and WebSub hubs read: hub and self links in every format, Link headers, surrogate keys."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient

from feeds import create_app
from feeds.errors import ConfigError

from .conftest import NS, Clock, Newsroom, xml
from .test_jsonfeed import REGISTRY, SCHEMA

HUBS = ("https://hub.example.org/", "https://websub.example.net/hub")
BASE = "https://frettir.example.is"


@pytest.fixture
def room(newsroom: Newsroom) -> Newsroom:
    newsroom.article("innlent", "fyrsta", title="Fyrsta frétt", date="2026-10-01T12:00:00Z", topics=["Eldgos"])
    newsroom.article("erlent", "onnur", title="Önnur frétt", date="2026-09-01T12:00:00Z")
    return newsroom


def make_app(room: Newsroom, clock: Clock, tmp_path: Path, **settings: object) -> Flask:
    config = {"CONTENT_DIR": room.root, "CACHE_DIR": tmp_path / "cache", "INDEXER": "inline", **settings}
    return create_app(config, clock=clock)


@pytest.fixture
def hubbed(room: Newsroom, clock: Clock, tmp_path: Path) -> FlaskClient:
    return make_app(room, clock, tmp_path, WEBSUB_HUBS=" ".join(HUBS), BASE_URL=BASE).test_client()


@pytest.mark.parametrize("path", ["/feeds/rss.xml", "/feeds/innlent/atom.xml", "/feeds/topics/eldgos/rss.xml"])
def test_rss_and_atom_name_their_hubs_and_themselves(hubbed: FlaskClient, path: str) -> None:
    root = xml(hubbed, path)
    parent = root.find("channel") if root.tag == "rss" else root
    assert parent is not None
    links = parent.findall("atom:link", NS)
    assert [link.get("href") for link in links if link.get("rel") == "hub"] == list(HUBS)
    assert [link.get("href") for link in links if link.get("rel") == "self"] == [BASE + path]


def test_json_feed_names_its_hubs(hubbed: FlaskClient) -> None:
    document = json.loads(hubbed.get("/feeds/erlent/feed.json").data)
    assert document["hubs"] == [{"type": "WebSub", "url": hub} for hub in HUBS]
    assert document["feed_url"] == BASE + "/feeds/erlent/feed.json"
    jsonschema.Draft4Validator(SCHEMA, registry=REGISTRY).validate(document)


@pytest.mark.parametrize("path", ["/feeds/rss.xml", "/feeds/innlent/atom.xml", "/feeds/topics/eldgos/feed.json"])
def test_link_headers_name_hubs_and_self(hubbed: FlaskClient, path: str) -> None:
    link = hubbed.get(path).headers["Link"]
    assert link == ", ".join([*(f'<{hub}>; rel="hub"' for hub in HUBS), f'<{BASE}{path}>; rel="self"'])


def test_without_hubs_nothing_is_advertised(room: Newsroom, client: FlaskClient) -> None:
    response = client.get("/feeds/rss.xml")
    assert "Link" not in response.headers
    assert b'rel="hub"' not in response.data
    assert "hubs" not in json.loads(client.get("/feeds/feed.json").data)


def test_feeds_carry_keys_for_themselves_and_each_article(room: Newsroom, client: FlaskClient) -> None:
    response = client.get("/feeds/rss.xml")
    expected = "feed:/feeds/rss.xml article:/innlent/fyrsta/ article:/erlent/onnur/"
    assert response.headers["xkey"] == response.headers["Surrogate-Key"] == expected
    assert client.get("/feeds/topics/eldgos/atom.xml").headers["xkey"] == (
        "feed:/feeds/topics/eldgos/atom.xml article:/innlent/fyrsta/"
    )
    # A 304 confirms bytes a cache already holds, with their keys.
    again = client.get("/feeds/rss.xml", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and "xkey" not in again.headers


def test_pages_and_photos_carry_keys(newsroom: Newsroom, client: FlaskClient) -> None:
    newsroom.article(
        "innlent",
        "mynd",
        title="Með mynd",
        date="2026-10-05T00:00:00Z",
        photos={"a.jpg": (40, 30)},
        images=[{"file": "a.jpg", "caption": "Mynd.", "credit": "AFP"}],
    )
    assert client.get("/").headers["xkey"] == "page:/ article:/innlent/mynd/"
    assert client.get("/innlent/").headers["Surrogate-Key"] == "page:/innlent/ article:/innlent/mynd/"
    assert client.get("/innlent/mynd/").headers["xkey"] == "article:/innlent/mynd/"
    photo = client.get("/innlent/mynd/a.jpg")
    assert photo.headers["xkey"] == "article:/innlent/mynd/"
    assert photo.headers["Cache-Control"].startswith("public, max-age=60, s-maxage=60")
    photo.close()


@pytest.mark.parametrize(
    ("settings", "variable"),
    [
        ({"WEBSUB_HUBS": "https://hub.example.org/"}, "FEEDS_WEBSUB_HUBS"),  # no base URL to announce
        ({"WEBSUB_HUBS": "hub.example.org", "BASE_URL": BASE}, "FEEDS_WEBSUB_HUBS"),
        ({"PURGE_URLS": "http://127.0.0.1:notaport/"}, "FEEDS_PURGE_URLS"),
        ({"PURGE_URLS": 6081}, "FEEDS_PURGE_URLS"),
        ({"S_MAXAGE": "a day"}, "FEEDS_S_MAXAGE"),
        ({"STALE_IF_ERROR": -1}, "FEEDS_STALE_IF_ERROR"),
        ({"STALE_WHILE_REVALIDATE": "x"}, "FEEDS_STALE_WHILE_REVALIDATE"),
    ],
)
def test_bad_settings_name_the_variable(
    room: Newsroom, clock: Clock, tmp_path: Path, settings: dict[str, object], variable: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        make_app(room, clock, tmp_path, **settings)
    assert raised.value.key == variable
