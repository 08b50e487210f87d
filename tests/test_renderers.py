"""Renderers are pure: the same description gives the same bytes, kept as golden files."""

from __future__ import annotations

import dataclasses
import json
import locale
import os
import types
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from feeds.bounded import BoundedCache
from feeds.description import Archive, Feed, Links, Scope
from feeds.formats import FORMATS, Format
from feeds.markup import SITE_ROOT_MARK
from feeds.model import Article, Image, Topic
from feeds.render import jsonfeed, syndication
from feeds.render.kept import ARTICLES_KEPT

GOLDEN = Path(__file__).parent / "data" / "golden"


def article(number: int, images: tuple[Image, ...]) -> Article:
    return Article(
        id=f"2024-0316-{number}",
        section="innlent",
        slug=f"frett-{number}",
        title=f"Frétt {number}: Þingvellir & „gæsalappir“",
        published=datetime(2024, 3, 16, 20, number, tzinfo=UTC),
        updated=datetime(2024, 3, 17, 8, number, tzinfo=UTC),
        tag_date="2024-03-16",
        authors=("Anna Jónsdóttir", "Páll Ólafsson") if number % 2 else (),
        topics=(Topic("Norður-Kórea", "nordur-korea"),),
        summary="Stutt samantekt.",
        body_html=f'<p>Texti með <a href="{SITE_ROOT_MARK}/innlent/annad/">tengli</a>.</p>',
        images=images,
    )


PHOTO = Image(
    src="/innlent/frett-2/gos.jpg",
    file="gos.jpg",
    media_type="image/jpeg",
    length=12345,
    width=640,
    height=427,
    caption="Hraunið rennur.",
    credit="AFP/KCNA",
    alt="Hraun",
    digest="1a2b3c4d5e6f77889900aabbccddeeff",
)
REMOTE = Image(
    src="https://myndir.example.is/a.png",
    file=None,
    media_type="image/png",
    length=999,
    width=10,
    height=20,
    caption="Fjarlæg mynd.",
    credit="Ljósmynd/Jón Pétursson",
    alt="",
)
FEED = Feed(
    scope=Scope(section="innlent"),
    title="Innlent – Fréttablaðið",
    description="Fréttir innanlands",
    language="is",
    updated=datetime(2024, 3, 17, 8, 2, tzinfo=UTC),
    ttl_minutes=15,
    authority="frettir.example.is",
    canonical_base_url="https://frettir.example.is",
    links=Links("https://cdn.example.is"),
    articles=(article(2, (PHOTO, REMOTE)), article(1, ())),
    publisher="Fréttablaðið",
    section_titles={"innlent": "Innlent"},
    generator="feeds",
)


#: A complete month of the same feed's RFC 5005 archive, between two others.
ARCHIVE = dataclasses.replace(
    FEED,
    scope=Scope(section="innlent", month="2024-03"),
    archive=Archive(previous="2023-11", following="2024-05", complete=True),
)


@pytest.mark.parametrize("format_", FORMATS, ids=lambda format_: format_.file_name)
@pytest.mark.parametrize(("name", "feed"), [("innlent", FEED), ("innlent-2024-03", ARCHIVE)])
def test_renderer_output_matches_golden_file(format_: Format, name: str, feed: Feed) -> None:
    golden = GOLDEN / f"{name}.{format_.file_name}"
    rendered = format_.render(feed)
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_bytes(rendered)
    assert rendered == golden.read_bytes()


@pytest.mark.parametrize("format_", FORMATS, ids=lambda format_: format_.file_name)
def test_rendering_leaves_the_process_locale_alone(format_: Format) -> None:
    before = locale.setlocale(locale.LC_ALL)
    format_.render(FEED)
    assert locale.setlocale(locale.LC_ALL) == before


def _kept_items(format_: Format) -> tuple[types.ModuleType, int]:
    """The renderer module that keeps the format's items, and how many items it keeps by default."""
    module = jsonfeed if format_.file_name == jsonfeed.JSON_FILE else syndication
    return module, (ARTICLES_KEPT if module is jsonfeed else syndication.ITEM_CACHE_SIZE)


