"""Never lose an article, never go down: broken saves, damaged indexes, races, and /healthz."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from bench.privileges import drop_permission_overrides
from feeds import create_app, scanner, store
from feeds.content import read_article
from feeds.indexer import Indexer
from feeds.model import Article, Site
from feeds.publisher import Publisher
from feeds.watcher import watch

from .conftest import Clock, Newsroom, RunningIndexer, front_matter, parsed

ROOT = Path(__file__).resolve().parent.parent
FLASK = Path(sys.executable).parent / "flask"
FEEDS = ["/feeds/rss.xml", "/feeds/innlent/atom.xml", "/feeds/topics/eldgos/feed.json", "/feeds/erlent/rss.xml"]
WAIT_SECONDS = 15.0
#: In-place saves in the race test: without the fix, about one in 25 was read half-written.
SAVES = 150


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def titles(client: FlaskClient, url: str = "/feeds/rss.xml") -> list[str]:
    return [entry.title for entry in parsed(client, url).entries]


def health(client: FlaskClient) -> tuple[int, dict[str, Any]]:
    response = client.get("/healthz")
    return response.status_code, response.get_json()


# -- the last good version ------------------------------------------------------------------------


def test_a_broken_save_keeps_the_last_good_version_published(
    newsroom: Newsroom, app: Flask, client: FlaskClient
) -> None:
    newsroom.article("innlent", "frett", title="Góð útgáfa", id="frett-1", topics=["Eldgos"])
    newsroom.article("erlent", "onnur", title="Önnur frétt", date="2026-09-01T00:00:00Z")
    assert titles(client) == ["Góð útgáfa", "Önnur frétt"]
    newsroom.write("innlent/frett/index.md", "---\ntitle: [ólokið\ndate: '2026-10-01'\n---\nTexti.\n")
    for url in ["/feeds/rss.xml", "/feeds/atom.xml", "/feeds/innlent/rss.xml"]:
        assert titles(client, url)[0] == "Góð útgáfa", url
    assert client.get("/feeds/feed.json").get_json()["items"][0]["title"] == "Góð útgáfa"
    assert titles(client, "/feeds/topics/eldgos/rss.xml") == ["Góð útgáfa"]
    assert client.get("/innlent/frett/").status_code == 200
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1
    assert result.stdout.startswith("innlent/frett/index.md: broken YAML front matter")
    code, body = health(client)
    assert (code, body["status"]) == (200, "degraded")
    assert [error["path"] for error in body["content_errors"]] == ["innlent/frett/index.md"]

    newsroom.article("innlent", "frett", title="Lagfærð útgáfa", id="frett-1")
    assert titles(client) == ["Lagfærð útgáfa", "Önnur frétt"]
    assert app.test_cli_runner().invoke(args=["check"]).exit_code == 0
    assert health(client)[1]["status"] == "ok"


@pytest.mark.parametrize("removal", ["deleted", "draft"])
def test_deleting_or_drafting_a_broken_article_unpublishes_it(
    newsroom: Newsroom, client: FlaskClient, removal: str
) -> None:
    newsroom.article("innlent", "frett", title="Góð útgáfa")
    assert titles(client) == ["Góð útgáfa"]
    newsroom.write("innlent/frett/index.md", "---\ntitle: [\n---\n")
    assert titles(client) == ["Góð útgáfa"]
    if removal == "deleted":
        shutil.rmtree(newsroom.root / "innlent" / "frett")
    else:
        newsroom.article("innlent", "frett", title="Góð útgáfa", draft=True)
    assert titles(client) == []
    assert client.get("/innlent/frett/").status_code == 404


def test_broken_site_settings_keep_the_last_good_ones(newsroom: Newsroom, client: FlaskClient) -> None:
    newsroom.article("innlent", "frett", title="Frétt", id="frett-1")
    before = parsed(client, "/feeds/atom.xml")
    newsroom.write("_index.md", "---\ntitle: [\n---\n")
    after = parsed(client, "/feeds/atom.xml")
    assert after.feed.title == before.feed.title == "Fréttablaðið"
    # The GUID's host comes from the site's base_url: losing the settings would change every GUID.
    assert after.entries[0].id == before.entries[0].id == "tag:frettir.example.is,2026-10-01:frett-1"


def test_broken_section_settings_keep_the_section(newsroom: Newsroom, client: FlaskClient) -> None:
    newsroom.article("innlent", "frett", title="Frétt")
    assert parsed(client, "/feeds/innlent/rss.xml").feed.title == "Innlent – Fréttablaðið"
    newsroom.write("innlent/_index.md", "---\ntitle: [\n---\n")
    section = parsed(client, "/feeds/innlent/rss.xml")
    assert section.feed.title == "Innlent – Fréttablaðið"
    assert [entry.title for entry in section.entries] == ["Frétt"]


def test_an_unreadable_section_folder_keeps_its_articles(newsroom: Newsroom) -> None:
    """The indexer runs without root's power to read anything, so that the mode bits count."""
    with tempfile.TemporaryDirectory(prefix="feeds-unreadable-") as work:
        content, cache = Path(work) / "content", Path(work) / "cache"
        shutil.copytree(newsroom.root, content)
        room = Newsroom(content)
        room.article("innlent", "frett", title="Innlend frétt")
        room.article("erlent", "frett", title="Erlend frétt", date="2026-09-01T00:00:00Z")

        def index() -> None:
            environment = {**os.environ, "FEEDS_CONTENT_DIR": str(content), "FEEDS_CACHE_DIR": str(cache)}
            result = subprocess.run(
                [str(FLASK), "--app", "app", "index"], cwd=ROOT, env=environment, capture_output=True, text=True,
                timeout=60, check=False, preexec_fn=drop_permission_overrides,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr

        index()
        (content / "innlent").chmod(0)
        try:
            index()
        finally:
            (content / "innlent").chmod(0o755)
        app = create_app({"CONTENT_DIR": content, "CACHE_DIR": cache})
        assert sorted(entry.title for entry in parsed(app.test_client(), "/feeds/rss.xml").entries) == [
            "Erlend frétt",
            "Innlend frétt",
        ]


# -- a new index ------------------------------------------------------------------------------------


def test_a_new_index_has_every_index_of_the_schema(newsroom: Newsroom, client: FlaskClient) -> None:
    """A new generation is filled without some of its indexes and given them at the end: once
    built, it has every one, so that no request scans the table."""
    newsroom.article("innlent", "gos", title="Eldgos hafið", topics=["Eldgos"])
    assert parsed(client, "/feeds/rss.xml").entries
    built = sqlite3.connect(health(client)[1]["index"]["path"])
    expected = sqlite3.connect(":memory:")
    expected.executescript(store._SCHEMA)
    schema = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
    assert built.execute(schema).fetchall() == expected.execute(schema).fetchall()
    assert {name for (name,) in built.execute("SELECT name FROM sqlite_master")} >= set(store.BUILT_AFTER)
    plan = built.execute(
        "EXPLAIN QUERY PLAN SELECT data FROM bundle WHERE data IS NOT NULL AND published <= 0"
        " ORDER BY published DESC, path DESC LIMIT 20"
    ).fetchall()
    assert "bundle_by_time" in str(plan)
    built.close()
    expected.close()


# -- a damaged index --------------------------------------------------------------------------------


def damage(path: Path, fault: str) -> None:
    if fault == "deleted":
        path.unlink()
    elif fault == "truncated":
        os.truncate(path, 0)
    elif fault == "overwritten":
        with open(path, "r+b") as file:
            file.write(random.randbytes(64 * 1024))
    else:  # pages further in: the header still looks right, and only reading them tells
        with open(path, "r+b") as file:
            file.seek(4096)
            file.write(random.randbytes(os.path.getsize(path) - 4096))


@pytest.fixture
def watched(
    newsroom: Newsroom, clock: Clock, tmp_path: Path, start_indexer: Callable[[Flask], RunningIndexer]
) -> Iterator[list[Flask]]:
    """Two workers over one index kept by a running watch loop, with 60 articles published: 50 in
    October and 10 in September, so that the site's subscription feed holds October's 50."""
    for number in range(60):
        section = "innlent" if number % 2 else "erlent"
        month = 10 if number < 50 else 9
        newsroom.article(
            section, f"frett-{number}", title=f"Frétt {number}", id=f"frett-{number}",
            date=f"2026-{month:02d}-{number % 28 + 1:02d}T{number % 24:02d}:00:00Z",
            topics=["Eldgos"] if number % 3 else [],
        )  # fmt: skip
    an_hour_ago = time.time() - 3600
    for path in newsroom.root.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))
    settings = {"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache", "SETTLE_SECONDS": 1}
    workers = [create_app(settings, clock=clock) for _ in range(2)]
    start_indexer(workers[0])
    wait_until(lambda: health(workers[0].test_client())[0] == 200, "the index was never built")
    yield workers


