"""RSS and Atom through the real app, read the way feed readers and lxml read them."""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from lxml import etree, html

from feeds import content as article_reader
from feeds import images
from feeds.bounded import BoundedCache

from .conftest import NS, Clock, Newsroom, attribute, find, findtext, get_ok, parsed, xml, xpath_elements, xpath_strings

PHOTOS = {"gos.jpg": (640, 427), "hraun.png": (300, 200), "folk.webp": (120, 90)}
IMAGES = [
    {
        "file": "gos.jpg",
        "caption": "Hraunið rennur til vesturs.",
        "credit": "Ljósmynd/Jón Pétursson",
        "alt": "Glóandi hraun að nóttu",
    },
    {"file": "hraun.png", "caption": "Gígaröðin séð úr lofti.", "credit": "AFP/KCNA"},
    {"file": "folk.webp", "caption": "Fólk fylgist með úr fjarlægð.", "credit": "AFP"},
]
BODY = (
    "Eldgos hófst á Reykjanesskaga í kvöld, þremur kílómetrum norðan Grindavíkur.\n\n"
    "![Hraun í myrkri](hraun.png)\n\n"
    "## Íbúar fluttir á brott\n\n"
    "Almannavarnir segja að engin hætta sé á ferðum í byggð.\n"
)


@pytest.fixture
def eruption(newsroom: Newsroom) -> Newsroom:
    newsroom.article(
        "innlent",
        "eldgos-hafid",
        body=BODY,
        photos=PHOTOS,
        title="Eldgos hafið við Sundhnúksgíga",
        date="16. mars 2024 kl. 20.23",
        updated="2024-03-17T08:00:00Z",
        authors=["Anna Jónsdóttir", "Þórður Ægisson"],
        topics=["Reykjanesskagi", "Eldgos"],
        images=IMAGES,
        id="2024-0316-gos",
    )
    newsroom.article(
        "erlent",
        "eldflaug",
        title="Norður-Kórea skaut eldflaug",
        date="17. september 2023",
        topics=["Norður-Kórea"],
        summary="Stutt samantekt á fréttinni.",
    )
    return newsroom


def rss_item(client: FlaskClient, url: str = "/feeds/rss.xml") -> etree._Element:
    items = xml(client, url).findall("channel/item")
    return next(item for item in items if item.findtext("title") == "Eldgos hafið við Sundhnúksgíga")


def atom_entry(client: FlaskClient, url: str = "/feeds/atom.xml") -> etree._Element:
    entries = xml(client, url).findall("atom:entry", NS)
    return next(
        entry for entry in entries if entry.findtext("atom:title", namespaces=NS) == "Eldgos hafið við Sundhnúksgíga"
    )


def test_rss_channel_describes_the_site_and_dates_itself_by_the_newest_item(
    eruption: Newsroom, client: FlaskClient
) -> None:
    channel = find(xml(client, "/feeds/rss.xml"), "channel")
    assert channel.findtext("title") == "Fréttablaðið"
    assert channel.findtext("link") == "http://localhost/"
    assert channel.findtext("description") == "Fréttir á íslensku"
    assert channel.findtext("language") == "is"
    assert channel.findtext("ttl") == "15"
    self_link = find(channel, "atom:link[@rel='self']")
    assert self_link.get("href") == "http://localhost/feeds/rss.xml"
    assert self_link.get("type") == "application/rss+xml"
    # The newest item's date (its update), never the time of the request.
    assert parsedate_to_datetime(findtext(channel, "lastBuildDate")).isoformat() == "2024-03-17T08:00:00+00:00"


