"""What real readers showed: one author string, no site author on items, no text glued across
blocks, a favicon and robots.txt that are never sections, and the OPML list of every feed."""

from __future__ import annotations

import json
from pathlib import Path

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree, html

from feeds.description import byline

from .conftest import NS, Newsroom, attribute, findtext, get_ok, parsed, status, xml, xpath_elements, xpath_strings

PHOTOS = {"gos.jpg": (64, 48), "kort.png": (30, 20)}
IMAGES = [
    {"file": "gos.jpg", "caption": "Hraunið rennur.", "credit": "Skjáskot/RÚV"},
    {"file": "kort.png", "caption": "Kort af svæðinu.", "credit": "AFP/KCNA"},
]
BODY = (
    "Heimildarmyndin var sýnd í gær.\n\n"
    "![Kort](kort.png)\n\n"
    "## Viðbrögð\n\n"
    "- Fyrsti liður\n- Annar liður\n\n"
    "> Tilvitnun í viðmælanda.\n\n"
    "Síðasta málsgrein."
)


@pytest.fixture
def documentary(newsroom: Newsroom) -> Newsroom:
    newsroom.article(
        "innlent",
        "heimildarmynd",
        body=BODY,
        photos=PHOTOS,
        images=IMAGES,
        authors=["Anna Jónsdóttir", "Páll Ólafsson"],
        date="2026-10-02T12:00:00Z",
        topics=["Eldgos"],
    )
    newsroom.article("erlent", "nafnlaus", title="Frétt án höfundar", date="2026-10-01T12:00:00Z")
    return newsroom


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ((), ""),
        (("Anna Jónsdóttir",), "Anna Jónsdóttir"),
        (("Anna Jónsdóttir", "Páll Ólafsson"), "Anna Jónsdóttir og Páll Ólafsson"),
        (("A", "B", "C"), "A, B og C"),
    ],
)
def test_byline_joins_names_the_icelandic_way(names: tuple[str, ...], expected: str) -> None:
    assert byline(names, "is") == expected


def test_rss_item_has_one_creator_naming_every_author(documentary: Newsroom, client: FlaskClient) -> None:
    items = {item.findtext("title"): item for item in xml(client, "/feeds/rss.xml").findall("channel/item")}
    creators = items["Frétt heimildarmynd"].findall("dc:creator", NS)
    assert [creator.text for creator in creators] == ["Anna Jónsdóttir og Páll Ólafsson"]
    # Readers that show the first creator and readers that show the last both show everyone.
    entry = next(entry for entry in parsed(client, "/feeds/rss.xml").entries if entry.title == "Frétt heimildarmynd")
    assert entry.author == "Anna Jónsdóttir og Páll Ólafsson"
    assert items["Frétt án höfundar"].find("dc:creator", NS) is None


def test_atom_and_json_keep_each_author_apart(documentary: Newsroom, client: FlaskClient) -> None:
    entry = parsed(client, "/feeds/atom.xml").entries[0]
    assert [author.name for author in entry.authors] == ["Anna Jónsdóttir", "Páll Ólafsson"]
    item = json.loads(get_ok(client, "/feeds/feed.json"))["items"][0]
    assert item["authors"] == [{"name": "Anna Jónsdóttir"}, {"name": "Páll Ólafsson"}]


def test_json_feed_names_no_site_author(documentary: Newsroom, client: FlaskClient) -> None:
    document = json.loads(get_ok(client, "/feeds/feed.json"))
    assert "authors" not in document and "author" not in document
    anonymous = next(item for item in document["items"] if item["title"] == "Frétt án höfundar")
    assert "authors" not in anonymous and "author" not in anonymous
    # A reader that falls back to the feed's authors finds none to put on the item.
    result = feedparser.parse(get_ok(client, "/feeds/feed.json"))
    assert "author" not in result.feed


def _text_as_a_tag_stripper_reads_it(fragment: str) -> str:
    """What a client that drops every tag keeps: the text nodes, as they stand in the source."""
    return "".join(html.fragment_fromstring(fragment, create_parent="div").itertext())


@pytest.mark.parametrize(
    ("url", "bodies"),
    [
        ("/feeds/rss.xml", "//item/content:encoded/text()"),
        ("/feeds/atom.xml", "//atom:entry/atom:content/text()"),
    ],
)
def test_no_text_is_glued_across_blocks(documentary: Newsroom, client: FlaskClient, url: str, bodies: str) -> None:
    body = xpath_strings(xml(client, url), bodies)[0]
    text = _text_as_a_tag_stripper_reads_it(body)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert "Hraunið rennur. Skjáskot/RÚV" in lines
    assert "Heimildarmyndin var sýnd í gær." in lines
    assert "Kort af svæðinu. AFP/KCNA" in lines
    assert "Viðbrögð" in lines and "Fyrsti liður" in lines and "Síðasta málsgrein." in lines
    # Every block element stands apart from the next: no block end runs into the next tag.
    tree = html.fragment_fromstring(body, create_parent="div")
    for element in tree.iter("p", "figure", "h2", "ul", "li", "blockquote"):
        assert element.tail is not None and element.tail.startswith("\n"), etree.tostring(element)


