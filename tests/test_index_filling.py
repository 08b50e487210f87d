"""A new generation is filled by other means than a live one is kept (`Writer.unpublished`): its
topics are staged and sorted in at the end, its GUIDs settled then. The same writes must leave the
same tables either way."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from feeds import store
from feeds.store import Bundle, IndexFiles, Transaction, Writer


def article(path: str, published: int, *topics: str, guid: str | None = None) -> Bundle:
    section = path.partition("/")[0]
    named = tuple((slug, slug.replace("-", " ").title()) for slug in topics)
    return Bundle(path, section, f"sig-{published}-{topics}", published, b"article", None, named, guid=guid)


def draft(path: str) -> Bundle:
    return Bundle(path, path.partition("/")[0], "sig-draft")


def broken(path: str) -> Bundle:
    return Bundle.broken(path, path.partition("/")[0], "sig-broken", "the front matter is not YAML")


#: Each step a transaction of its own: new bundles, a bundle stored again with other topics (in
#: the same transaction and in a later one), a draft over a public article, a removal, a broken
#: save that keeps the last good version, and GUIDs shared.
STEPS: list[list[Callable[[Transaction], None]]] = [
    [
        lambda tx: tx.store(article("innlent/eldgos", 300, "eldgos", "reykjanes")),
        lambda tx: tx.store(article("innlent/stormur", 100, "vedur")),
        lambda tx: tx.store(article("erlent/kosning", 200, "nordur-korea", "kosningar")),
        lambda tx: tx.store(article("innlent/eldgos", 310, "eldgos", "grindavik")),
        lambda tx: tx.store(article("erlent/tvifari", 150, "kosningar", guid="sama")),
        lambda tx: tx.store(article("erlent/frumrit", 120, "nordur-korea", guid="sama")),
    ],
    [
        lambda tx: tx.store(article("innlent/eldgos", 320, "reykjanes")),
        lambda tx: tx.store(draft("innlent/stormur")),
        lambda tx: tx.remove("erlent/kosning"),
        lambda tx: tx.store(article("innlent/ny", 400, "eldgos", "vedur")),
        lambda tx: tx.store(broken("innlent/ny")),
        lambda tx: tx.store(article("innlent/seinna", 500, "vedur")),
    ],
]


def tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as db:
        # Every column of the key: rows that tie on the first ones come in a known order.
        return {
            "bundle": db.execute("SELECT * FROM bundle ORDER BY path").fetchall(),
            "topic": db.execute("SELECT * FROM topic ORDER BY slug, published, path").fetchall(),
            "photo": db.execute("SELECT * FROM photo ORDER BY digest, path").fetchall(),
        }


def test_a_generation_filled_holds_what_the_same_writes_leave_in_a_live_one(tmp_path: Path) -> None:
    files = IndexFiles(tmp_path, "index-test")
    live = Writer(files, 1, create=True)
    for step in STEPS:
        with live.transaction() as tx:
            for write in step:
                write(tx)
    with live.transaction() as tx:
        tx.settle_every_guid()
    live.close()

    filled = Writer(files, 2, create=True)
    with filled.unpublished():
        for step in STEPS:
            with filled.transaction() as tx:
                for write in step:
                    write(tx)
    filled.close()

    expected, found = tables(files.database(1)), tables(files.database(2))
    assert found == expected
    for generation in (1, 2):  # SQLite keeps 4 KB pages, without a word, if asked too late
        with sqlite3.connect(files.database(generation)) as db:
            assert db.execute("PRAGMA page_size").fetchone() == (store.PAGE_BYTES,)
    # Not equal by being empty alike: the staged topics went in, the replaced ones did not stay.
    assert ("reykjanes", 320, "innlent/eldgos", "Reykjanes") in found["topic"]
    assert not [row for row in found["topic"] if row[2] in ("innlent/stormur", "erlent/kosning")]
    assert {row[0] for row in found["topic"] if row[2] == "innlent/ny"} == {"eldgos", "vedur"}
    assert [row[2] for row in found["topic"] if row[0] == "nordur-korea"] == ["erlent/frumrit"]


def test_a_generation_filled_over_a_copy_replaces_the_copied_topics(tmp_path: Path) -> None:
    """A rebuild that salvaged the old generation stores every bundle over a copied one."""
    files = IndexFiles(tmp_path, "index-test")
    old = Writer(files, 1, create=True)
    with old.transaction() as tx:
        tx.store(article("innlent/eldgos", 300, "eldgos", "reykjanes"))
        tx.store(article("innlent/stormur", 100, "vedur"))
    new = Writer(files, 2, create=True)
    old.connection.backup(new.connection)
    old.close()
    with new.unpublished(), new.transaction() as tx:
        # New to the copy, so staged; then removed before anything moved the staged rows.
        tx.store(article("innlent/skammlift", 450, "vedur"))
        tx.remove("innlent/skammlift")
        tx.store(article("innlent/ny", 400, "vedur"))
        tx.store(article("innlent/eldgos", 300, "grindavik"))
        tx.remove("innlent/stormur")
    new.close()
    assert tables(files.database(2))["topic"] == [
        ("grindavik", 300, "innlent/eldgos", "Grindavik"),
        ("vedur", 400, "innlent/ny", "Vedur"),
    ]


def test_a_generation_of_other_pages_is_copied_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild salvages an old generation written before PAGE_BYTES was its page size: the copy
    holds every row, keeps the old page size, and is back in WAL mode for its readers. Before, the
    backup failed ("attempt to write a readonly database"), and the salvage was given up."""
    files = IndexFiles(tmp_path, "index-test")
    with monkeypatch.context() as earlier:
        earlier.setattr(store, "PAGE_BYTES", 4096)
        old = Writer(files, 1, create=True)
    for step in STEPS:
        with old.transaction() as tx:
            for write in step:
                write(tx)
    new = Writer(files, 2, create=True)
    new.copy_of(old.connection)
    old.close()
    before = tables(files.database(1))
    assert tables(files.database(2)) == before and before["bundle"]
    with new.transaction() as tx:  # it takes writes as any generation does
        tx.store(article("innlent/eftir", 600, "vedur"))
    new.close()
    assert [str(row[0]) for row in tables(files.database(2))["bundle"]] == sorted(
        [*(str(row[0]) for row in before["bundle"]), "innlent/eftir"]
    )
    with sqlite3.connect(files.database(2)) as db:
        assert db.execute("PRAGMA page_size").fetchone() == (4096,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
