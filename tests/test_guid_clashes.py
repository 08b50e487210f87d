"""Articles that would share a GUID: the one published first is, the others are held back and named.

Readers keep one item per GUID, so of two articles that share one, most subscribers would see only
the first, and some would see the second replace it. A bundle copied to start a new article keeps
the old one's `id`: dated the same day, the copy would take the old article's GUID.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from feeds import create_app
from feeds.changes import ChangeTracker
from feeds.publisher import Publisher
from feeds.scanner import SyncReport
from feeds.watcher import watch

from .conftest import Clock, Newsroom, parsed, status

FIRST: dict[str, Any] = {"title": "Eldgos hafið", "id": "2026-gos", "date": "2026-10-01T12:00:00Z"}
FIRST["topics"] = ["Eldgos"]
COPY: dict[str, Any] = {"title": "Nýtt gos í Grindavík", "id": "2026-gos", "date": "2026-10-01T18:00:00Z"}
COPY["topics"] = ["Eldgos", "Grindavík"]


def held(path: str = "innlent/gos-afrit", keeper: str = "innlent/gos") -> str:
    """What `check` says of an article held back."""
    return (
        f"{path}/index.md: held back: it shares its GUID (…,2026-10-01:2026-gos) with {keeper},"
        " published before it, and readers show one item per GUID: give it an id of its own"
    )


HELD = held()


def rss_items(client: FlaskClient, url: str) -> list[tuple[str, str]]:
    """(title, guid) of each item, in order, the way a reader sees them."""
    response = client.get(url)
    assert response.status_code == 200, url
    channel = etree.fromstring(response.get_data()).find("channel")
    assert channel is not None
    return [(str(item.findtext("title")), str(item.findtext("guid"))) for item in channel.iter("item")]


def titles(client: FlaskClient, url: str = "/feeds/rss.xml") -> list[str]:
    return [title for title, _ in rss_items(client, url)]


def check(app: Flask) -> tuple[int, list[str]]:
    result = app.test_cli_runner().invoke(args=["check"])
    return result.exit_code, result.stdout.splitlines()


def test_the_article_published_first_keeps_the_guid_and_the_copy_is_held_back_and_named(
    newsroom: Newsroom, app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    newsroom.article("innlent", "gos", **FIRST)
    newsroom.article("innlent", "gos-afrit", **COPY)
    # The same id on another day is another GUID: published.
    newsroom.article("innlent", "gos-sidar", title="Gosi lokið", id="2026-gos", date="2026-10-09T12:00:00Z")
    items = rss_items(client, "/feeds/rss.xml")
    assert [title for title, _ in items] == ["Gosi lokið", "Eldgos hafið"]
    assert len({guid for _, guid in items}) == 2
    assert [entry.title for entry in parsed(client, "/feeds/atom.xml").entries] == ["Gosi lokið", "Eldgos hafið"]
    jsonfeed = json.loads(client.get("/feeds/feed.json").get_data())
    assert [item["title"] for item in jsonfeed["items"]] == ["Gosi lokið", "Eldgos hafið"]
    assert titles(client, "/feeds/innlent/rss.xml") == ["Gosi lokið", "Eldgos hafið"]
    assert titles(client, "/feeds/topics/eldgos/rss.xml") == ["Eldgos hafið"]
    # Held back everywhere: its page, and the topic only it has.
    assert status(client, "/innlent/gos-afrit/") == 404
    assert status(client, "/feeds/topics/grindavik/rss.xml") == 404
    assert status(client, "/innlent/gos/") == 200
    # Named where every other problem is: the log, `check` and /healthz.
    assert caplog.messages.count(HELD) == 1
    assert check(app) == (1, [HELD])
    health = client.get("/healthz").get_json()
    assert health["status"] == "degraded"
    path, _, reason = HELD.partition(": ")
    assert health["content_errors"] == [{"path": path, "reason": reason}]


@pytest.mark.parametrize("copy_first", [True, False])
def test_which_article_is_held_back_does_not_depend_on_the_order_they_were_read_in(
    newsroom: Newsroom, app: Flask, client: FlaskClient, copy_first: bool
) -> None:
    """Every node agrees: the first published (then the first by path) is the one published."""
    first, then = [("gos-afrit", COPY), ("gos", FIRST)] if copy_first else [("gos", FIRST), ("gos-afrit", COPY)]
    newsroom.article("innlent", first[0], **first[1])
    assert len(titles(client)) == 1
    newsroom.article("innlent", then[0], **then[1])
    assert titles(client) == ["Eldgos hafið"]
    assert check(app) == (1, [HELD])


def test_of_two_published_at_the_same_moment_the_first_by_path_is_published(
    newsroom: Newsroom, app: Flask, client: FlaskClient
) -> None:
    newsroom.article("innlent", "gos-b", **FIRST | {"title": "Seinni"})
    newsroom.article("innlent", "gos-a", **FIRST | {"title": "Fyrri"})
    assert titles(client) == ["Fyrri"]
    assert check(app)[1] == [held("innlent/gos-b", keeper="innlent/gos-a")]


def _give_the_copy_an_id_of_its_own(newsroom: Newsroom) -> None:
    newsroom.article("innlent", "gos-afrit", **COPY | {"id": "2026-gos-grindavik"})


def _remove_the_first(newsroom: Newsroom) -> None:
    shutil.rmtree(newsroom.root / "innlent" / "gos")


def _make_the_first_a_draft(newsroom: Newsroom) -> None:
    newsroom.article("innlent", "gos", **FIRST | {"draft": True})


def _give_the_first_another_id(newsroom: Newsroom) -> None:
    newsroom.article("innlent", "gos", **FIRST | {"id": "2026-eldgos"})


def _move_the_first_to_another_day(newsroom: Newsroom) -> None:
    newsroom.article("innlent", "gos", **FIRST | {"date": "2026-09-30T12:00:00Z"})


@pytest.mark.parametrize(
    "change",
    [
        _give_the_copy_an_id_of_its_own,
        _remove_the_first,
        _make_the_first_a_draft,
        _give_the_first_another_id,
        _move_the_first_to_another_day,
    ],
)
def test_a_held_article_is_published_once_it_shares_its_guid_with_no_other(
    newsroom: Newsroom, app: Flask, client: FlaskClient, change: Callable[[Newsroom], None]
) -> None:
    newsroom.article("innlent", "gos", **FIRST)
    newsroom.article("innlent", "gos-afrit", **COPY)
    assert titles(client) == ["Eldgos hafið"]
    change(newsroom)
    assert "Nýtt gos í Grindavík" in titles(client)
    items = rss_items(client, "/feeds/rss.xml")
    assert len({guid for _, guid in items}) == len(items)
    # With its topics: the topic only it has is back.
    assert titles(client, "/feeds/topics/grindavik/rss.xml") == ["Nýtt gos í Grindavík"]
    assert "Nýtt gos í Grindavík" in titles(client, "/feeds/topics/eldgos/rss.xml")
    assert status(client, "/innlent/gos-afrit/") == 200
    assert check(app) == (0, [])


def test_a_broken_save_of_the_first_keeps_its_last_good_version_and_the_copy_held(
    newsroom: Newsroom, app: Flask, client: FlaskClient
) -> None:
    newsroom.article("innlent", "gos", **FIRST)
    newsroom.article("innlent", "gos-afrit", **COPY)
    assert titles(client) == ["Eldgos hafið"]
    newsroom.write("innlent/gos/index.md", "---\ntitle: [ólokið\n---\nTexti.\n")
    assert titles(client) == ["Eldgos hafið"]
    code, reported = check(app)
    assert code == 1
    assert reported[0].startswith("innlent/gos/index.md: ")
    assert reported[1:] == [HELD]


def test_a_third_article_is_held_back_too_and_published_when_its_turn_comes(
    newsroom: Newsroom, app: Flask, client: FlaskClient
) -> None:
    newsroom.article("innlent", "gos", **FIRST)
    newsroom.article("innlent", "gos-afrit", **COPY)
    newsroom.article("innlent", "gos-thridja", **COPY | {"title": "Þriðja", "date": "2026-10-01T20:00:00Z"})
    assert titles(client) == ["Eldgos hafið"]
    assert len(check(app)[1]) == 2
    _remove_the_first(newsroom)
    assert titles(client) == ["Nýtt gos í Grindavík"]
    assert check(app)[1] == [held("innlent/gos-thridja", keeper="innlent/gos-afrit")]


Synced = list[tuple[SyncReport, frozenset[str] | None]]


@pytest.fixture
def watched(newsroom: Newsroom, clock: Clock, tmp_path: Path) -> Iterator[tuple[Publisher, Synced]]:
    """The real watch loop in a thread, with every sync it reports recorded."""
    newsroom.article("innlent", "gos", **FIRST)
    newsroom.article("innlent", "gos-afrit", **COPY)
    app = create_app({"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache", "SETTLE_SECONDS": 0}, clock=clock)
    publisher: Publisher = app.extensions["feeds"]
    synced: Synced = []
    stop = threading.Event()
    thread = threading.Thread(
        target=watch,
        args=(publisher.indexer(), newsroom.root, 3600.0, stop, lambda report, asked: synced.append((report, asked))),
        daemon=True,
    )
    thread.start()
    try:
        yield publisher, synced
    finally:
        stop.set()
        thread.join(timeout=30)


def test_when_the_first_goes_the_feeds_of_the_article_published_in_its_place_are_announced(
    newsroom: Newsroom, watched: tuple[Publisher, Synced], tmp_path: Path
) -> None:
    """The watch loop names the bundle published again among the changed ones, so that the
    feeds only it is in (its own topic's) are announced and purged too."""
    publisher, synced = watched
    deadline = time.monotonic() + 10
    while not synced:
        assert time.monotonic() < deadline, "the watch loop never synced"
        time.sleep(0.02)
    tracker = ChangeTracker(publisher, tmp_path / "announced.json")
    tracker.look(None)  # the feeds as they are: the copy held back
    _remove_the_first(newsroom)
    while not any(asked and "innlent/gos" in asked for _, asked in synced):
        assert time.monotonic() < deadline, "the removal was never synced"
        time.sleep(0.02)
    report, asked = next((report, asked) for report, asked in synced if asked and "innlent/gos" in asked)
    assert report.regrouped == {"innlent/gos-afrit"}
    assert asked == {"innlent/gos", "innlent/gos-afrit"}
    changed = tracker.look(asked)
    assert {"/feeds/topics/grindavik/rss.xml", "/feeds/topics/eldgos/rss.xml", "/feeds/rss.xml"} <= set(
        changed.documents
    )
    assert "article:/innlent/gos-afrit/" in changed.keys