def _ids(format_: Format, document: bytes) -> list[str]:
    if format_.file_name == jsonfeed.JSON_FILE:
        return [item["id"] for item in json.loads(document)["items"]]
    found = etree.fromstring(document).xpath(
        "//guid/text() | //atom:entry/atom:id/text()", namespaces={"atom": "http://www.w3.org/2005/Atom"}
    )
    assert isinstance(found, list)
    return [str(text) for text in found]


@pytest.mark.parametrize("format_", FORMATS, ids=lambda format_: format_.file_name)
def test_items_kept_from_other_renders_give_the_same_bytes(format_: Format, monkeypatch: pytest.MonkeyPatch) -> None:
    module, _ = _kept_items(format_)
    newest, older = FEED.articles
    third = article(3, (PHOTO,))
    whole = dataclasses.replace(ARCHIVE, articles=(third, newest, older))

    monkeypatch.setattr(module, "_items", BoundedCache(100))
    format_.render(dataclasses.replace(FEED, scope=Scope(topic="nordur-korea")))  # keeps the two older items
    partly_kept = format_.render(whole)  # writes only the third, reuses the others
    fully_kept = format_.render(whole)

    monkeypatch.setattr(module, "_items", BoundedCache(100))
    assert partly_kept == fully_kept == format_.render(whole)
    assert _ids(format_, fully_kept) == [FEED.guid(item) for item in whole.articles]


def test_a_json_document_with_its_items_set_in_is_what_json_writes_whole() -> None:
    """Titles and descriptions that look like the place where the items go do not move them."""
    tricky = dataclasses.replace(
        ARCHIVE,
        title='"items":[] – Innlent',
        description='{"items":[]}\\',
        articles=(dataclasses.replace(FEED.articles[0], title='"items":[],"x":"'),),
    )
    document = json.loads(jsonfeed.render_json(tricky))
    assert (document["title"], document["description"]) == (tricky.title, tricky.description)
    assert [item["title"] for item in document["items"]] == ['"items":[],"x":"']
    assert document["_archive"]["complete"] is True


@pytest.mark.parametrize("format_", FORMATS, ids=lambda format_: format_.file_name)
def test_a_full_item_cache_never_costs_a_feed_an_item(format_: Format, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chaos run's case: the feed's own items are the oldest kept when it is rendered again."""
    module, size = _kept_items(format_)
    monkeypatch.setattr(module, "_items", BoundedCache(size))
    site = tuple(article(number % 60, ()) for number in range(50))
    site = tuple(dataclasses.replace(item, id=f"frett-{number}") for number, item in enumerate(site))
    others = tuple(dataclasses.replace(site[0], id=f"annad-{number}") for number in range(size - len(site)))
    format_.render(dataclasses.replace(FEED, articles=site))
    format_.render(dataclasses.replace(FEED, scope=Scope(topic="nordur-korea"), articles=others))
    # An edit of any item but the oldest kept: writing it pushes the newest item out of the cache.
    edited = (*site[:5], dataclasses.replace(site[5], title="Frétt, breytt"), *site[6:])
    assert _ids(format_, format_.render(dataclasses.replace(FEED, articles=edited))) == [
        FEED.guid(item) for item in edited
    ]


@pytest.mark.parametrize("format_", FORMATS, ids=lambda format_: format_.file_name)
def test_items_of_a_feed_asked_for_again_are_the_last_forgotten(
    format_: Format, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, _ = _kept_items(format_)
    cache: BoundedCache[bytes] = BoundedCache(20)
    monkeypatch.setattr(module, "_items", cache)

    def articles(prefix: str, count: int) -> tuple[Article, ...]:
        return tuple(dataclasses.replace(FEED.articles[1], id=f"{prefix}-{number:02d}") for number in range(count))

    site, older, newer = articles("frett", 5), articles("eldri", 15), articles("nyrri", 5)
    format_.render(dataclasses.replace(FEED, articles=site))
    format_.render(dataclasses.replace(FEED, scope=Scope(topic="a"), articles=older))
    format_.render(dataclasses.replace(FEED, articles=site))  # asked for again: its items are kept anew
    format_.render(dataclasses.replace(FEED, scope=Scope(topic="b"), articles=newer))
    kept = b"".join(cache.values()).decode()
    assert all(FEED.guid(article) in kept for article in site)
    assert sum(FEED.guid(article) in kept for article in older) == 10
