"""The index's log of changed bundles: what a static export (or any follower) reads to look only
at what changed since it last looked, and None whenever the log cannot say."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from flask import Flask

from feeds import store as store_module
from feeds.publisher import Publisher

from .conftest import Newsroom


def synced(app: Flask) -> Publisher:
    publisher: Publisher = app.extensions["feeds"]
    publisher.sync_now(wait_seconds=5)
    return publisher


@pytest.fixture
def room(newsroom: Newsroom) -> Newsroom:
    for slug in ("eitt", "tvo", "thrju"):
        newsroom.article("innlent", slug, date="2026-10-01T12:00:00Z", topics=["Veður"])
    newsroom.article("erlent", "fjogur", id="innlent/eitt", date="2026-10-01T13:00:00Z")  # shares eitt's GUID
    return newsroom


def test_the_log_names_each_bundle_stored_removed_held_back_or_published_again(app: Flask, room: Newsroom) -> None:
    publisher = synced(app)
    start = publisher.store.version()
    assert publisher.store.changes_since(start) == frozenset()
    room.article("innlent", "tvo", title="Breytt", date="2026-10-01T12:00:00Z")
    shutil.rmtree(room.root / "innlent" / "thrju")
    edited = synced(app).store.version()
    assert edited[1] > start[1]
    assert publisher.store.changes_since(start) == frozenset({"innlent/tvo", "innlent/thrju"})
    assert publisher.store.changes_since(edited) == frozenset()
    # The first of two articles that share a GUID goes: the other is published, with no file of its own changed.
    shutil.rmtree(room.root / "innlent" / "eitt")
    assert synced(app).store.changes_since(edited) == frozenset({"innlent/eitt", "erlent/fjogur"})
    assert publisher.store.changes_since(start) == frozenset(
        {"innlent/tvo", "innlent/thrju", "innlent/eitt", "erlent/fjogur"}
    )


def test_the_log_says_nothing_of_another_generation_or_of_before_its_start(app: Flask, room: Newsroom) -> None:
    publisher = synced(app)
    generation, version = publisher.store.version()
    assert publisher.store.changes_since((generation + 1, version)) is None
    # The build that filled the generation is nobody's change: it starts the log.
    assert publisher.store.changes_since((generation, version - 1)) is None


def test_a_change_too_large_to_log_starts_the_log_again(
    app: Flask, room: Newsroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = synced(app)
    start = publisher.store.version()
    monkeypatch.setattr(store_module, "CHANGE_LOG_LIMIT", 2)
    for slug in ("eitt", "tvo", "thrju"):
        room.article("innlent", slug, title=f"Ný {slug}", date="2026-10-01T12:00:00Z")
    large = synced(app).store.version()
    assert publisher.store.changes_since(start) is None
    assert publisher.store.changes_since(large) == frozenset()
    room.article("innlent", "tvo", title="Aftur", date="2026-10-01T12:00:00Z")
    assert synced(app).store.changes_since(large) == frozenset({"innlent/tvo"})


def test_old_entries_are_dropped_and_the_log_then_starts_later(
    app: Flask, room: Newsroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHANGE_LOG_VERSIONS", 2)
    monkeypatch.setattr(store_module, "CHANGE_LOG_PRUNE_EVERY", 1)
    publisher = synced(app)
    versions = [publisher.store.version()]
    for number in range(4):
        room.article("innlent", "tvo", title=f"Útgáfa {number}", date="2026-10-01T12:00:00Z")
        versions.append(synced(app).store.version())
    assert [publisher.store.changes_since(version) for version in versions] == [
        None, None, frozenset({"innlent/tvo"}), frozenset({"innlent/tvo"}), frozenset()
    ]  # fmt: skip
    database = publisher.store.files.database(versions[-1][0])
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT MIN(version) FROM change").fetchone()[0] > versions[1][1]