def test_rss_item_carries_text_authors_dates_and_topics(eruption: Newsroom, client: FlaskClient) -> None:
    item = rss_item(client)
    assert item.findtext("link") == "http://localhost/innlent/eldgos-hafid/"
    guid = find(item, "guid")
    assert guid.text == "tag:frettir.example.is,2024-03-16:2024-0316-gos"
    assert guid.get("isPermaLink") == "false"
    pub_date = item.findtext("pubDate")
    assert pub_date == "Sat, 16 Mar 2024 20:23:00 GMT"
    # One creator naming both: readers that take one creator per item show every author.
    assert [node.text for node in item.findall("dc:creator", NS)] == ["Anna Jónsdóttir og Þórður Ægisson"]
    assert [node.text for node in item.findall("category")] == ["Innlent", "Reykjanesskagi", "Eldgos"]
    assert (
        item.findtext("description") == "Eldgos hófst á Reykjanesskaga í kvöld, þremur kílómetrum norðan Grindavíkur."
    )


def test_rss_body_shows_every_photo_as_a_figure_with_caption_and_credit(
    eruption: Newsroom, client: FlaskClient
) -> None:
    body = html.fragment_fromstring(findtext(rss_item(client), "content:encoded"), create_parent="div")
    figures = body.findall(".//figure")
    # The lead photo opens the body, the placed one stands where it was placed, the last closes it.
    sources = [find(figure, "img").get("src") for figure in figures]
    assert sources == [
        "http://localhost/innlent/eldgos-hafid/gos.jpg",
        "http://localhost/innlent/eldgos-hafid/hraun.png",
        "http://localhost/innlent/eldgos-hafid/folk.webp",
    ]
    lead = figures[0]
    assert (find(lead, "img").get("width"), find(lead, "img").get("height")) == ("640", "427")
    assert find(lead, "img").get("alt") == "Glóandi hraun að nóttu"
    assert findtext(lead, "figcaption").strip() == "Hraunið rennur til vesturs."
    assert find(lead, "figcaption/small").text == "Ljósmynd/Jón Pétursson"
    assert find(figures[1], "figcaption/small").text == "AFP/KCNA"
    assert [element.text for element in body.findall(".//h2")] == ["Íbúar fluttir á brott"]
    placed = xpath_elements(body, "./p[1]/following-sibling::*[1]")[0]
    assert placed.tag == "figure" and attribute(find(placed, "img"), "src").endswith("hraun.png")


def test_rss_has_one_enclosure_the_lead_photo_measured_from_its_file(eruption: Newsroom, client: FlaskClient) -> None:
    enclosures = rss_item(client).findall("enclosure")
    assert len(enclosures) == 1
    lead = eruption.root / "innlent/eldgos-hafid/gos.jpg"
    assert dict(enclosures[0].attrib.items()) == {
        "url": "http://localhost/innlent/eldgos-hafid/gos.jpg",
        "length": str(lead.stat().st_size),
        "type": "image/jpeg",
    }


@pytest.mark.parametrize("feed", ["/feeds/rss.xml", "/feeds/atom.xml"])
def test_every_photo_is_its_own_media_content_with_caption_and_credit_inside(
    eruption: Newsroom, client: FlaskClient, feed: str
) -> None:
    entry = rss_item(client) if feed.endswith("rss.xml") else atom_entry(client)
    assert entry.findall(".//media:group", NS) == []
    contents = entry.findall("media:content", NS)
    assert len(contents) == 3
    for content, image, (name, (width, height)) in zip(contents, IMAGES, PHOTOS.items(), strict=True):
        path = eruption.root / "innlent/eldgos-hafid" / name
        assert dict(content.attrib.items()) == {
            "url": f"http://localhost/innlent/eldgos-hafid/{name}",
            "medium": "image",
            "type": {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}[name.rsplit(".", 1)[1]],
            "width": str(width),
            "height": str(height),
            "fileSize": str(path.stat().st_size),
        }
        description = find(content, "media:description")
        assert (description.text, description.get("type")) == (image["caption"], "plain")
        assert find(content, "media:credit").text == image["credit"]
        # The thumbnail is the smallest rendition; a photo narrower than that is its own thumbnail.
        thumbnail = find(content, "media:thumbnail")
        expected = (320, round(height * 320 / width)) if width > 320 else (width, height)
        assert (int(attribute(thumbnail, "width")), int(attribute(thumbnail, "height"))) == expected
        if width > 320:
            assert attribute(thumbnail, "url").startswith("http://localhost/innlent/eldgos-hafid/320w-")
            assert attribute(thumbnail, "url").endswith(f"/{name}")
        else:
            assert thumbnail.get("url") == content.get("url")


