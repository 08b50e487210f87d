"""RFC 5005 archives: from any subscription feed, the links reach every published article once."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree, html

from feeds import create_app

from .conftest import NS, Clock, Newsroom, get_ok, parsed, status, xml, xpath_strings
from .test_jsonfeed import REGISTRY, SCHEMA

FH = "http://purl.org/syndication/history/1.0"
#: (section, slug, date, topics): spread over four months, the last of them still going on (NOW is 1 Nov 2026).
PUBLISHED = [
    ("innlent", "agust-a", "2026-08-03T10:00:00Z", ["Eldgos"]),
    ("erlent", "agust-b", "2026-08-31T23:59:59Z", []),
    ("innlent", "sept-a", "2026-09-01T00:00:00Z", ["Eldgos"]),
    ("innlent", "sept-b", "2026-09-15T08:00:00Z", []),
    ("erlent", "sept-c", "2026-09-20T08:00:00Z", ["Eldgos"]),
    ("innlent", "sept-d", "2026-09-30T21:00:00Z", []),
    ("innlent", "okt-a", "2026-10-02T12:00:00Z", ["Eldgos"]),
    ("erlent", "okt-b", "2026-10-15T12:00:00Z", []),
    ("innlent", "okt-c", "2026-10-31T23:00:00Z", ["Eldgos"]),
    ("innlent", "nov-a", "2026-11-01T08:00:00Z", ["Eldgos"]),
    ("erlent", "nov-b", "2026-11-01T09:00:00Z", []),
]


@pytest.fixture
def history(newsroom: Newsroom) -> Newsroom:
    for section, slug, date, topics in PUBLISHED:
        newsroom.article(section, slug, date=date, topics=topics, id=f"id-{slug}")
    newsroom.article("innlent", "drog", date="2026-09-10T12:00:00Z", draft=True, topics=["Eldgos"])
    newsroom.article("innlent", "bannad", date="2026-11-05T12:00:00Z", topics=["Eldgos"])  # embargoed
    newsroom.article("erlent", "bannad-lika", date="2026-12-24T18:00:00Z")  # embargoed, in a later month
    return newsroom


@pytest.fixture
def small_app(history: Newsroom, clock: Clock, tmp_path: Path) -> Flask:
    """Feeds of three items, so that most articles are only in the archive."""
    config = {"CONTENT_DIR": history.root, "CACHE_DIR": tmp_path / "cache", "INDEXER": "inline", "FEED_SIZE": 3}
    return create_app(config, clock=clock)


def ids(document: etree._Element) -> list[str]:
    return xpath_strings(document, "//item/guid/text() | //atom:entry/atom:id/text()")


def link(document: etree._Element, rel: str) -> str | None:
    found = xpath_strings(
        document, f"/*/channel/atom:link[@rel='{rel}']/@href | /atom:feed/atom:link[@rel='{rel}']/@href"
    )
    assert len(found) <= 1, (rel, found)
    return found[0] if found else None


def local(url: str) -> str:
    return url.removeprefix("http://localhost")


def expected_ids(section: str | None = None, topic: str | None = None) -> set[str]:
    return {
        f"tag:frettir.example.is,{date[:10]}:id-{slug}"
        for article_section, slug, date, topics in PUBLISHED
        if section in (None, article_section) and topic in (None, *(name.lower() for name in topics))
    }


def walk(client: FlaskClient, url: str) -> tuple[list[str], list[list[str]], list[str]]:
    """The subscription feed's ids, each archive document's ids (newest month first), and the archive URLs."""
    current = xml(client, url)
    assert current.xpath("//fh:archive", namespaces={"fh": FH}) == []
    archives: list[list[str]] = []
    urls: list[str] = []
    following = link(current, "prev-archive")
    newer: str | None = None
    while following is not None:
        urls.append(following)
        document = xml(client, local(following))
        archived = document.xpath("/*/channel/fh:archive | /atom:feed/fh:archive", namespaces={**NS, "fh": FH})
        assert isinstance(archived, list) and len(archived) == 1
        assert link(document, "self") == following
        assert local(link(document, "current") or "") == url
        if newer is not None:
            assert link(document, "next-archive") == newer
        else:  # the newest archive names the month the subscription feed reaches back into
            reached_into = link(document, "next-archive")
            assert reached_into is not None
            assert set(ids(xml(client, local(reached_into)))) <= set(ids(current))
        archives.append(ids(document))
        newer, following = following, link(document, "prev-archive")
        assert len(urls) < 20, "the chain does not end"
    return ids(current), archives, urls


@pytest.mark.parametrize("file_name", ["rss.xml", "atom.xml"])
@pytest.mark.parametrize(
    ("path", "section", "topic"),
    [("/feeds", None, None), ("/feeds/innlent", "innlent", None), ("/feeds/topics/eldgos", None, "eldgos")],
)
def test_following_the_archive_finds_every_published_article_once(
    small_app: Flask, path: str, section: str | None, topic: str | None, file_name: str
) -> None:
    with small_app.test_client() as client:
        current, archives, urls = walk(client, f"{path}/{file_name}")
    found = Counter([*current, *(guid for document in archives for guid in document)])
    # Every published article is met exactly once, in the subscription feed or in one archive
    # document: no draft, nothing embargoed.
    assert set(found) == expected_ids(section, topic) and set(found.values()) == {1}
    # The subscription feed holds the newest three and the rest of October, where the third is.
    assert len(current) >= 3
    months = [url.rsplit("/", 2)[1] for url in urls]
    assert months == sorted(months, reverse=True) and months[0] == "2026-09"


def test_the_subscription_feed_holds_the_rest_of_its_oldest_items_month(small_app: Flask) -> None:
    with small_app.test_client() as client:
        current = ids(xml(client, "/feeds/rss.xml"))
        newest_complete = link(xml(client, "/feeds/rss.xml"), "prev-archive")
        archived = client.get(local(newest_complete or ""))
    assert [guid.rsplit(":", 1)[1] for guid in current] == ["id-nov-b", "id-nov-a", "id-okt-c", "id-okt-b", "id-okt-a"]
    # prev-archive names a month that is over: it is cached long, as it no longer changes.
    assert newest_complete == "http://localhost/feeds/archive/2026-09/rss.xml"
    assert "max-age=86400" in archived.headers["Cache-Control"]


def test_the_newest_month_can_be_the_subscription_feeds_whole_reach(small_app: Flask, history: Newsroom) -> None:
    for hour in (10, 11, 12):
        history.article("innlent", f"nov-{hour}", date=f"2026-11-01T{hour}:00:00Z", id=f"id-nov-{hour}")
    with small_app.test_client() as client:
        current = xml(client, "/feeds/rss.xml")
        assert [guid.rsplit(":", 1)[1] for guid in ids(current)] == [
            "id-nov-12", "id-nov-11", "id-nov-10", "id-nov-b", "id-nov-a"
        ]  # fmt: skip
        assert link(current, "prev-archive") == "http://localhost/feeds/archive/2026-10/rss.xml"


def test_json_feed_pages_back_through_next_url(small_app: Flask) -> None:
    seen: list[str] = []
    with small_app.test_client() as client:
        url: str | None = "/feeds/feed.json"
        documents = 0
        while url is not None:
            document = json.loads(get_ok(client, local(url)))
            jsonschema.Draft4Validator(SCHEMA, registry=REGISTRY).validate(document)
            assert document["feed_url"] == "http://localhost/feeds/feed.json"
            if documents:
                assert document["_archive"]["self"] == url
            seen += [item["id"] for item in document["items"]]
            documents += 1
            url = document.get("next_url")
    # The subscription feed, then September and August.
    assert sorted(seen) == sorted(expected_ids()) and documents == 3


def test_feed_readers_see_the_archive_links(small_app: Flask) -> None:
    with small_app.test_client() as client:
        result = parsed(client, "/feeds/innlent/archive/2026-09/atom.xml")
    rels = {item.rel: item.href for item in result.feed.links}
    assert rels["current"] == "http://localhost/feeds/innlent/atom.xml"
    assert rels["prev-archive"] == "http://localhost/feeds/innlent/archive/2026-08/atom.xml"
    assert rels["next-archive"] == "http://localhost/feeds/innlent/archive/2026-10/atom.xml"
    assert [entry.title for entry in result.entries] == ["Frétt sept-d", "Frétt sept-b", "Frétt sept-a"]


def test_complete_months_are_kept_long_and_never_change_with_new_articles(
    small_app: Flask, history: Newsroom, clock: Clock
) -> None:
    with small_app.test_client() as client:
        complete = client.get("/feeds/archive/2026-09/rss.xml")
        ongoing = client.get("/feeds/archive/2026-11/rss.xml")
        assert "max-age=86400" in complete.headers["Cache-Control"]
        assert "max-age=60," in ongoing.headers["Cache-Control"]
        history.article("innlent", "nyjast", date="2026-11-01T11:00:00Z")
        clock.advance(days=4, hours=1)  # lifts the first embargo, in November
        again = client.get("/feeds/archive/2026-09/rss.xml")
        assert again.get_data() == complete.get_data() and again.headers["ETag"] == complete.headers["ETag"]
        revalidated = client.get("/feeds/archive/2026-09/rss.xml", headers={"If-None-Match": complete.headers["ETag"]})
        assert revalidated.status_code == 304
        november = ids(xml(client, "/feeds/archive/2026-11/rss.xml"))
    assert len(november) == 4 and any("bannad" in guid for guid in november)


def test_a_month_that_ends_is_complete_without_any_edit(small_app: Flask, clock: Clock) -> None:
    """A document rendered while its month went on is not answered once the month is over: it now
    says it is complete, and is kept as long as the other complete ones."""
    with small_app.test_client() as client:
        clock.advance(days=10)  # past November's embargo; the next one is on 24 December
        ongoing = client.get("/feeds/archive/2026-11/feed.json")
        assert ongoing.get_json()["_archive"]["complete"] is False
        assert "max-age=60," in ongoing.headers["Cache-Control"]
        clock.now = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)  # Reykjavík keeps UTC
        over = client.get("/feeds/archive/2026-11/feed.json")
        assert over.get_json()["_archive"]["complete"] is True
        assert "max-age=86400" in over.headers["Cache-Control"]
        assert over.get_json()["items"] == ongoing.get_json()["items"]
        assert over.headers["ETag"] != ongoing.headers["ETag"]


@pytest.mark.parametrize(
    "url",
    [
        "/feeds/archive/2026-07/rss.xml",  # no articles
        "/feeds/archive/2026-12/rss.xml",  # only an embargoed one
        "/feeds/archive/2027-01/atom.xml",  # in the future
        "/feeds/archive/2026-13/rss.xml",
        "/feeds/archive/26-09/rss.xml",
        "/feeds/erlent/archive/2026-12/feed.json",  # an embargoed one only, in a section
        "/feeds/nope/archive/2026-09/rss.xml",
        "/feeds/topics/eldgos/archive/2026-08/index.html",
        "/archive/2026-07/",
    ],
)
def test_a_month_without_public_articles_is_not_found(small_app: Flask, url: str) -> None:
    with small_app.test_client() as client:
        assert status(client, url) == 404


def test_pages_walk_back_to_the_oldest_article(small_app: Flask) -> None:
    titles: list[str] = []
    with small_app.test_client() as client:
        page = html.fromstring(get_ok(client, "/innlent/"))
        titles += xpath_strings(page, "//ul[@class='articles']/li/a/text()")
        following = xpath_strings(page, "//nav[@class='archive']/a[@rel='prev']/@href")
        while following:
            page = html.fromstring(get_ok(client, local(following[0])))
            assert xpath_strings(page, "//head/link[@rel='alternate'][1]/@href") == [
                "http://localhost/feeds/innlent/rss.xml"
            ]
            titles += xpath_strings(page, "//ul[@class='articles']/li/a/text()")
            following = xpath_strings(page, "//nav[@class='archive']/a[@rel='prev']/@href")
    assert titles[-1] == "Frétt agust-a"
    assert sorted(titles) == sorted(f"Frétt {slug}" for section, slug, _, _ in PUBLISHED if section == "innlent")


@pytest.mark.parametrize("path", ["/feeds", "/feeds/erlent", "/feeds/topics/eldgos"])
def test_a_feed_that_holds_its_whole_scope_names_no_archive(history: Newsroom, client: FlaskClient, path: str) -> None:
    """With feeds of 50, each feed holds every article of its scope: RFC 5005 readers need go no further."""
    section = path.split("/")[2] if path.count("/") == 2 else None
    topic = path.rsplit("/", 1)[1] if "/topics/" in path else None
    for file_name in ("rss.xml", "atom.xml"):
        current = xml(client, f"{path}/{file_name}")
        assert link(current, "prev-archive") is None
        assert set(ids(current)) == expected_ids(section, topic)
    assert "next_url" not in json.loads(get_ok(client, f"{path}/feed.json"))
    # The months are there all the same, for people paging back and for links made earlier.
    assert status(client, f"{path}/archive/2026-09/rss.xml") == 200


def test_archives_sit_in_the_newsrooms_timezone(newsroom: Newsroom, client: FlaskClient) -> None:
    newsroom.site(timezone="Pacific/Auckland")
    newsroom.article("innlent", "sidla", date="2026-09-30T13:00:00Z")  # 1 October in Auckland
    assert status(client, "/feeds/archive/2026-09/rss.xml") == 404
    assert len(ids(xml(client, "/feeds/archive/2026-10/rss.xml"))) == 1


@pytest.fixture
def busy_app(history: Newsroom, clock: Clock, tmp_path: Path) -> Flask:
    """October made busy: eight more articles on the 20th, so that with feeds of three (six to a
    period) the site's October is cut into days, and its 20th into hours."""
    for hour in range(8):
        history.article("erlent", f"okt-20-{hour}", date=f"2026-10-20T{10 + hour}:30:00Z", id=f"id-okt-20-{hour}")
    config = {"CONTENT_DIR": history.root, "CACHE_DIR": tmp_path / "cache", "INDEXER": "inline", "FEED_SIZE": 3}
    return create_app(config, clock=clock)


