"""A new node starts from a copy of another node's index and reads only what differs on its own disk."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from flask import Flask

from feeds import create_app
from feeds.publisher import Publisher

from .conftest import Clock, Newsroom

URLS = ["/feeds/rss.xml", "/feeds/innlent/atom.xml", "/feeds/topics/eldgos/feed.json", "/innlent/frett-3/"]


@pytest.fixture
def first(newsroom: Newsroom, clock: Clock, tmp_path: Path) -> Flask:
    for number in range(30):
        newsroom.article(
            "innlent" if number % 2 else "erlent", f"frett-{number}", title=f"Frétt {number}",
            topics=["Eldgos"] if number % 3 else [], photos={"mynd.jpg": (80, 60)} if number % 5 == 0 else None,
            images=[{"file": "mynd.jpg", "caption": "Gos við Grindavík.", "credit": "Ljósmynd/Jón Pétursson"}]
            if number % 5 == 0 else [],
        )  # fmt: skip
    an_hour_ago = time.time() - 3600
    for path in newsroom.root.rglob("*"):  # written a while ago, as an archive is: nothing waits to settle
        os.utime(path, (an_hour_ago, an_hour_ago))
    settings = {"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache-1", "INDEXER": "inline"}
    app = create_app(settings, clock=clock)
    app.test_client().get("/feeds/rss.xml")  # builds its index
    return app


def database(app: Flask) -> Path:
    publisher: Publisher = app.extensions["feeds"]
    generation = publisher.store.files.current()
    assert generation is not None
    return publisher.store.files.database(generation)


def second_node(newsroom: Newsroom, clock: Clock, tmp_path: Path, inline: bool = False) -> tuple[Flask, Path]:
    """Another node: its own copy of the files (new inodes, the same sizes and times) and cache."""
    content = tmp_path / "node-2" / "content"
    shutil.copytree(newsroom.root, content, copy_function=shutil.copy2)
    settings = {"CONTENT_DIR": content, "CACHE_DIR": tmp_path / "cache-2", "INDEXER": "inline" if inline else "watch"}
    return create_app(settings, clock=clock), content


def test_a_node_started_from_a_copy_reads_nothing_again_and_answers_alike(
    first: Flask, newsroom: Newsroom, clock: Clock, tmp_path: Path
) -> None:
    second, content = second_node(newsroom, clock, tmp_path)
    result = second.test_cli_runner().invoke(args=["index", "--from", str(database(first))])
    assert result.exit_code == 0, result.output
    assert re.search(r"then read 0 bundles that differ here and removed 0", result.output), result.output
    for url in URLS:
        one, two = first.test_client().get(url), second.test_client().get(url)
        assert one.status_code == two.status_code == 200
        assert one.get_data() == two.get_data() and one.headers.get("ETag") == two.headers.get("ETag"), url
    # From there on it follows its own files: one edit, one bundle read.
    index = content / "innlent" / "frett-3" / "index.md"
    index.write_text(index.read_text(encoding="utf-8").replace("Frétt 3", "Frétt 3 á nýjum stað"), encoding="utf-8")
    result = second.test_cli_runner().invoke(args=["index"])
    assert result.output.startswith("read 1 bundles, removed 0"), result.output
    assert "Frétt 3 á nýjum stað" in second.test_client().get("/innlent/frett-3/").get_data(as_text=True)


def test_what_differs_on_the_new_node_is_read_and_what_is_gone_removed(
    first: Flask, newsroom: Newsroom, clock: Clock, tmp_path: Path
) -> None:
    second, content = second_node(newsroom, clock, tmp_path)
    shutil.rmtree(content / "erlent" / "frett-4")
    edited = content / "innlent" / "frett-5" / "index.md"
    edited.write_text(edited.read_text(encoding="utf-8") + "\nViðbót.", encoding="utf-8")
    an_hour_ago = time.time() - 3600
    os.utime(edited, (an_hour_ago, an_hour_ago))  # settled: read at once, not after FEEDS_SETTLE_SECONDS
    result = second.test_cli_runner().invoke(args=["index", "--from", str(database(first))])
    assert "then read 1 bundles that differ here and removed 1" in result.output, result.output
    assert second.test_client().get("/erlent/frett-4/").status_code == 404
    assert "Viðbót." in second.test_client().get("/innlent/frett-5/").get_data(as_text=True)


@pytest.mark.parametrize("what", ["not a database", "another schema", "damaged"])
def test_a_file_that_is_no_usable_index_is_refused_by_name(
    first: Flask, newsroom: Newsroom, clock: Clock, tmp_path: Path, what: str
) -> None:
    source = tmp_path / "other.sqlite3"
    shutil.copyfile(database(first), source)
    if what == "not a database":
        source.write_bytes(b"Ekki gagnagrunnur." * 100)
    elif what == "another schema":
        with sqlite3.connect(source) as db:
            db.execute("PRAGMA user_version = 1")
    else:
        data = bytearray(source.read_bytes())
        page = 4096
        data[page * 2 : page * 3] = b"\xff" * page  # a page of a table, overwritten
        source.write_bytes(bytes(data))
    second, _ = second_node(newsroom, clock, tmp_path)
    result = second.test_cli_runner().invoke(args=["index", "--from", str(source)])
    assert result.exit_code != 0 and str(source) in result.output, result.output
    publisher: Publisher = second.extensions["feeds"]
    assert publisher.store.files.current() is None  # nothing was made current