def test_atom_feed_head(eruption: Newsroom, client: FlaskClient) -> None:
    feed = xml(client, "/feeds/atom.xml")
    assert feed.get("{http://www.w3.org/XML/1998/namespace}lang") == "is"
    assert feed.findtext("atom:id", namespaces=NS) == "https://frettir.example.is/feeds/atom.xml"
    assert feed.findtext("atom:title", namespaces=NS) == "Fréttablaðið"
    assert feed.findtext("atom:updated", namespaces=NS) == "2024-03-17T08:00:00+00:00"
    links = {link.get("rel"): link.get("href") for link in feed.findall("atom:link", NS)}
    assert links == {
        "self": "http://localhost/feeds/atom.xml",
        "alternate": "http://localhost/",
    }


def test_atom_entry_matches_rss_and_carries_enclosure_links(eruption: Newsroom, client: FlaskClient) -> None:
    entry = atom_entry(client)
    assert entry.findtext("atom:id", namespaces=NS) == rss_item(client).findtext("guid")
    assert entry.findtext("atom:published", namespaces=NS) == "2024-03-16T20:23:00+00:00"
    assert entry.findtext("atom:updated", namespaces=NS) == "2024-03-17T08:00:00+00:00"
    assert [name.text for name in entry.findall("atom:author/atom:name", NS)] == ["Anna Jónsdóttir", "Þórður Ægisson"]
    assert [category.get("term") for category in entry.findall("atom:category", NS)] == [
        "Innlent",
        "Reykjanesskagi",
        "Eldgos",
    ]
    assert findtext(entry, "atom:summary").startswith("Eldgos hófst á Reykjanesskaga")
    content = find(entry, "atom:content")
    assert content.get("type") == "html"
    assert len(html.fragment_fromstring(findtext(entry, "atom:content"), create_parent="div").findall(".//figure")) == 3
    alternate = find(entry, "atom:link[@rel='alternate']")
    assert alternate.get("href") == "http://localhost/innlent/eldgos-hafid/"
    enclosures = entry.findall("atom:link[@rel='enclosure']", NS)
    assert [
        (attribute(link, "href").rsplit("/", 1)[1], link.get("type"), link.get("title")) for link in enclosures
    ] == [
        ("gos.jpg", "image/jpeg", "Hraunið rennur til vesturs. (Ljósmynd/Jón Pétursson)"),
        ("hraun.png", "image/png", "Gígaröðin séð úr lofti. (AFP/KCNA)"),
        ("folk.webp", "image/webp", "Fólk fylgist með úr fjarlægð. (AFP)"),
    ]
    for link, name in zip(enclosures, PHOTOS, strict=True):
        assert link.get("length") == str((eruption.root / "innlent/eldgos-hafid" / name).stat().st_size)


@pytest.mark.parametrize("feed", ["/feeds/rss.xml", "/feeds/atom.xml"])
def test_feed_readers_see_the_same_article(eruption: Newsroom, client: FlaskClient, feed: str) -> None:
    result = parsed(client, feed)
    assert result.feed.title == "Fréttablaðið"
    first, second = result.entries
    assert first.title == "Eldgos hafið við Sundhnúksgíga"
    assert first.id == "tag:frettir.example.is,2024-03-16:2024-0316-gos"
    assert first.link == "http://localhost/innlent/eldgos-hafid/"
    assert tuple(first.published_parsed)[:5] == (2024, 3, 16, 20, 23)
    assert [author.name for author in first.authors] == (
        ["Anna Jónsdóttir og Þórður Ægisson"] if feed.endswith("rss.xml") else ["Anna Jónsdóttir", "Þórður Ægisson"]
    )
    assert [tag.term for tag in first.tags] == ["Innlent", "Reykjanesskagi", "Eldgos"]
    assert [enclosure.href.rsplit("/", 1)[1] for enclosure in first.enclosures] == (
        ["gos.jpg"] if feed.endswith("rss.xml") else list(PHOTOS)
    )
    assert [content["url"].rsplit("/", 1)[1] for content in first.media_content] == list(PHOTOS)
    assert second.title == "Norður-Kórea skaut eldflaug"
    assert second.summary == "Stutt samantekt á fréttinni."