def test_json_content_html_keeps_blocks_apart(documentary: Newsroom, client: FlaskClient) -> None:
    item = json.loads(get_ok(client, "/feeds/feed.json"))["items"][0]
    text = _text_as_a_tag_stripper_reads_it(item["content_html"])
    assert "RÚVHeimildarmyndin" not in text and "KCNAViðbrögð" not in text
    assert "Skjáskot/RÚV\nHeimildarmyndin" in text


def test_favicon_is_an_icon_and_every_page_names_it(documentary: Newsroom, client: FlaskClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.mimetype == "image/vnd.microsoft.icon"
    assert response.get_data()[:4] == b"\x00\x00\x01\x00"
    assert "max-age=86400" in response.headers["Cache-Control"]
    for page in ("/", "/innlent/", "/topics/eldgos/", "/innlent/heimildarmynd/"):
        document = html.fromstring(get_ok(client, page))
        assert document.xpath("//head/link[@rel='icon']/@href") == ["http://localhost/favicon.ico"], page


def test_robots_txt_is_served(client: FlaskClient) -> None:
    response = client.get("/robots.txt")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert response.get_data(as_text=True).splitlines()[0] == "User-agent: *"


def test_favicon_and_robots_answer_without_an_index(newsroom: Newsroom, tmp_path: Path) -> None:
    from feeds import create_app

    app = create_app({"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "empty", "INDEXER": "watch"})
    with app.test_client() as client:
        assert client.get("/").status_code == 503
        assert status(client, "/favicon.ico") == 200
        assert status(client, "/robots.txt") == 200


@pytest.mark.parametrize("name", ["favicon.ico", "robots.txt", "feeds.opml", "archive", "healthz", "feeds"])
def test_a_reserved_name_is_never_a_section(newsroom: Newsroom, app: Flask, client: FlaskClient, name: str) -> None:
    newsroom.section(name, "Fölsk")
    newsroom.article(name, "frett", title="Aldrei birt")
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1
    assert f"{name}: {name!r} is reserved for the service's own URLs" in result.stdout
    assert [entry.title for entry in parsed(client, "/feeds/rss.xml").entries] == []
    assert status(client, f"/{name}/frett/") == 404


def test_opml_lists_every_feed(documentary: Newsroom, client: FlaskClient) -> None:
    response = client.get("/feeds.opml")
    assert response.status_code == 200 and response.mimetype == "text/x-opml"
    assert response.headers["ETag"]
    assert client.get("/feeds.opml", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    document = etree.fromstring(response.get_data(), etree.XMLParser(resolve_entities=False, no_network=True))
    check_opml_2(document)
    outlines = xpath_elements(document, "//outline[@type='rss']")
    by_title = {outline.get("title"): outline for outline in outlines}
    assert set(by_title) == {"Fréttablaðið", "Innlent", "Erlent", "Eldgos"}
    assert by_title["Innlent"].get("xmlUrl") == "http://localhost/feeds/innlent/rss.xml"
    assert by_title["Innlent"].get("htmlUrl") == "http://localhost/innlent/"
    assert by_title["Eldgos"].get("xmlUrl") == "http://localhost/feeds/topics/eldgos/rss.xml"
    topics = by_title["Eldgos"].getparent()
    assert topics is not None and topics.get("text") == "Efni"
    for outline in outlines:
        feed = parsed(client, attribute(outline, "xmlUrl").removeprefix("http://localhost"))
        assert feed.feed.title and feed.version == "rss20"
        assert status(client, attribute(outline, "htmlUrl").removeprefix("http://localhost")) == 200


def test_every_page_links_to_the_opml(documentary: Newsroom, client: FlaskClient) -> None:
    for page in ("/", "/innlent/", "/topics/eldgos/", "/innlent/heimildarmynd/", "/innlent/engin/"):
        with client.get(page) as response:
            document = html.fromstring(response.get_data())
        assert "http://localhost/feeds.opml" in xpath_strings(document, "//a/@href"), page


def check_opml_2(document: etree._Element) -> None:
    """The OPML 2.0 specification's rules for a subscription list (http://opml.org/spec2.opml)."""
    from email.utils import parsedate_to_datetime

    assert document.tag == "opml" and document.get("version") == "2.0"
    head, body = document
    assert (head.tag, body.tag) == ("head", "body")
    assert head.findtext("title")
    for date in ("dateCreated", "dateModified"):
        if head.find(date) is not None:
            assert parsedate_to_datetime(findtext(head, date)).tzinfo is not None
    assert len(body) > 0
    for outline in body.iter("outline"):
        assert outline.get("text"), etree.tostring(outline)
        if outline.get("type") == "rss":
            assert outline.get("xmlUrl", "").startswith("http") and len(outline) == 0
        else:
            assert outline.get("xmlUrl") is None
