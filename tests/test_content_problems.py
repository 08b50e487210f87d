"""Broken content is left out with a reason, and everything else is still published."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from feeds import scanner
from feeds.content import MAX_TEXT_BYTES, read_article
from feeds.images import MAX_PHOTO_BYTES
from feeds.model import Article, Site

from .conftest import Newsroom, front_matter, parsed, status

GOOD = "Fyrsta málsgrein."


def write_broken_newsroom(newsroom: Newsroom, tmp_path: Path) -> dict[str, str]:
    """One good article and one of each kind of breakage; returns path → expected reason."""
    newsroom.article("innlent", "heil-frett", title="Heil frétt")
    newsroom.write("innlent/brotid-yaml/index.md", "---\ntitle: [ólokið\ndate: '2026-01-01'\n---\nTexti.\n")
    newsroom.article("innlent", "enginn-titill", title="")
    newsroom.write("innlent/engin-dagsetning/index.md", front_matter({"title": "Án dagsetningar"}) + GOOD)
    newsroom.article("innlent", "oskiljanleg-dagsetning", date="32. mars 2024")
    newsroom.article("innlent", "fyrir-krist", date="0001-01-01T00:00:00Z")  # cannot be moved into a zone
    newsroom.article("innlent", "hyldypi", body=">" * 100_000 + " Of djúpt.")  # a minute's parsing
    deep_yaml = "---\ntitle: " + "[" * 50_000 + "]" * 50_000 + "\n---\nTexti.\n"  # crashed the process
    newsroom.write("innlent/djup-yaml/index.md", deep_yaml)
    newsroom.write(
        "innlent/ekki-utf8/index.md",
        (front_matter({"title": "Frétt", "date": "2026-01-01T00:00:00Z"}) + "Fréttir").encode("latin-1"),
    )
    newsroom.article("innlent", "mynd-vantar", images=[{"file": "engin.jpg", "caption": "Mynd.", "credit": "AFP"}])
    secret = tmp_path / "utan.jpg"
    newsroom.photo("innlent", "tenging-ut", "tmp.jpg").rename(secret)
    os.symlink(secret, newsroom.root / "innlent/tenging-ut/leyndo.jpg")
    newsroom.article("innlent", "tenging-ut", images=[{"file": "leyndo.jpg", "caption": "Mynd.", "credit": "AFP"}])
    newsroom.write("innlent/enginn-haus/index.md", "Bara texti, enginn haus.\n")
    outside_article = tmp_path / "leyndarmal.md"
    outside_article.write_text(front_matter({"title": "Leynd", "date": "2026-01-01T00:00:00Z"}) + "Leyndarmál.")
    (newsroom.root / "innlent/tengd-grein").mkdir()
    os.symlink(outside_article, newsroom.root / "innlent/tengd-grein/index.md")
    os.symlink(tmp_path, newsroom.root / "innlent/tengd-mappa")
    # Named pipes: opened for reading, each would wait for a writer for ever.
    (newsroom.root / "innlent/pipa").mkdir()
    os.mkfifo(newsroom.root / "innlent/pipa/index.md")
    newsroom.article("innlent", "pipu-mynd", images=[{"file": "mynd.jpg", "caption": "Mynd.", "credit": "AFP"}])
    os.mkfifo(newsroom.root / "innlent/pipu-mynd/mynd.jpg")
    return {
        "innlent/brotid-yaml/index.md": "broken YAML front matter at line 3",
        "innlent/enginn-titill/index.md": "title is missing",
        "innlent/engin-dagsetning/index.md": "date is missing",
        "innlent/oskiljanleg-dagsetning/index.md": "date: unreadable date '32. mars 2024'",
        "innlent/fyrir-krist/index.md": "date: date '0001-01-01T00:00:00Z' is out of range: the year must be from",
        "innlent/hyldypi/index.md": "the body nests 100,000 elements deep, more than the 200 it may",
        "innlent/djup-yaml/index.md": "broken YAML front matter: lists and mappings nest more than 64 deep",
        "innlent/ekki-utf8/index.md": "is not UTF-8 text (byte 0xe9",
        "innlent/mynd-vantar/engin.jpg": "listed photo is missing",
        "innlent/tenging-ut/leyndo.jpg": "photo leads outside the content directory",
        "innlent/enginn-haus/index.md": "does not start with a front matter block",
        "innlent/tengd-grein/index.md": "article file leads outside the content directory",
        "innlent/pipa/index.md": "is not a regular file",
        "innlent/pipu-mynd/mynd.jpg": "listed photo is not a regular file",
    }


def test_each_broken_article_is_left_out_with_a_log_line_and_the_rest_is_published(
    newsroom: Newsroom, client: FlaskClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    expected = write_broken_newsroom(newsroom, tmp_path)
    with caplog.at_level(logging.WARNING, logger="feeds"):
        for feed in ("/feeds/rss.xml", "/feeds/atom.xml", "/feeds/innlent/rss.xml"):
            assert [entry.title for entry in parsed(client, feed).entries] == ["Heil frétt"]
    logged = [record.getMessage() for record in caplog.records]
    for path, reason in expected.items():
        assert any(line.startswith(f"{path}: {reason}") for line in logged), (path, logged)
    assert status(client, "/innlent/tenging-ut/leyndo.jpg") == 404


def test_check_command_lists_every_problem_and_fails(newsroom: Newsroom, app: Flask, tmp_path: Path) -> None:
    expected = write_broken_newsroom(newsroom, tmp_path)
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == len(expected)
    for path, reason in expected.items():
        assert any(line.startswith(f"{path}: {reason}") for line in lines), (path, lines)


def test_check_command_passes_on_clean_content(newsroom: Newsroom, app: Flask) -> None:
    newsroom.article("innlent", "heil-frett")
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        ({"titel": "x"}, "unknown front matter key 'titel'"),
        ({"draft": "já"}, "draft must be true or false"),
        ({"images": [{"file": "a.jpg", "caption": "Mynd."}]}, "images[1] needs both a caption and a credit"),
        ({"images": [{"file": "../a.jpg", "caption": "M", "credit": "AFP"}]}, "must be a file name inside the bundle"),
        ({"images": [{"url": "https://x.is/a.jpg", "caption": "M", "credit": "AFP"}]}, "a remote photo needs type"),
        ({"authors": "Anna", "topics": [""]}, "each entry of topics must be non-empty text"),
        ({"id": "með bili"}, "id 'með bili' may hold only"),
    ],
)
def test_front_matter_mistakes_are_named(newsroom: Newsroom, app: Flask, meta: dict[str, Any], reason: str) -> None:
    newsroom.article("innlent", "villa", **meta)
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1
    assert result.stdout.startswith("innlent/villa/index.md: "), result.stdout
    assert reason in result.stdout


def test_photo_placed_in_body_but_not_listed_is_named(newsroom: Newsroom, app: Flask) -> None:
    newsroom.photo("innlent", "villa", "laus.jpg")
    newsroom.article("innlent", "villa", body="Texti.\n\n![Mynd](laus.jpg)\n")
    result = app.test_cli_runner().invoke(args=["check"])
    assert "innlent/villa/index.md: the body shows 'laus.jpg', which is not listed under images" in result.stdout


def test_a_file_that_is_not_an_image_is_named(newsroom: Newsroom, app: Flask) -> None:
    newsroom.write("innlent/villa/mynd.jpg", "ekki mynd")
    newsroom.article("innlent", "villa", images=[{"file": "mynd.jpg", "caption": "M", "credit": "AFP"}])
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.stdout.startswith("innlent/villa/mynd.jpg: mynd.jpg is not a JPEG, PNG, WebP or GIF image")


def test_reserved_section_name_is_named(newsroom: Newsroom, app: Flask, client: FlaskClient) -> None:
    newsroom.article("topics", "frett")
    result = app.test_cli_runner().invoke(args=["check"])
    assert "topics: 'topics' is reserved for the service's own URLs" in result.stdout
    assert parsed(client, "/feeds/rss.xml").entries == []


def test_broken_site_settings_keep_the_articles_published(newsroom: Newsroom, client: FlaskClient) -> None:
    newsroom.write("_index.md", "---\ntitle: [\n---\n")
    newsroom.article("innlent", "frett", title="Frétt birtist samt")
    assert [entry.title for entry in parsed(client, "/feeds/rss.xml").entries] == ["Frétt birtist samt"]


def test_site_settings_that_are_a_named_pipe_keep_the_articles_published(
    newsroom: Newsroom, app: Flask, client: FlaskClient
) -> None:
    (newsroom.root / "_index.md").unlink()
    os.mkfifo(newsroom.root / "_index.md")
    newsroom.article("innlent", "frett", title="Frétt birtist samt")
    assert [entry.title for entry in parsed(client, "/feeds/rss.xml").entries] == ["Frétt birtist samt"]
    result = app.test_cli_runner().invoke(args=["check"])
    assert "_index.md: is not a regular file" in result.stdout


def test_files_too_large_to_read_are_refused_before_they_are_read(
    newsroom: Newsroom, app: Flask, client: FlaskClient
) -> None:
    """A file is read whole into memory: one of gigabytes (a video named .jpg, a runaway export)
    must not take the indexer's memory, and is named instead; the photo's article goes out without it."""
    images = [
        {"file": "risastor.jpg", "caption": "Of stór.", "credit": "AFP"},
        {"file": "hæfileg.jpg", "caption": "Hæfileg mynd.", "credit": "Ljósmynd/Jón Pétursson"},
    ]
    newsroom.article("innlent", "risamynd", title="Frétt með risamynd", images=images)
    newsroom.photo("innlent", "risamynd", "hæfileg.jpg")
    with open(newsroom.photo("innlent", "risamynd", "risastor.jpg"), "r+b") as photo:
        photo.truncate(MAX_PHOTO_BYTES + 1)  # a JPEG's start, then a sparse tail: no disk taken
    with open(newsroom.article("innlent", "risagrein", title="Of löng"), "r+b") as article:
        article.truncate(MAX_TEXT_BYTES + 1)

    result = parsed(client, "/feeds/rss.xml")
    assert [entry.title for entry in result.entries] == ["Frétt með risamynd"]
    assert [link.href for link in result.entries[0].enclosures] == [
        "http://localhost/innlent/risamynd/h%C3%A6fileg.jpg"
    ]
    reported = app.test_cli_runner().invoke(args=["check"]).stdout
    assert f"innlent/risamynd/risastor.jpg: refused: is {MAX_PHOTO_BYTES + 1:,} bytes, more than the" in reported
    assert f"innlent/risagrein/index.md: is {MAX_TEXT_BYTES + 1:,} bytes, more than the" in reported


def test_a_fault_of_the_reader_on_one_article_leaves_out_that_article_alone(
    newsroom: Newsroom, app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever reading one bundle raises, the others are published and the one is named."""
    newsroom.article("innlent", "heil", title="Heil frétt")
    newsroom.article("innlent", "gallud", title="Frétt sem lesarinn ræður ekki við")

    def faulty(root: Path, section: str, slug: str, site: Site) -> Article | None:
        if slug == "gallud":
            raise OverflowError("date value out of range")
        return read_article(root, section, slug, site)

    monkeypatch.setattr(scanner, "read_article", faulty)
    assert [entry.title for entry in parsed(client, "/feeds/rss.xml").entries] == ["Heil frétt"]
    reported = app.test_cli_runner().invoke(args=["check"]).stdout
    assert "innlent/gallud/index.md: could not be read (OverflowError: date value out of range)" in reported


@pytest.mark.parametrize(
    "url", ["/feeds/archive/9999-12/rss.xml", "/archive/0999-12/", "/feeds/archive/0001-01/atom.xml"]
)
def test_archive_periods_beyond_the_years_of_articles_are_not_found(client: FlaskClient, url: str) -> None:
    # The end of December 9999 cannot be told: it was an error, not a 404.
    assert status(client, url) == 404


def test_a_fixed_article_comes_back(newsroom: Newsroom, client: FlaskClient) -> None:
    newsroom.write("innlent/lagad/index.md", "---\ntitle: [\n---\n")
    assert parsed(client, "/feeds/rss.xml").entries == []
    newsroom.article("innlent", "lagad", title="Lagfærð frétt")
    assert [entry.title for entry in parsed(client, "/feeds/rss.xml").entries] == ["Lagfærð frétt"]