@pytest.mark.parametrize("feed", ["/feeds/rss.xml", "/feeds/atom.xml"])
def test_every_url_inside_a_feed_is_absolute(eruption: Newsroom, client: FlaskClient, feed: str) -> None:
    document = xml(client, feed)
    urls = xpath_strings(document, "//@href | //@url | //link/text()")
    assert urls and all(url.startswith(("http://", "https://")) for url in urls), urls
    for text in xpath_strings(document, "//content:encoded/text() | //atom:content/text()"):
        fragment = html.fragment_fromstring(text, create_parent="div")
        assert all(url.startswith("http") for url in xpath_strings(fragment, "//@href | //@src"))


def test_base_url_setting_prefixes_every_url(eruption: Newsroom, tmp_path: Path, clock: Clock) -> None:
    from feeds import create_app

    app = create_app(
        {
            "CONTENT_DIR": eruption.root,
            "CACHE_DIR": tmp_path / "c2",
            "BASE_URL": "https://cdn.example.is/frettir/",
            "INDEXER": "inline",
        },
        clock=clock,
    )
    document = xml(app.test_client(), "/feeds/atom.xml")
    urls = xpath_strings(document, "//@href | //@url")
    assert all(url.startswith("https://cdn.example.is/frettir/") for url in urls), urls


def test_items_are_newest_first_and_fifty_by_default(newsroom: Newsroom, client: FlaskClient) -> None:
    # The three oldest in the month before: the subscription feed holds the rest of its 50th's month.
    for number in range(53):
        day = "2025-12-31" if number < 3 else "2026-01-01"
        newsroom.article("innlent", f"frett-{number}", date=f"{day}T10:{number:02d}:00Z")
    titles = [item.findtext("title") for item in xml(client, "/feeds/rss.xml").findall("channel/item")]
    assert titles == [f"Frétt frett-{number}" for number in range(52, 2, -1)]


def test_guid_survives_a_new_title_and_a_moved_bundle(newsroom: Newsroom, client: FlaskClient) -> None:
    path = newsroom.article("innlent", "gamalt-heiti", id="2024-0316-gos", date="2024-03-16T20:23:00Z")
    before = xml(client, "/feeds/rss.xml").findtext("channel/item/guid")
    path.parent.rename(newsroom.root / "erlent" / "nytt-heiti")
    newsroom.article("erlent", "nytt-heiti", id="2024-0316-gos", date="2024-03-16T20:23:00Z", title="Nýr titill")
    item = find(xml(client, "/feeds/rss.xml"), "channel/item")
    assert item.findtext("title") == "Nýr titill"
    assert item.findtext("guid") == before == "tag:frettir.example.is,2024-03-16:2024-0316-gos"


@pytest.mark.parametrize("feed", ["rss.xml", "atom.xml", "feed.json"])
def test_section_and_topic_feeds_hold_only_their_articles(eruption: Newsroom, client: FlaskClient, feed: str) -> None:
    def titles(url: str) -> list[str]:
        if url.endswith(".json"):
            return [item["title"] for item in json.loads(get_ok(client, url))["items"]]
        return [entry.title for entry in parsed(client, url).entries]

    assert titles(f"/feeds/innlent/{feed}") == ["Eldgos hafið við Sundhnúksgíga"]
    assert titles(f"/feeds/erlent/{feed}") == ["Norður-Kórea skaut eldflaug"]
    assert titles(f"/feeds/topics/nordur-korea/{feed}") == ["Norður-Kórea skaut eldflaug"]
    assert titles(f"/feeds/topics/eldgos/{feed}") == ["Eldgos hafið við Sundhnúksgíga"]


