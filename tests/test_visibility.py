"""Drafts never appear; embargoed articles appear when their time comes, without a restart."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from .conftest import Clock, Newsroom, parsed, status

FEEDS = ["/feeds/rss.xml", "/feeds/atom.xml", "/feeds/innlent/rss.xml", "/feeds/innlent/atom.xml"]
PHOTO = [{"file": "mynd.jpg", "caption": "Mynd.", "credit": "AFP"}]


@pytest.fixture
def hidden(newsroom: Newsroom) -> Newsroom:
    newsroom.article("innlent", "birt", title="Birt frétt", date="2026-10-01T00:00:00Z")
    newsroom.article(
        "innlent",
        "drog",
        title="Drög",
        draft=True,
        topics=["Leyndarmál"],
        photos={"mynd.jpg": (40, 30)},
        images=PHOTO,
    )
    newsroom.article(
        "innlent",
        "bann",
        title="Frétt í banni",
        date="2026-11-01T12:00:30Z",
        topics=["Bannað efni"],
        photos={"mynd.jpg": (40, 30)},
        images=PHOTO,
    )
    return newsroom


def titles(client: FlaskClient, url: str) -> list[str]:
    return [entry.title for entry in parsed(client, url).entries]


@pytest.mark.parametrize("feed", FEEDS)
def test_drafts_and_embargoed_articles_are_in_no_feed(hidden: Newsroom, client: FlaskClient, feed: str) -> None:
    assert titles(client, feed) == ["Birt frétt"]


@pytest.mark.parametrize(
    "url",
    [
        "/innlent/drog/",
        "/innlent/drog/mynd.jpg",
        "/feeds/topics/leyndarmal/rss.xml",
        "/topics/leyndarmal/",
        "/innlent/bann/",
        "/innlent/bann/mynd.jpg",
        "/feeds/topics/bannad-efni/rss.xml",
        "/topics/bannad-efni/",
    ],
)
def test_drafts_and_embargoed_articles_have_no_page_photo_or_topic(
    hidden: Newsroom, client: FlaskClient, url: str
) -> None:
    assert status(client, url) == 404


def test_embargoed_article_appears_when_its_time_comes(hidden: Newsroom, client: FlaskClient, clock: Clock) -> None:
    assert titles(client, "/feeds/rss.xml") == ["Birt frétt"]
    clock.advance(seconds=30)
    assert titles(client, "/feeds/rss.xml") == ["Frétt í banni", "Birt frétt"]
    assert titles(client, "/feeds/topics/bannad-efni/atom.xml") == ["Frétt í banni"]
    assert status(client, "/innlent/bann/") == 200
    assert status(client, "/innlent/bann/mynd.jpg") == 200
    assert status(client, "/innlent/drog/") == 404


def test_a_draft_published_later_appears(hidden: Newsroom, client: FlaskClient) -> None:
    hidden.article("innlent", "drog", title="Drög birt", draft=False, date="2026-10-15T00:00:00Z")
    assert titles(client, "/feeds/rss.xml") == ["Drög birt", "Birt frétt"]


def test_an_article_set_back_to_draft_disappears(hidden: Newsroom, client: FlaskClient) -> None:
    hidden.article("innlent", "birt", title="Birt frétt", draft=True)
    assert titles(client, "/feeds/rss.xml") == []
    assert status(client, "/innlent/birt/") == 404