def check_answer(client: FlaskClient, url: str, expected: int) -> bool:
    """A full feed, or a 503 that says when to come back; never a 500, never a short feed."""
    response = client.get(url)
    if response.status_code == 503:
        assert response.headers["Retry-After"]
        return False
    assert response.status_code == 200, (url, response.status_code)
    if url.endswith(".json"):
        items = json.loads(response.data)["items"]
    else:
        items = etree.fromstring(response.data).xpath("//item | //*[local-name()='entry']")
    assert len(items) == expected, (url, len(items), expected)
    return True


@pytest.mark.parametrize("fault", ["deleted", "truncated", "overwritten", "overwritten inside"])
def test_a_damaged_index_is_rebuilt_while_readers_get_the_last_good_state(
    newsroom: Newsroom, watched: list[Flask], fault: str
) -> None:
    first, fresh = (worker.test_client() for worker in watched)
    expected = dict(zip(FEEDS, [50, 30, 40, 30], strict=True))
    for url in FEEDS[:3]:  # the last is never asked of the first worker before the fault
        assert check_answer(first, url, expected[url])
    generation = health(first)[1]["index"]["generation"]
    database = Path(health(first)[1]["index"]["path"])

    damage(database, fault)
    served = 0
    deadline = time.monotonic() + WAIT_SECONDS
    while health(first)[1]["index"]["generation"] == generation:
        assert time.monotonic() < deadline, "the index was never rebuilt"
        for url in FEEDS:
            served += check_answer(first, url, expected[url]) + check_answer(fresh, url, expected[url])
    assert served, "nothing was served while the index was rebuilt"
    wait_until(lambda: health(first)[0] == 200, "the service never became ready again")
    for client in (first, fresh):
        for url in FEEDS:
            assert check_answer(client, url, expected[url])
    newsroom.article("innlent", "frett-1", title="Eftir viðgerð", id="frett-1", date="2026-11-01T00:00:00Z")
    for client in (first, fresh):

        def edited(client: FlaskClient = client) -> bool:
            return titles(client)[:1] == ["Eftir viðgerð"]

        wait_until(edited, "an edit after the fault never showed")