def test_a_busy_month_is_archived_by_day_and_a_busy_day_by_hour(busy_app: Flask) -> None:
    with busy_app.test_client() as client:
        current, archives, urls = walk(client, "/feeds/rss.xml")
        periods = [url.rsplit("/", 2)[1] for url in urls]
        found = Counter([*current, *(guid for document in archives for guid in document)])
        assert periods == [
            "2026-10-20T17", "2026-10-20T16", "2026-10-20T15", "2026-10-20T14", "2026-10-20T13",
            "2026-10-20T12", "2026-10-20T11", "2026-10-20T10", "2026-10-15", "2026-10-02", "2026-09", "2026-08",
        ]  # fmt: skip
        assert len(current) == 3  # November's two and October's last day with an article, the 31st
        assert set(found.values()) == {1}
        assert set(found) == expected_ids() | {f"tag:frettir.example.is,2026-10-20:id-okt-20-{h}" for h in range(8)}
        # Only the periods the archive is cut into have documents.
        assert status(client, "/feeds/archive/2026-10/rss.xml") == 404
        assert status(client, "/feeds/archive/2026-10-20/rss.xml") == 404
        assert status(client, "/feeds/archive/2026-10-19/rss.xml") == 404
        assert status(client, "/feeds/archive/2026-10-20T25/rss.xml") == 404
        # A section's October is quiet enough for one document.
        innlent = ids(xml(client, "/feeds/innlent/archive/2026-10/rss.xml"))
        assert len(innlent) == 2
        page = html.fromstring(get_ok(client, "/archive/2026-10-15/"))
    assert page.xpath("normalize-space(//h1/small)") == "15. október 2026"
    assert page.xpath("//nav[@class='archive']/a[@rel='prev']/text()") == ["Eldri: 2. október 2026"]


