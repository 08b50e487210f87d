"""Which feed documents changed bytes after a change: exactly those, in every scope and format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from feeds import create_app
from feeds.announcer import Announcer
from feeds.changes import ChangeTracker
from feeds.formats import FORMATS
from feeds.notify import Notifier
from feeds.publisher import Publisher

from .conftest import Clock, Newsroom


def documents(*feed_paths: str) -> set[str]:
    return {f"{feed_path}/{format_.file_name}" for feed_path in feed_paths for format_ in FORMATS}


@pytest.fixture
def room(newsroom: Newsroom) -> Newsroom:
    newsroom.article("innlent", "gos", title="Gos", date="2026-10-01T12:00:00Z", topics=["Eldgos", "Reykjanes"])
    newsroom.article("erlent", "kosning", title="Kosning", date="2026-09-01T12:00:00Z", topics=["Kosningar"])
    return newsroom


@pytest.fixture
def publisher(room: Newsroom, app: Flask) -> Publisher:
    found: Publisher = app.extensions["feeds"]
    found.sync_now(10)
    return found


@pytest.fixture
def tracker(publisher: Publisher, tmp_path: Path) -> ChangeTracker:
    made = ChangeTracker(publisher, tmp_path / "announced.json")
    first = made.look(None)
    assert not first and first.scopes_looked_at == 6  # site, 2 sections, 3 topics: taken as they are
    return made


def edit(room: Newsroom, publisher: Publisher, **changes: object) -> None:
    meta: dict[str, Any] = {"title": "Gos", "date": "2026-10-01T12:00:00Z", "topics": ["Eldgos", "Reykjanes"]}
    meta.update(changes)
    room.article("innlent", "gos", **meta)
    publisher.sync_now(10)


@pytest.mark.parametrize("bundles", [frozenset({"innlent/gos"}), None])
def test_an_edit_changes_exactly_the_feeds_that_hold_the_article(
    room: Newsroom, publisher: Publisher, tracker: ChangeTracker, bundles: frozenset[str] | None
) -> None:
    edit(room, publisher, title="Gos hafið")
    changes = tracker.look(bundles)
    assert set(changes.documents) == documents(
        "/feeds", "/feeds/innlent", "/feeds/topics/eldgos", "/feeds/topics/reykjanes"
    )
    assert not changes.gone
    assert changes.keys == {
        *(f"feed:{document}" for document in changes.documents),
        *("page:/", "page:/innlent/", "page:/topics/eldgos/", "page:/topics/reykjanes/"),
        "article:/innlent/gos/",
    }
    if bundles is not None:  # only the scopes that held or hold the bundle were looked at
        assert changes.scopes_looked_at == 4


def test_a_save_with_the_same_bytes_announces_nothing(
    room: Newsroom, publisher: Publisher, tracker: ChangeTracker
) -> None:
    before = publisher.store.version()
    edit(room, publisher, body="Fyrsta málsgrein fréttarinnar.\n\n## Millifyrirsögn\n\nÖnnur málsgrein.\n")
    assert publisher.store.version() > before  # read again: a new version of the content, same feeds
    assert not tracker.look(frozenset({"innlent/gos"}))
    assert not tracker.look(None)


def test_a_topic_dropped_is_gone_and_a_new_one_is_announced(
    room: Newsroom, publisher: Publisher, tracker: ChangeTracker
) -> None:
    edit(room, publisher, topics=["Eldgos", "Grindavík"])
    changes = tracker.look(frozenset({"innlent/gos"}))
    assert set(changes.gone) == documents("/feeds/topics/reykjanes")
    assert documents("/feeds/topics/grindavik") <= set(changes.documents)
    assert "feed:/feeds/topics/reykjanes/rss.xml" in changes.keys and "page:/topics/reykjanes/" in changes.keys


def test_changes_made_while_the_indexer_was_down_are_announced_at_its_start(
    room: Newsroom, publisher: Publisher, tracker: ChangeTracker, tmp_path: Path
) -> None:
    room.article("erlent", "kosning", title="Kosning lokið", date="2026-09-01T12:00:00Z", topics=["Kosningar"])
    publisher.sync_now(10)
    again = ChangeTracker(publisher, tmp_path / "announced.json")
    assert set(again.look(None).documents) == documents("/feeds", "/feeds/erlent", "/feeds/topics/kosningar")
    assert not ChangeTracker(publisher, tmp_path / "announced.json").look(None)


def test_an_embargo_lifting_changes_the_feeds_it_opens(
    room: Newsroom, publisher: Publisher, clock: Clock, tmp_path: Path
) -> None:
    room.article("erlent", "seinna", title="Seinna", date="2026-11-02T12:00:00Z")  # a day after NOW
    publisher.sync_now(10)
    tracker = ChangeTracker(publisher, tmp_path / "state.json")
    tracker.look(None)
    assert not tracker.look(None)
    clock.advance(days=2)
    assert set(tracker.look(None).documents) == documents("/feeds", "/feeds/erlent")


def test_documents_are_compared_at_the_configured_base_url(
    room: Newsroom, clock: Clock, tmp_path: Path, publisher: Publisher
) -> None:
    settings = {"CONTENT_DIR": room.root, "CACHE_DIR": tmp_path / "cache", "INDEXER": "inline"}
    other = create_app({**settings, "BASE_URL": "https://annad.example.is"}, clock=clock).extensions["feeds"]
    assert ChangeTracker(other).base_url == "https://annad.example.is"
    # A state file from another base URL says nothing about these bytes: taken as they are.
    ChangeTracker(publisher, tmp_path / "state.json").look(None)
    assert not ChangeTracker(other, tmp_path / "state.json").look(None)


def test_an_edit_changes_its_month_in_every_scope_and_no_other_month(
    room: Newsroom, publisher: Publisher, tracker: ChangeTracker
) -> None:
    assert not tracker.look_at_archives()
    edit(room, publisher, title="Gos hafið")
    tracker.look(frozenset({"innlent/gos"}))
    changes = tracker.look_at_archives()
    assert set(changes.documents) == documents(
        "/feeds/archive/2026-10",
        "/feeds/innlent/archive/2026-10",
        "/feeds/topics/eldgos/archive/2026-10",
        "/feeds/topics/reykjanes/archive/2026-10",
    )
    assert "page:/innlent/archive/2026-10/" in changes.keys and not changes.gone
    edit(room, publisher, title="Gos hafið")  # the same bytes again
    tracker.look(frozenset({"innlent/gos"}))
    assert not tracker.look_at_archives()


def test_a_month_that_comes_or_goes_changes_its_neighbours(
    room: Newsroom, publisher: Publisher, tracker: ChangeTracker
) -> None:
    edit(room, publisher, date="2026-08-15T12:00:00Z")  # October loses its only article; August gains it
    tracker.look(frozenset({"innlent/gos"}))
    changes = tracker.look_at_archives()
    assert set(changes.gone) == documents(
        "/feeds/archive/2026-10",
        "/feeds/innlent/archive/2026-10",
        "/feeds/topics/eldgos/archive/2026-10",
        "/feeds/topics/reykjanes/archive/2026-10",
    )
    assert set(changes.documents) == documents(
        "/feeds/archive/2026-08",
        # September's links change twice: its newer neighbour went, and an older one came.
        "/feeds/archive/2026-09",
        "/feeds/innlent/archive/2026-08",
        "/feeds/topics/eldgos/archive/2026-08",
        "/feeds/topics/reykjanes/archive/2026-08",
    )


def test_a_whole_pass_finds_archive_changes_too(room: Newsroom, publisher: Publisher, tracker: ChangeTracker) -> None:
    room.article("erlent", "kosning", title="Kosning lokið", date="2026-09-01T12:00:00Z", topics=["Kosningar"])
    publisher.sync_now(10)
    tracker.look(None)
    assert set(tracker.look_at_archives().documents) == documents(
        "/feeds/archive/2026-09", "/feeds/erlent/archive/2026-09", "/feeds/topics/kosningar/archive/2026-09"
    )


def test_an_embargo_lifting_is_looked_at_as_the_articles_it_opens(
    room: Newsroom, publisher: Publisher, clock: Clock, tmp_path: Path
) -> None:
    room.article("erlent", "seinna", title="Seinna", date="2026-11-02T12:00:00Z")  # a day after NOW
    publisher.sync_now(10)
    announcer = Announcer(ChangeTracker(publisher, tmp_path / "state.json"), Notifier([], []), None)
    announcer._look()  # the first look: taken as it is
    clock.advance(days=2)
    announcer._release_at = 0.0  # its time has come (the announcer's thread waits for it)
    announcer._look()
    feeds, months = announcer.announced
    assert set(feeds.documents) == documents("/feeds", "/feeds/erlent")
    assert feeds.scopes_looked_at == 2  # only the scopes of the article that became public
    # A month that came, and its older neighbours, which now link to it.
    assert set(months.documents) == documents(
        "/feeds/archive/2026-11",
        "/feeds/erlent/archive/2026-11",
        "/feeds/archive/2026-10",
        "/feeds/erlent/archive/2026-09",
    )