def test_an_index_that_no_longer_matches_its_table_is_rebuilt(newsroom: Newsroom, clock: Clock, tmp_path: Path) -> None:
    """Damage that no query reports (an index out of step with its table) is found by the
    background integrity check, and the index rebuilt."""
    newsroom.article("innlent", "frett", title="Frétt")
    app = create_app({"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache", "SETTLE_SECONDS": 0}, clock=clock)
    publisher = app.extensions["feeds"]
    stop = threading.Event()
    thread = threading.Thread(
        target=watch, args=(publisher.indexer(), newsroom.root, 60.0, stop), kwargs={"integrity_seconds": 0.5}
    )
    thread.start()
    try:
        check_rebuilt(newsroom, app)
    finally:
        RunningIndexer(thread, stop).stop()


def check_rebuilt(newsroom: Newsroom, app: Flask) -> None:
    client = app.test_client()
    wait_until(lambda: health(client)[0] == 200, "the index was never built")
    path = Path(health(client)[1]["index"]["path"])
    with sqlite3.connect(path) as db:
        # The index's definition no longer says what its entries are: queries through it go wrong quietly.
        db.execute("PRAGMA writable_schema = ON")
        db.execute(
            "UPDATE sqlite_schema SET sql = replace(sql, 'WHERE data IS NOT NULL', 'WHERE data IS NULL')"
            " WHERE name = 'bundle_by_time'"
        )
    wait_until(lambda: health(client)[1]["index"]["path"] != str(path), "the integrity check never rebuilt it")
    assert titles(client) == ["Frétt"]


def test_workers_follow_a_rebuilt_index_to_its_new_file(newsroom: Newsroom, watched: list[Flask]) -> None:
    client = watched[0].test_client()
    before = health(client)[1]["index"]
    Path(before["path"]).unlink()
    wait_until(lambda: health(client)[1]["index"]["generation"] != before["generation"], "no new generation")
    after = health(client)[1]["index"]
    assert not Path(before["path"]).exists() and Path(after["path"]).exists()
    newsroom.article("erlent", "ny", title="Ný frétt", date="2026-11-01T00:00:00Z")
    wait_until(lambda: titles(client)[:1] == ["Ný frétt"], "the workers kept reading the deleted index")


def test_an_index_from_another_version_is_rebuilt_at_start(
    watched: list[Flask], indexers: list[RunningIndexer], start_indexer: Callable[[Flask], RunningIndexer]
) -> None:
    client = watched[0].test_client()
    path = Path(health(client)[1]["index"]["path"])
    indexers[0].stop()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 1")
    start_indexer(watched[0])
    wait_until(lambda: health(client)[1]["index"]["path"] != str(path), "an index of another schema was kept")
    assert len(titles(client)) == 50


# -- races ------------------------------------------------------------------------------------------