def test_section_and_topic_feed_heads(eruption: Newsroom, client: FlaskClient) -> None:
    channel = find(xml(client, "/feeds/innlent/rss.xml"), "channel")
    assert channel.findtext("title") == "Innlent – Fréttablaðið"
    assert channel.findtext("link") == "http://localhost/innlent/"
    assert find(channel, "atom:link").get("href") == "http://localhost/feeds/innlent/rss.xml"
    channel = find(xml(client, "/feeds/topics/nordur-korea/rss.xml"), "channel")
    assert channel.findtext("title") == "Norður-Kórea – Fréttablaðið"
    assert channel.findtext("link") == "http://localhost/topics/nordur-korea/"


@pytest.mark.parametrize(
    "url",
    [
        "/feeds/ithrottir/rss.xml",
        "/feeds/topics/thingvellir/atom.xml",
        "/feeds/innlent/rss.json",
        "/feeds/Innlent/rss.xml",
        "/feeds/topics/Nordur-Korea/rss.xml",
        "/feeds/innlent/../rss.xml",
    ],
)
def test_unknown_section_topic_or_format_is_404(eruption: Newsroom, client: FlaskClient, url: str) -> None:
    assert client.get(url).status_code == 404


def test_empty_section_still_has_a_valid_feed(newsroom: Newsroom, client: FlaskClient) -> None:
    channel = find(xml(client, "/feeds/erlent/rss.xml"), "channel")
    assert channel.findall("item") == []
    assert channel.find("lastBuildDate") is None
    feed = xml(client, "/feeds/erlent/atom.xml")
    assert feed.findtext("atom:updated", namespaces=NS)


def test_photos_are_measured_right_when_there_are_more_than_the_memo_keeps(
    newsroom: Newsroom, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memos of measured photos forget the oldest; with more photos than they keep, each article still
    carries its own photo's size and length, also after photos are rewritten in place."""
    kept = 3
    monkeypatch.setattr(images, "_measured", BoundedCache(kept))
    monkeypatch.setattr(article_reader, "_measured_files", BoundedCache(kept))
    count = 4 * kept

    def write(number: int, width: int) -> None:
        newsroom.article(
            "innlent",
            f"mynd-{number:02d}",
            photos={"mynd.png": (width, 30 + number)},
            date=f"2026-10-01T{number:02d}:00:00Z",
            images=[{"file": "mynd.png", "caption": f"Mynd {number}.", "credit": "AFP"}],
        )

    def measured() -> dict[str, tuple[str, str, str]]:
        return {
            findtext(item, "title"): (
                attribute(find(item, "media:content"), "width"),
                attribute(find(item, "media:content"), "height"),
                attribute(find(item, "media:content"), "fileSize"),
            )
            for item in xml(client, "/feeds/rss.xml").iterfind("channel/item")
        }

    def expected(widths: dict[int, int]) -> dict[str, tuple[str, str, str]]:
        return {
            f"Frétt mynd-{number:02d}": (
                str(width),
                str(30 + number),
                str((newsroom.root / f"innlent/mynd-{number:02d}/mynd.png").stat().st_size),
            )
            for number, width in widths.items()
        }

    widths = {number: 40 + number for number in range(count)}
    for number, width in widths.items():
        write(number, width)
    assert measured() == expected(widths)
    assert len(images._measured.values()) == len(article_reader._measured_files.values()) == kept
    # New photos of other widths written over the old files: the first article's, long forgotten by
    # the memos, and the last one's, still kept there.
    widths |= {0: 100, count - 1: 100 + count}
    for number in (0, count - 1):
        write(number, widths[number])
    assert measured() == expected(widths)
