"""The watch loop: edits, additions and deletions show up without a restart, whole.

These run the real watch loop (in a thread, as `flask --app app index --watch` runs it in its
own process) on the real file-system notifications of this machine, as production does.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from feeds import create_app

from .conftest import Clock, Newsroom, RunningIndexer, front_matter, parsed

FEED = "/feeds/rss.xml"
WAIT_SECONDS = 10.0


def wait_until(condition: Callable[[], bool]) -> None:
    """Polls until `condition` holds; fails after WAIT_SECONDS (a bound, not a speed claim)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "the change never showed up"
        time.sleep(0.02)


@pytest.fixture
def start_worker(newsroom: Newsroom, clock: Clock, tmp_path: Path) -> Callable[[], Flask]:
    """Starts apps the way server workers start: same content, same index, own process state."""

    def start() -> Flask:
        return create_app(
            {"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache", "SETTLE_SECONDS": 2}, clock=clock
        )

    return start


def titles(app: Flask, url: str = FEED) -> list[str]:
    return [entry.title for entry in parsed(app.test_client(), url).entries]


def ready(app: Flask) -> bool:
    return app.test_client().get("/healthz").status_code == 200


@pytest.fixture
def worker(
    newsroom: Newsroom, start_worker: Callable[[], Flask], start_indexer: Callable[[Flask], RunningIndexer]
) -> Flask:
    newsroom.article("innlent", "fyrsta", title="Fyrsta frétt", date="2026-10-01T12:00:00Z")
    newsroom.article("erlent", "onnur", title="Önnur frétt", date="2026-09-01T12:00:00Z")
    # Content that was there before the service started; fresher files wait to settle.
    an_hour_ago = time.time() - 3600
    for path in newsroom.root.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))
    app = start_worker()
    assert app.test_client().get(FEED).status_code == 503  # no index yet, and no indexer to build one
    start_indexer(app)
    wait_until(lambda: ready(app))
    assert titles(app) == ["Fyrsta frétt", "Önnur frétt"]
    return app


def test_an_edit_shows_up_without_a_restart(newsroom: Newsroom, worker: Flask) -> None:
    newsroom.article("innlent", "fyrsta", title="Fyrsta frétt, uppfærð", date="2026-10-01T12:00:00Z")
    wait_until(lambda: titles(worker) == ["Fyrsta frétt, uppfærð", "Önnur frétt"])
    assert titles(worker, "/feeds/innlent/atom.xml") == ["Fyrsta frétt, uppfærð"]


def test_a_new_article_and_a_new_photo_show_up(newsroom: Newsroom, worker: Flask) -> None:
    newsroom.article(
        "innlent",
        "ny",
        title="Ný frétt",
        date="2026-10-20T00:00:00Z",
        photos={"mynd.jpg": (50, 40)},
        images=[{"file": "mynd.jpg", "caption": "Mynd.", "credit": "AFP"}],
    )
    wait_until(lambda: titles(worker)[:1] == ["Ný frétt"])
    entry = parsed(worker.test_client(), FEED).entries[0]
    assert [content["url"] for content in entry.media_content] == ["http://localhost/innlent/ny/mynd.jpg"]


def test_a_deleted_article_disappears(newsroom: Newsroom, worker: Flask) -> None:
    shutil.rmtree(newsroom.root / "innlent" / "fyrsta")
    wait_until(lambda: titles(worker) == ["Önnur frétt"])
    assert worker.test_client().get("/innlent/fyrsta/").status_code == 404


def test_a_moved_bundle_keeps_its_guid(newsroom: Newsroom, worker: Flask) -> None:
    newsroom.article("innlent", "faersla", title="Færð frétt", id="2026-faersla", date="2026-10-10T00:00:00Z")
    wait_until(lambda: "Færð frétt" in titles(worker))
    guid = parsed(worker.test_client(), FEED).entries[0].id
    (newsroom.root / "innlent" / "faersla").rename(newsroom.root / "erlent" / "faersla")
    wait_until(lambda: titles(worker, "/feeds/erlent/rss.xml")[:1] == ["Færð frétt"])
    assert titles(worker, "/feeds/innlent/rss.xml") == ["Fyrsta frétt"]
    assert parsed(worker.test_client(), FEED).entries[0].id == guid