def test_an_in_place_rewrite_is_never_read_half_written(newsroom: Newsroom, watched: list[Flask]) -> None:
    """Editors that save by truncating and rewriting: each save is read whole, or not at all."""
    client = watched[0].test_client()
    path = newsroom.root / "innlent" / "frett-59" / "index.md"
    stop = threading.Event()

    def rewrite() -> None:
        for version in range(SAVES):
            text = front_matter({"title": f"Útgáfa {version}", "id": "frett-59", "date": "2026-10-31T00:00:00Z"})
            with open(path, "w", encoding="utf-8") as file:
                time.sleep(random.uniform(0, 0.003))  # between the truncate and the first write
                file.write(text)
                file.flush()
                time.sleep(random.uniform(0, 0.003))
                file.write("Meginmál. " * 50 + f"ENDIR {version}.")
            if stop.wait(random.uniform(0, 0.01)):
                return

    writer = threading.Thread(target=rewrite)
    writer.start()
    checked = 0
    try:
        while writer.is_alive():
            feed = parsed(client, "/feeds/innlent/rss.xml")
            assert len(feed.entries) == 30
            [entry] = [entry for entry in feed.entries if entry.link.endswith("/innlent/frett-59/")]
            if entry.title.startswith("Útgáfa "):
                version = entry.title.removeprefix("Útgáfa ")
                assert entry.content[0].value.rstrip().endswith(f"ENDIR {version}.</p>"), entry.content[0].value
            else:
                assert entry.title == "Frétt 59"
            checked += 1
    finally:
        stop.set()
        writer.join()
    last = f"Útgáfa {SAVES - 1}"
    wait_until(lambda: titles(client, "/feeds/innlent/rss.xml")[0] == last, "the last save never showed")
    assert checked > 20


def test_a_renamed_bundle_is_never_missing(newsroom: Newsroom, watched: list[Flask]) -> None:
    """Moving a bundle to a new name removes the old and adds the new in the same sync."""
    client = watched[0].test_client()
    names = [newsroom.root / "innlent" / "frett-1", newsroom.root / "innlent" / "frett-1-nytt-nafn"]
    for move in range(20):
        source, target = names[move % 2], names[(move + 1) % 2]
        # Fresh files, as just saved: only their rename vouches for them.
        os.utime(source / "index.md")
        source.rename(target)
        deadline = time.monotonic() + 0.1
        while time.monotonic() < deadline:
            entries = parsed(client, "/feeds/innlent/rss.xml").entries
            assert len(entries) == 30
            assert any(entry.id.endswith(":frett-1") for entry in entries)
    wait_until(lambda: any(e.link.endswith("/frett-1/") for e in parsed(client, "/feeds/innlent/rss.xml").entries),
               "the last name never showed")  # fmt: skip


def test_a_deletion_shows_at_once_while_another_file_is_being_written(newsroom: Newsroom, watched: list[Flask]) -> None:
    """Only a rename holds a removal back; a half-written article elsewhere does not."""
    client = watched[0].test_client()
    path = newsroom.root / "innlent" / "hægur-ritari".replace("æ", "ae") / "index.md"
    path.parent.mkdir()
    with open(path, "w", encoding="utf-8") as writer:
        writer.write(front_matter({"title": "Hálfskrifuð", "date": "2026-10-31T00:00:00Z"}))
        writer.flush()
        time.sleep(0.1)
        shutil.rmtree(newsroom.root / "innlent" / "frett-1")
        deleted_at = time.monotonic()
        wait_until(lambda: len(titles(client, "/feeds/innlent/rss.xml")) == 29, "the deletion never showed")
        assert time.monotonic() - deleted_at < 1.0
        writer.write("Meginmál.")
    wait_until(lambda: titles(client, "/feeds/innlent/rss.xml")[0] == "Hálfskrifuð", "the new article never showed")


