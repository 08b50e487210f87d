"""Whatever the text holds, the XML stays well-formed and no script reaches a reader."""

from __future__ import annotations

import json
import sys

import pytest
from flask.testing import FlaskClient
from lxml import html

from feeds import markup

from .conftest import NS, Newsroom, find, get_ok, parsed, xml, xpath_strings

TITLE = "Tom & Jerry <b>ekki feitletrað</b> ]]> og \x00\x08\x0b\x1b\x7f\x85 stýristafir"
CLEAN_TITLE = "Tom & Jerry <b>ekki feitletrað</b> ]]> og stýristafir"
BODY = """Fyrsta málsgrein með ]]> og & og < og \x01 stýristaf.

<script>alert("xss")</script>
<p onclick="alert(1)">Smelltu <a href="javascript:alert(2)">hér</a> eða <a href="JaVaScRiPt:alert(3)">hér</a>.</p>
<img src="x.jpg" onerror="alert(4)">
<iframe src="https://illt.example/"></iframe><style>body{display:none}</style>
<a href="../onnur-frett/" title="Önnur">Tengill innan vefs</a> og <a href="//annar.example/sida">annar vefur</a>.
"""
IMAGES = [{"file": "mynd.jpg", "caption": "Myndatexti <script>x</script> & ]]>", "credit": "AFP/KCNA \x02"}]


@pytest.fixture
def hostile(newsroom: Newsroom) -> Newsroom:
    newsroom.article(
        "innlent",
        "haettuleg",
        body=BODY,
        title=TITLE,
        authors=["Anna \x07Jónsdóttir"],
        topics=["Tom & Jerry"],
        images=IMAGES,
        photos={"mynd.jpg": (40, 30)},
    )
    return newsroom


def bodies(client: FlaskClient) -> list[str]:
    rss = xml(client, "/feeds/rss.xml").findtext("channel/item/content:encoded", namespaces=NS)
    atom = xml(client, "/feeds/atom.xml").findtext("atom:entry/atom:content", namespaces=NS)
    feed = json.loads(get_ok(client, "/feeds/feed.json"))["items"][0]["content_html"]
    article = html.fromstring(get_ok(client, "/innlent/haettuleg/").decode()).find(".//article")
    return [rss, atom, feed, html.tostring(article, encoding="unicode")]


@pytest.mark.parametrize("feed", ["/feeds/rss.xml", "/feeds/atom.xml"])
def test_markup_characters_and_control_characters_never_break_the_xml(
    hostile: Newsroom, client: FlaskClient, feed: str
) -> None:
    xml(client, feed)  # parses strictly
    entry = parsed(client, feed).entries[0]
    assert entry.title == CLEAN_TITLE
    assert [author.name for author in entry.authors] == ["Anna Jónsdóttir"]
    assert "Tom & Jerry" in [tag.term for tag in entry.tags]
    content = find(xml(client, feed), ".//media:content")
    assert content.findtext("media:description", namespaces=NS) == "Myndatexti <script>x</script> & ]]>"
    assert content.findtext("media:credit", namespaces=NS) == "AFP/KCNA"


def test_json_feed_carries_the_same_clean_text(hostile: Newsroom, client: FlaskClient) -> None:
    item = json.loads(get_ok(client, "/feeds/feed.json"))["items"][0]
    assert item["title"] == CLEAN_TITLE
    assert item["_media"]["images"][0]["caption"] == "Myndatexti <script>x</script> & ]]>"


def test_scripts_handlers_and_javascript_urls_never_reach_a_reader(hostile: Newsroom, client: FlaskClient) -> None:
    for body in bodies(client):
        tree = html.fromstring(body)
        assert tree.xpath("//script | //iframe | //style | //object | //embed") == []
        assert [name for element in tree.iter() for name in element.attrib if str(name).lower().startswith("on")] == []
        urls = xpath_strings(tree, "//@href | //@src")
        assert not [url for url in urls if url.strip().lower().startswith("javascript:")]
        assert "alert(" not in body


def test_only_listed_photos_appear_in_a_body(hostile: Newsroom, client: FlaskClient) -> None:
    for body in bodies(client)[:3]:
        sources = html.fragment_fromstring(body, create_parent="div").xpath("//img/@src")
        assert sources == ["http://localhost/innlent/haettuleg/mynd.jpg"]


def test_links_are_resolved_and_made_absolute(hostile: Newsroom, client: FlaskClient) -> None:
    rss = bodies(client)[0]
    links = html.fragment_fromstring(rss, create_parent="div").xpath("//a/@href")
    assert links == ["http://localhost/innlent/onnur-frett/", "https://annar.example/sida"]


def test_caption_markup_is_text_in_the_figure(hostile: Newsroom, client: FlaskClient) -> None:
    figure = html.fragment_fromstring(bodies(client)[0], create_parent="div").find(".//figure")
    assert figure.find("figcaption").text.strip() == "Myndatexti <script>x</script> & ]]>"
    assert figure.find("figcaption/small").text == "AFP/KCNA"


def test_every_character_taken_out_of_text_is_unprintable() -> None:
    """`clean_text` keeps printable text whole without looking further: that holds only while no
    character it takes out is printable."""
    every_character = "".join(map(chr, range(sys.maxunicode + 1)))
    removed = markup._FORBIDDEN_CHARACTERS.findall(every_character)
    assert len(removed) == 0x20 - 3 + 0xA0 - 0x7F + 0xE000 - 0xD800 + 2
    assert [hex(ord(character)) for character in removed if character.isprintable()] == []


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("Gos á Reykjanesi", "Gos á Reykjanesi"),
        ("Fyrsta lína\nönnur\u00a0lína\n", "Fyrsta lína\nönnur\u00a0lína\n"),
        ("Fyrsta lína\nönnur\x85 lína\x00\r\n\tþriðja\ufffe", "Fyrsta lína\nönnur lína\r\n\tþriðja"),
        ("stýri\x1bstafur\u2028og\ud800", "stýristafur\u2028og"),
    ],
)
def test_clean_text_removes_what_xml_cannot_carry_and_nothing_else(text: str, clean: str) -> None:
    assert markup.clean_text(text) == clean