@pytest.mark.parametrize("pause", [0.0, 0.01])
def test_a_bundle_renamed_and_at_once_edited_in_its_new_place_leaves_nothing_under_its_old_name(
    newsroom: Newsroom, worker: Flask, pause: float
) -> None:
    """The edit's file is held until it is quiet, so the old name is synced alone first: it must
    still go once the new name is read, not wait for it for ever (which kept the old version
    published, beside or instead of the new one, with the same GUID)."""
    newsroom.article("innlent", "faersla", title="Færð frétt", id="2026-faersla", date="2026-10-10T00:00:00Z")
    wait_until(lambda: "Færð frétt" in titles(worker))
    (newsroom.root / "innlent" / "faersla").rename(newsroom.root / "innlent" / "faersla-ny")
    time.sleep(pause)
    newsroom.article("innlent", "faersla-ny", title="Færð og breytt", id="2026-faersla", date="2026-10-10T00:00:00Z")
    wait_until(lambda: titles(worker) == ["Færð og breytt", "Fyrsta frétt", "Önnur frétt"])
    client = worker.test_client()
    assert client.get("/innlent/faersla/").status_code == 404
    assert client.get("/innlent/faersla-ny/").status_code == 200
    assert client.get("/healthz").get_json()["content_errors"] == []


def test_a_half_written_file_is_never_published(newsroom: Newsroom, worker: Flask) -> None:
    text = front_matter({"title": "Löng frétt", "date": "2026-10-25T00:00:00Z"}) + "Upphaf. " * 200 + "ENDIR."
    path = newsroom.root / "innlent" / "longfrett" / "index.md"
    path.parent.mkdir()
    with open(path, "w", encoding="utf-8") as writer:
        writer.write(text[: len(text) // 2])
        writer.flush()
        # Another edit, closed: once it shows, the indexer has seen everything written before it.
        newsroom.article("erlent", "onnur", title="Önnur frétt, merki", date="2026-09-01T12:00:00Z")
        wait_until(lambda: "Önnur frétt, merki" in titles(worker))
        assert "Löng frétt" not in titles(worker)
        writer.write(text[len(text) // 2 :])
    wait_until(lambda: "Löng frétt" in titles(worker))
    entry = parsed(worker.test_client(), FEED).entries[0]
    assert entry.title == "Löng frétt"
    assert entry.content[0].value.rstrip().endswith("ENDIR.</p>")


def test_every_worker_sees_a_change(newsroom: Newsroom, worker: Flask, start_worker: Callable[[], Flask]) -> None:
    second = start_worker()
    assert titles(second) == ["Fyrsta frétt", "Önnur frétt"]
    newsroom.article("innlent", "fyrsta", title="Breytt í öllum", date="2026-10-01T12:00:00Z")
    for app in [worker, second]:

        def changed(app: Flask = app) -> bool:
            return titles(app)[:1] == ["Breytt í öllum"]

        wait_until(changed)


def test_a_second_indexer_waits_and_takes_over(
    newsroom: Newsroom,
    worker: Flask,
    start_indexer: Callable[[Flask], RunningIndexer],
    indexers: list[RunningIndexer],
) -> None:
    first = indexers[0]
    start_indexer(worker)
    newsroom.article("erlent", "ny", title="Fyrir skiptin", date="2026-10-29T00:00:00Z")
    wait_until(lambda: titles(worker)[:1] == ["Fyrir skiptin"])
    first.stop()
    newsroom.article("erlent", "ny2", title="Eftir skiptin", date="2026-10-30T00:00:00Z")
    wait_until(lambda: titles(worker)[:1] == ["Eftir skiptin"])
    assert ready(worker)