def test_many_processes_starting_on_a_fresh_cache_at_once(newsroom: Newsroom, tmp_path: Path) -> None:
    newsroom.article("innlent", "frett", title="Frétt")
    environment = {**os.environ, "FEEDS_CONTENT_DIR": str(newsroom.root), "FEEDS_CACHE_DIR": str(tmp_path / "cache")}
    processes = [
        subprocess.Popen(
            [str(FLASK), "--app", "app", "index"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outcomes = [(process.wait(timeout=120), *process.communicate()) for process in processes]
    for code, _, errors in outcomes:
        assert "Traceback" not in errors and "locked" not in errors, errors
        assert code == 0 or "another indexer is running" in errors, errors
    assert any(code == 0 for code, _, _ in outcomes)
    app = create_app({"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache"})
    assert titles(app.test_client()) == ["Frétt"]


def test_workers_starting_while_the_index_is_built_never_fail(
    newsroom: Newsroom, clock: Clock, tmp_path: Path, start_indexer: Callable[[Flask], RunningIndexer]
) -> None:
    for number in range(40):
        newsroom.article("innlent", f"frett-{number}", title=f"Frétt {number}")
    settings = {"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache", "SETTLE_SECONDS": 0}
    statuses: list[int] = []

    def worker(client: FlaskClient) -> None:
        for _ in range(30):
            response = client.get("/feeds/rss.xml")
            statuses.append(response.status_code)
            if response.status_code == 200:
                assert len(feedparser.parse(response.data).entries) == 40
            time.sleep(0.01)

    # Apps are made here, not in the threads: Python 3.11's ast.parse, which werkzeug uses to compile
    # routes, is not safe to run in several threads at once (a SystemError now and then).
    clients = [create_app(settings, clock=clock).test_client() for _ in range(4)]
    indexer_app = create_app(settings, clock=clock)
    threads = [threading.Thread(target=worker, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    start_indexer(indexer_app)
    for thread in threads:
        thread.join()
    assert set(statuses) <= {200, 503}


# -- /healthz ---------------------------------------------------------------------------------------


def test_healthz_says_what_to_start_when_there_is_no_indexer(newsroom: Newsroom, clock: Clock, tmp_path: Path) -> None:
    newsroom.article("innlent", "frett")
    app = create_app({"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache"}, clock=clock)
    code, body = health(app.test_client())
    assert code == 503 and body["ready"] is False and body["status"] == "unavailable"
    assert body["indexer"]["alive"] is False
    response = app.test_client().get("/feeds/rss.xml")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert b"flask --app app index --watch" in response.data


def test_healthz_reports_a_ready_service(watched: list[Flask]) -> None:
    response = watched[1].test_client().get("/healthz")
    body = response.get_json()
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert body["ready"] is True and body["status"] == "ok" and body["reason"] is None
    assert body["articles"] == 60 and body["content_errors"] == []
    assert body["indexer"] == {"alive": True, "state": "ok", "error": None}
    assert body["index"]["healthy"] is True and 0 <= body["index"]["age_seconds"] < 10
    assert body["last_change"].startswith("20")


def isolated_indexer(newsroom: Newsroom, tmp_path: Path) -> tuple[Flask, Publisher, Indexer]:
    """An app that only reads its index, and the watching kind of indexer, with its lock, reading
    on two worker processes whatever the machine's cores."""
    app = create_app({"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache", "INDEXER": "watch"})
    publisher: Publisher = app.extensions["feeds"]
    indexer = publisher.indexer(settle_seconds=0, isolated=True)
    indexer.scanner.workers = 2
    indexer.acquire(wait=False)
    return app, publisher, indexer


def test_an_old_name_goes_when_its_new_name_was_read_in_an_earlier_sync(newsroom: Newsroom, tmp_path: Path) -> None:
    """A rename whose new name a sync read first, before the rename was known (the new folder's
    notification came alone): the sync of the old name removes it at once, instead of deferring it
    again and again for a new name it will never be asked to read."""
    newsroom.article("innlent", "gamla", title="Færð frétt", id="2026-faersla", date="2026-10-10T00:00:00Z")
    app, publisher, indexer = isolated_indexer(newsroom, tmp_path)
    try:
        indexer.open()
        (newsroom.root / "innlent" / "gamla").rename(newsroom.root / "innlent" / "nyja")
        assert indexer.sync_bundles(["innlent/nyja"]).parsed == 1
        report = indexer.sync_bundles(
            ["innlent/gamla"], renames={"innlent/gamla": "innlent/nyja"}, gone={"innlent/gamla"}
        )
    finally:
        indexer.release()
    assert (report.removed, dict(report.deferred)) == (1, {})
    with app.test_client() as client:
        assert [entry.link for entry in parsed(client, "/feeds/rss.xml").entries] == ["http://localhost/innlent/nyja/"]
        assert client.get("/innlent/gamla/").status_code == 404
    assert publisher.store.problems() == ()


def test_a_rename_read_in_one_sync_holds_nothing_back(
    newsroom: Newsroom, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The new name is stored before the old one is removed, and shares its GUID for that moment:
    it is not held back, and the log does not say it was (before, every rename logged that)."""
    newsroom.article("innlent", "gamla", title="Færð frétt", id="2026-faersla", date="2026-10-10T00:00:00Z")
    app, publisher, indexer = isolated_indexer(newsroom, tmp_path)
    try:
        indexer.open()
        (newsroom.root / "innlent" / "gamla").rename(newsroom.root / "innlent" / "nyja")
        report = indexer.sync_bundles(
            ["innlent/gamla", "innlent/nyja"], renames={"innlent/gamla": "innlent/nyja"}, gone={"innlent/gamla"}
        )
    finally:
        indexer.release()
    assert (report.parsed, report.removed) == (1, 1)
    assert [message for message in caplog.messages if "held back" in message] == []
    with app.test_client() as client:
        assert [entry.link for entry in parsed(client, "/feeds/rss.xml").entries] == ["http://localhost/innlent/nyja/"]
    assert publisher.store.problems() == ()


def test_a_bundle_renamed_again_while_its_new_name_is_listed_stays_published(
    newsroom: Newsroom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename back to the old name that lands between the listing of the new folder and the stat
    of its files: the look is taken again later, and the article never drops out. Before, the files
    gone by their stat were left out, the new name was read as a bundle with no article file ("file
    is missing"), and the old name was removed in the same sync: one sync in ten of the renamed
    bundle test saw the feed one item short."""
    newsroom.article("innlent", "gamla", title="Færð frétt", id="2026-faersla", date="2026-10-10T00:00:00Z")
    old, new = newsroom.root / "innlent" / "gamla", newsroom.root / "innlent" / "nyja"
    listing = os.scandir

    def renamed_back_while_listed(path: Any = ".") -> Any:
        entries = listing(path)
        if str(path) == str(new):
            new.rename(old)  # the folder is open: it lists the files it held, now under the old name
        return entries

    app = create_app({"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache", "INDEXER": "watch"})
    publisher: Publisher = app.extensions["feeds"]
    indexer = publisher.indexer(settle_seconds=0)  # reading here, where the race is staged
    indexer.acquire(wait=False)
    try:
        indexer.open()
        old.rename(new)
        monkeypatch.setattr(os, "scandir", renamed_back_while_listed)
        names = ["innlent/gamla", "innlent/nyja"]
        report = indexer.sync_bundles(names, renames={"innlent/gamla": "innlent/nyja"}, gone={"innlent/gamla"})
        assert (report.parsed, report.removed, sorted(report.deferred)) == (0, 0, names)
        with app.test_client() as client:
            assert [entry.link for entry in parsed(client, "/feeds/rss.xml").entries] == [
                "http://localhost/innlent/gamla/"
            ]
        monkeypatch.undo()
        report = indexer.sync_bundles(names, renames={"innlent/nyja": "innlent/gamla"}, gone={"innlent/nyja"})
    finally:
        indexer.release()
    assert (report.parsed, report.removed, dict(report.deferred)) == (0, 0, {})
    with app.test_client() as client:
        assert [entry.title for entry in parsed(client, "/feeds/rss.xml").entries] == ["Færð frétt"]
    assert publisher.store.problems() == ()


def test_a_photo_link_to_nothing_does_not_hold_its_article_back(newsroom: Newsroom, tmp_path: Path) -> None:
    """A file gone by its stat defers the bundle, but a symbolic link to nothing is there for good:
    the bundle is read, and the photo its article lists named as missing, instead of the bundle
    being looked at again for ever."""
    newsroom.article(
        "innlent", "tengill", title="Með brotinn tengil", date="2026-10-10T00:00:00Z",
        images=[{"file": "mynd.jpg", "caption": "Mynd.", "credit": "AFP"}],
    )  # fmt: skip
    os.symlink("hvergi.jpg", newsroom.root / "innlent" / "tengill" / "mynd.jpg")
    _, publisher, indexer = isolated_indexer(newsroom, tmp_path)
    try:
        report = indexer.open()
    finally:
        indexer.release()
    assert (report.parsed, dict(report.deferred)) == (1, {})
    [problem] = publisher.store.problems()
    assert str(problem) == "innlent/tengill/mynd.jpg: listed photo is missing"


def _dies_on(slug: str) -> Callable[[Path, str, str, Site], Article | None]:
    """read_article, except that reading `slug` ends the process at once, as a crash in a decoder or
    the kernel's out-of-memory killer would: no exception, no cleanup."""

    def read(root: Path, section: str, slug_read: str, site: Site) -> Article | None:
        if slug_read == slug:
            os.kill(os.getpid(), signal.SIGKILL)
        return read_article(root, section, slug_read, site)

    return read


def _hangs_on(slug: str) -> Callable[[Path, str, str, Site], Article | None]:
    """read_article, except that reading `slug` never returns, as a decoder caught in a loop would."""

    def read(root: Path, section: str, slug_read: str, site: Site) -> Article | None:
        if slug_read == slug:
            time.sleep(3600)
        return read_article(root, section, slug_read, site)

    return read


#: What reading the bad bundle does, and what its problem then says.
_READER_FAULTS = {
    "dies": (_dies_on, "reading it ended the process"),
    "hangs": (_hangs_on, "reading it took more than the 1 s allowed"),
}


@pytest.mark.parametrize("fault", list(_READER_FAULTS))
@pytest.mark.parametrize("bundles", [3, 2_500])  # the kept worker; a pool on two cores
def test_a_bundle_whose_reading_kills_the_process_is_left_out_and_the_rest_is_read(
    newsroom: Newsroom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundles: int, fault: str
) -> None:
    """A reader that dies, or never returns (ended by the time limit), on one bundle: that one is
    left out and named, and every other is read."""
    make_reader, said = _READER_FAULTS[fault]
    newsroom.numbered(bundles)
    newsroom.article("innlent", "eitur", title="Frétt sem lesandinn deyr á", date="2026-10-02T12:00:00Z")
    monkeypatch.setattr(scanner, "read_article", make_reader("eitur"))  # forked workers inherit it
    monkeypatch.setattr(scanner, "READ_SECONDS", 1.0)
    app, publisher, indexer = isolated_indexer(newsroom, tmp_path)
    try:
        assert indexer.open().parsed == bundles + 1
        # An edit after it is read in a new worker: the one that died is replaced.
        newsroom.article("innlent", "frett-0000", title="Frétt 0 breytt", date="2026-10-03T12:00:00Z")
        indexer.sync_bundles(["innlent/frett-0000"])
    finally:
        indexer.release()
    assert indexer.scanner._kept is None, "released with the indexer"
    with app.test_client() as client:
        titles = [entry.title for entry in parsed(client, "/feeds/rss.xml").entries]
    # Every article of one hour is in the subscription feed, and all but the one are published.
    assert titles[0] == "Frétt 0 breytt"
    assert sorted(titles) == sorted(["Frétt 0 breytt", *(f"Frétt {number}" for number in range(1, bundles))])
    [problem] = publisher.store.problems()
    assert str(problem).startswith(f"innlent/eitur/index.md: {said}")


def _slow_on(seconds: dict[str, float]) -> Callable[[Path, str, str, Site], Article | None]:
    """read_article, taking `seconds[slug]` for the named slugs."""

    def read(root: Path, section: str, slug: str, site: Site) -> Article | None:
        time.sleep(seconds.get(slug, 0))
        return read_article(root, section, slug, site)

    return read


def test_a_slow_bundle_within_its_time_is_read_though_a_run_of_bundles_shares_a_timer(
    newsroom: Newsroom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bundles read one after the other share a timer, which may have as little as half of a
    bundle's time left when it starts: one that takes longer than that, but less than its own time,
    is ended with the others and then read alone with all of its time. Nothing is left out."""
    newsroom.article("innlent", "a-haegur", title="Hæg frétt", date="2026-10-01T12:00:00Z")
    newsroom.article("innlent", "b-haegari", title="Hægari frétt", date="2026-10-02T12:00:00Z")
    newsroom.article("innlent", "c-fljot", title="Fljót frétt", date="2026-10-03T12:00:00Z")
    # With 2 s each: "b-haegari" starts 0.7 s into a 2 s timer, which goes off 1.3 s into its 1.5 s.
    monkeypatch.setattr(scanner, "read_article", _slow_on({"a-haegur": 0.7, "b-haegari": 1.5}))
    monkeypatch.setattr(scanner, "READ_SECONDS", 2.0)
    app, publisher, indexer = isolated_indexer(newsroom, tmp_path)
    try:
        assert indexer.open().parsed == 3
        assert indexer.scanner._kept is None, "the kept worker was ended, and the bundles read again alone"
    finally:
        indexer.release()
    with app.test_client() as client:
        titles = [entry.title for entry in parsed(client, "/feeds/rss.xml").entries]
    assert titles == ["Fljót frétt", "Hægari frétt", "Hæg frétt"]
    assert publisher.store.problems() == ()


#: `flask --app app index`, in a process of its own, whose reader dies at the bundle "eitur".
_POISONED_INDEX_COMMAND = """
import os, signal, sys
from feeds import scanner
read_article = scanner.read_article
def read(root, section, slug, site):
    if slug == "eitur":
        os.kill(os.getpid(), signal.SIGKILL)
    return read_article(root, section, slug, site)
scanner.read_article = read
from flask.cli import main
sys.argv = ["flask", "--app", "app", "index"]
main()
"""


def test_a_one_off_index_command_leaves_out_a_bundle_whose_reading_kills_the_process(
    newsroom: Newsroom, tmp_path: Path
) -> None:
    """A few bundles are read in a worker process too, not in the command's own: the command
    finishes, and names the bundle."""
    newsroom.numbered(3)
    newsroom.article("innlent", "eitur", title="Frétt sem lesandinn deyr á", date="2026-10-02T12:00:00Z")
    cache = tmp_path / "cache"
    environment = {**os.environ, "FEEDS_CONTENT_DIR": str(newsroom.root), "FEEDS_CACHE_DIR": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", _POISONED_INDEX_COMMAND], cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("read 4 bundles, removed 0"), result.stdout
    app = create_app({"CONTENT_DIR": newsroom.root, "CACHE_DIR": cache, "INDEXER": "watch"})
    publisher: Publisher = app.extensions["feeds"]
    [problem] = publisher.store.problems()
    assert str(problem).startswith("innlent/eitur/index.md: reading it ended the process")
    with app.test_client() as client:
        titles = sorted(entry.title for entry in parsed(client, "/feeds/rss.xml").entries)
    assert titles == ["Frétt 0", "Frétt 1", "Frétt 2"]


def _always_dies(job: object) -> list[object]:
    os.kill(os.getpid(), signal.SIGKILL)
    return []


@pytest.mark.parametrize("bundles", [3, 2_500])
def test_workers_that_die_with_any_bundle_blame_no_file(
    newsroom: Newsroom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundles: int
) -> None:
    """When every worker process dies (the memory or the process limit, not a file), no article is
    left out as broken: the pass fails as a whole, changes nothing, and is tried again."""
    newsroom.numbered(bundles)
    app, publisher, indexer = isolated_indexer(newsroom, tmp_path)
    try:
        indexer.open()  # built while the workers still live
        newsroom.article("innlent", "frett-0000", title="Frétt 0 breytt", date="2026-10-03T12:00:00Z")
        monkeypatch.setattr(scanner, "_examine", _always_dies)
        with pytest.raises(scanner.WorkersFailing):
            indexer.sync_bundles(["innlent/frett-0000"])
        with pytest.raises(scanner.WorkersFailing):
            indexer.full_pass()
    finally:
        indexer.release()
    assert publisher.store.problems() == ()
    with app.test_client() as client:
        assert "Frétt 0" in [entry.title for entry in parsed(client, "/feeds/rss.xml").entries]


#: Another process that opens the index, reads, and closes it again, as `flask export` or `flask
#: check` does: it prints the title of the article named in argv.
READ_AND_CLOSE = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from feeds.store import IndexFiles, Store
store = Store(IndexFiles(Path(sys.argv[1]), sys.argv[2]))
print(store.article(sys.argv[3], sys.argv[4], datetime.now(UTC)).title)
store._forget()
"""


COUNT_AND_CLOSE = """
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM t").fetchone()[0])
"""


def open_files() -> list[str]:
    """What this process's descriptors name."""
    found = []
    for descriptor in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found.append(os.readlink(f"/proc/self/fd/{descriptor}"))
    return found


def test_looking_at_the_index_file_keeps_sqlites_locks(tmp_path: Path) -> None:
    """The header check opens the database file: a descriptor of it closed again would drop every
    POSIX lock of the process on the file, SQLite's included, and let another process's closing
    connection checkpoint and delete the write-ahead log while this one still writes to it."""
    path = tmp_path / "index.sqlite3"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("CREATE TABLE t (v INTEGER)")
    writer.execute("INSERT INTO t VALUES (1)")
    count = [sys.executable, "-c", COUNT_AND_CLOSE, str(path)]
    for _ in range(3):
        assert store.damage(path) is None
    assert subprocess.run(count, capture_output=True, text=True, check=True).stdout.strip() == "1"
    assert Path(f"{path}-wal").exists(), "the log of a database another process writes"
    writer.execute("INSERT INTO t VALUES (2)")
    assert subprocess.run(count, capture_output=True, text=True, check=True).stdout.strip() == "2"
    writer.close()


def test_a_header_check_lets_go_of_a_generation_once_it_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "index.1.sqlite3"
    sqlite3.connect(path).execute("CREATE TABLE t (v INTEGER)").connection.close()
    assert store.damage(path) is None
    assert open_files().count(str(path)) == 1
    path.unlink()
    assert store.damage(path) == store.MISSING
    assert not [name for name in open_files() if name.startswith(str(path))], "a deleted generation's space is let go"


def test_an_edit_after_another_process_read_the_index_reaches_every_process(
    app: Flask, newsroom: Newsroom, start_indexer: Callable[[Flask], RunningIndexer]
) -> None:
    """The watch loop looks at its index file's header every second, and readers every 10 ms; a
    process that reads the index and exits (an export, a check) must not leave the edits that
    follow in a deleted write-ahead log."""
    newsroom.article("innlent", "frett", title="Fyrsta útgáfa")
    publisher: Publisher = app.extensions["feeds"]
    publisher.sync_now(wait_seconds=5)
    start_indexer(app)
    files = publisher.store.files
    command = [sys.executable, "-c", READ_AND_CLOSE, str(files.cache_dir), files.name, "innlent", "frett"]

    def title_elsewhere() -> str:
        return subprocess.run(
            command, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]
        ).stdout.strip()

    deadline = time.monotonic() + 10
    while publisher.store.article("innlent", "frett", publisher.clock()).title != "Fyrsta útgáfa":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.5)  # the watch loop has looked at the header
    assert title_elsewhere() == "Fyrsta útgáfa"
    newsroom.article("innlent", "frett", title="Önnur útgáfa")
    deadline = time.monotonic() + 10
    while publisher.store.article("innlent", "frett", publisher.clock()).title != "Önnur útgáfa":
        assert time.monotonic() < deadline, "the edit was never indexed"
        time.sleep(0.05)
    assert title_elsewhere() == "Önnur útgáfa", "the edit went to a write-ahead log that another process deleted"