def test_the_subscription_feed_stays_short_however_busy_its_month(busy_app: Flask, history: Newsroom) -> None:
    for number in range(20):  # four an hour in the first five hours of November
        date = f"2026-11-01T{number // 4:02d}:{number:02d}:00Z"
        history.article("innlent", f"nov-1-{number}", date=date, id=f"id-nov-1-{number}")
    with busy_app.test_client() as client:
        current, archives, _ = walk(client, "/feeds/rss.xml")
    # The two newest, and the hour the third is in: at most three less one, and one period of at
    # most six (only an hour may hold more).
    assert len(current) == 6
    assert Counter([*current, *(guid for document in archives for guid in document)]).most_common(1)[0][1] == 1


def test_a_scope_all_in_one_period_is_whole_in_its_subscription_feed(
    newsroom: Newsroom, clock: Clock, tmp_path: Path
) -> None:
    """Five articles in one quiet month and feeds of three: no period before the third's, so the
    subscription feed must hold all five itself, or two would be out of every reader's reach."""
    for day in range(1, 6):
        newsroom.article("innlent", f"okt-{day}", date=f"2026-10-0{day}T12:00:00Z", id=f"id-okt-{day}")
    config = {"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache", "INDEXER": "inline", "FEED_SIZE": 3}
    every_one = sorted(f"tag:frettir.example.is,2026-10-0{day}:id-okt-{day}" for day in range(1, 6))
    with create_app(config, clock=clock).test_client() as client:
        for path in ("/feeds/rss.xml", "/feeds/atom.xml", "/feeds/innlent/rss.xml"):
            current = xml(client, path)
            assert link(current, "prev-archive") is None
            assert sorted(ids(current)) == every_one
        feed = json.loads(get_ok(client, "/feeds/feed.json"))
    assert "next_url" not in feed
    assert len(feed["items"]) == 5
