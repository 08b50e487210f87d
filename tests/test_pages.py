"""HTML pages for people, and photos served with their own bytes and type."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path
from typing import Any

import jinja2
import PIL.Image
import pytest
from flask.testing import FlaskClient
from lxml import html

from feeds import content, create_app
from feeds.images import Measure, measure

from .conftest import Newsroom, get_ok, parsed, status


@pytest.fixture
def room(newsroom: Newsroom) -> Newsroom:
    newsroom.article(
        "innlent",
        "gos",
        title="Eldgos á Reykjanesskaga",
        topics=["Eldgos", "Þingvellir"],
        authors=["Anna Jónsdóttir"],
        date="16. mars 2024 kl. 20.23",
        photos={"gos.jpg": (64, 48), "kort.png": (30, 20), "hreyfing.gif": (10, 10)},
        images=[
            {"file": "gos.jpg", "caption": "Hraunið rennur.", "credit": "Ljósmynd/Jón Pétursson"},
            {"file": "kort.png", "caption": "Kort af svæðinu.", "credit": "Veðurstofa Íslands"},
            {"file": "hreyfing.gif", "caption": "Hreyfimynd.", "credit": "AFP"},
        ],
    )
    newsroom.article("erlent", "korea", title="Frétt frá Norður-Kóreu", topics=["Norður-Kórea"])
    return newsroom


def page(client: FlaskClient, url: str) -> html.HtmlElement:
    return html.fromstring(get_ok(client, url))


def test_home_lists_sections_and_topics_with_their_feeds_and_autodiscovery(room: Newsroom, client: FlaskClient) -> None:
    home = page(client, "/")
    alternates = {(link.get("type"), link.get("href")) for link in home.xpath("//head/link[@rel='alternate']")}
    assert alternates == {
        ("application/rss+xml", "http://localhost/feeds/rss.xml"),
        ("application/atom+xml", "http://localhost/feeds/atom.xml"),
        ("application/feed+json", "http://localhost/feeds/feed.json"),
    }
    sections = home.xpath("//ul[@class='sections']/li")
    assert [item.find("a").text for item in sections] == ["Erlent", "Innlent"]
    assert "http://localhost/feeds/innlent/atom.xml" in sections[1].xpath(".//a/@href")
    topics = home.xpath("//ul[@class='topics']/li/a[1]/text()")
    assert sorted(topics) == ["Eldgos", "Norður-Kórea", "Þingvellir"]
    feed_links = home.xpath("//ul[@class='topics']//a/@href")
    assert "http://localhost/feeds/topics/thingvellir/rss.xml" in feed_links
    assert "http://localhost/feeds/topics/nordur-korea/rss.xml" in feed_links


@pytest.mark.parametrize(
    ("url", "feed"),
    [("/innlent/", "/feeds/innlent/rss.xml"), ("/topics/nordur-korea/", "/feeds/topics/nordur-korea/rss.xml")],
)
def test_section_and_topic_pages_list_articles_and_announce_their_feeds(
    room: Newsroom, client: FlaskClient, url: str, feed: str
) -> None:
    listing = page(client, url)
    assert f"http://localhost{feed}" in listing.xpath("//head/link[@rel='alternate']/@href")
    assert len(listing.xpath("//ul[@class='articles']/li")) == 1


def test_article_page_shows_text_date_and_every_photo(room: Newsroom, client: FlaskClient) -> None:
    article = page(client, "/innlent/gos/").find(".//article")
    assert article.findtext("h1") == "Eldgos á Reykjanesskaga"
    assert article.xpath(".//time/text()") == ["16. mars 2024 kl. 20.23"]
    captions = [figure.findtext("figcaption/small") for figure in article.findall(".//figure")]
    assert captions == ["Ljósmynd/Jón Pétursson", "Veðurstofa Íslands", "AFP"]
    assert article.xpath(".//p[@class='meta'][last()]/a/@href") == [
        "http://localhost/topics/eldgos/",
        "http://localhost/topics/thingvellir/",
    ]


@pytest.mark.parametrize(
    ("name", "media_type"), [("gos.jpg", "image/jpeg"), ("kort.png", "image/png"), ("hreyfing.gif", "image/gif")]
)
def test_photos_are_served_with_their_bytes_and_type(
    room: Newsroom, client: FlaskClient, name: str, media_type: str
) -> None:
    with client.get(f"/innlent/gos/{name}") as response:
        assert response.status_code == 200
        assert response.mimetype == media_type
        assert response.get_data() == (room.root / "innlent/gos" / name).read_bytes()


def _rewrite_keeping_size_and_time(path: Path, data: bytes) -> None:
    """Overwrites the file in place, then sets its modification time back, as `cp -p` onto it or
    a sync tool that keeps times would."""
    before = path.stat()
    assert len(data) == before.st_size, "the test needs a photo of the same size"
    time.sleep(0.05)  # the kernel dates changes to the tick: the next write is a tick later
    with open(path, "r+b") as file:
        file.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)


def _png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (64, 48), color).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_photo_rewritten_with_its_size_and_time_kept_is_a_new_version(
    newsroom: Newsroom, client: FlaskClient
) -> None:
    """A photo measured once is not read again while its file is unchanged (`_measure_photo`);
    unchanged means the change time too, which no tool can set back."""
    image = {"file": "mynd.png", "caption": "Hraunið.", "credit": "AFP"}
    newsroom.article("innlent", "gos", title="Eldgos", images=[image])
    photo = newsroom.write("innlent/gos/mynd.png", _png((200, 80, 20)))
    with client.get("/innlent/gos/mynd.png") as response:
        first_version = response.headers["ETag"]
    replacement = _png((20, 80, 200))
    _rewrite_keeping_size_and_time(photo, replacement)
    # The photo's size and times are what the index's signature saw: only the text's edit makes the
    # bundle read again, and then the photo must be measured anew.
    newsroom.article("innlent", "gos", title="Eldgos breytt", images=[image])
    assert "Eldgos breytt" in [entry.title for entry in parsed(client, "/feeds/rss.xml").entries]
    with client.get("/innlent/gos/mynd.png") as response:
        assert response.get_data() == replacement
        assert response.headers["ETag"] != first_version
    with client.get("/innlent/gos/mynd.png", headers={"If-None-Match": first_version}) as response:
        assert response.status_code == 200


def test_an_edit_to_the_text_does_not_measure_the_photos_again(
    newsroom: Newsroom, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = {"file": "mynd.png", "caption": "Hraunið.", "credit": "AFP"}
    newsroom.article("innlent", "gos", title="Eldgos", images=[image], photos={"mynd.png": (64, 48)})
    assert status(client, "/feeds/rss.xml") == 200
    measured: list[str] = []

    def counted(data: bytes, file_name: str) -> Measure:
        measured.append(file_name)
        return measure(data, file_name)

    monkeypatch.setattr(content, "measure", counted)
    newsroom.article("innlent", "gos", title="Eldgos breytt", images=[image])
    assert [entry.title for entry in parsed(client, "/feeds/rss.xml").entries] == ["Eldgos breytt"]
    assert measured == []
    # A photo replaced by another file is measured again.
    newsroom.photo("innlent", "gos", "mynd.png", (80, 60))
    newsroom.article("innlent", "gos", title="Eldgos, ný mynd", images=[image])
    [entry] = parsed(client, "/feeds/rss.xml").entries
    assert (entry.title, measured) == ("Eldgos, ný mynd", ["mynd.png"])
    assert entry.media_content[0]["width"] == "80"


@pytest.mark.parametrize(
    "url",
    [
        "/innlent/gos/index.md",
        "/innlent/gos/ekki.jpg",
        "/innlent/engin/",
        "/enginn-flokkur/",
        "/topics/ekki-til/",
        "/innlent/gos/..%2F..%2F_index.md",
        "/innlent/GOS/",
        "/feeds/",
        "/%00/",
    ],
)
def test_anything_else_is_404(room: Newsroom, client: FlaskClient, url: str) -> None:
    assert status(client, url) == 404


def test_a_listed_photo_swapped_for_a_link_outside_is_not_served(
    room: Newsroom, client: FlaskClient, tmp_path: Path
) -> None:
    assert status(client, "/innlent/gos/gos.jpg") == 200
    outside = tmp_path / "leynd.jpg"
    outside.write_bytes(b"secret")
    target = room.root / "innlent/gos/gos.jpg"
    signature = target.stat()
    target.unlink()
    target.symlink_to(outside)
    # Same size and time, so even a stale index would still list it.
    os.utime(target, ns=(signature.st_atime_ns, signature.st_mtime_ns), follow_symlinks=False)
    assert status(client, "/innlent/gos/gos.jpg") == 404


def test_methods_other_than_get_are_refused_cleanly(room: Newsroom, client: FlaskClient) -> None:
    assert client.post("/feeds/rss.xml").status_code == 405
    assert client.head("/feeds/rss.xml").status_code == 200


@pytest.mark.parametrize(
    ("method", "url", "headers"),
    [
        ("GET", "/feeds/%ff/rss.xml", {}),
        ("GET", "/innlent/%00/", {}),
        ("GET", "/" + "a" * 5000 + "/", {}),
        ("GET", "/feeds/rss.xml?x=1&y=<script>", {}),
        ("OPTIONS", "/feeds/rss.xml", {}),
        ("PUT", "/", {}),
        ("GET", "/feeds/rss.xml", {"If-Modified-Since": "Mon, 99 Foo 2024 99:99:99 GMT"}),
        ("GET", "/feeds/rss.xml", {"If-None-Match": "," * 5000}),
        ("GET", "/feeds/rss.xml", {"Accept-Encoding": "gzip;q=" + "9" * 400}),
        ("GET", "/feeds/rss.xml", {"Accept-Encoding": "gzip;q=nan"}),
        ("GET", "/feeds/rss.xml", {"Host": "[::1]:8000"}),
        ("GET", "/innlent/gos/gos.jpg", {"Range": "bytes=foo"}),
        ("GET", "/topics/%C3%9Eingvellir/", {}),
        ("GET", "//feeds/rss.xml", {}),
    ],
)
def test_odd_requests_get_a_clear_answer_never_a_500(
    room: Newsroom, client: FlaskClient, method: str, url: str, headers: dict[str, str]
) -> None:
    with client.open(url, method=method, headers=headers) as response:
        assert response.status_code < 500


def test_article_page_announces_its_section_feeds(room: Newsroom, client: FlaskClient) -> None:
    head = page(client, "/innlent/gos/").find("head")
    assert "http://localhost/feeds/innlent/atom.xml" in head.xpath("link[@rel='alternate']/@href")
    assert head.xpath("link[@rel='canonical']/@href") == ["http://localhost/innlent/gos/"]


def test_listings_show_the_lead_photo_small_with_caption_and_credit(newsroom: Newsroom, client: FlaskClient) -> None:
    newsroom.photo("innlent", "gos", "gos.jpg", (1600, 1000))
    newsroom.article(
        "innlent",
        "gos",
        title="Eldgos",
        topics=["Eldgos"],
        images=[{"file": "gos.jpg", "caption": "Hraunið rennur.", "credit": "Ljósmynd/Jón Pétursson", "alt": "Hraun"}],
    )
    for url in ("/", "/innlent/", "/topics/eldgos/"):
        (thumbnail,) = page(client, url).xpath("//ul[@class='articles']/li/img")
        assert thumbnail.get("alt") == "Hraun"
        assert thumbnail.get("title") == "Hraunið rennur. (Ljósmynd/Jón Pétursson)"
        assert (thumbnail.get("width"), thumbnail.get("height")) == ("320", "200")
        assert thumbnail.get("src").startswith("http://localhost/innlent/gos/320w-")
        assert status(client, thumbnail.get("src").removeprefix("http://localhost")) == 200
        assert thumbnail.get("srcset").split(", ")[0].endswith(" 320w")


def test_home_shows_every_feed_url_to_copy(room: Newsroom, client: FlaskClient) -> None:
    home = page(client, "/")
    shown = set(home.xpath("//main//code/text()"))
    for scope in ("/feeds", "/feeds/innlent", "/feeds/erlent", "/feeds/topics/eldgos", "/feeds/topics/nordur-korea"):
        for file_name in ("rss.xml", "atom.xml", "feed.json"):
            assert f"http://localhost{scope}/{file_name}" in shown
    assert "http://localhost/feeds.opml" in shown


def test_compiled_templates_are_kept_and_a_cache_that_fails_is_only_slower(
    room: Newsroom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that starts loads the templates compiled by the one before; a cache folder that
    cannot be written (a full disk) or holds a damaged file changes nothing in the pages."""
    settings = {"CONTENT_DIR": room.root, "CACHE_DIR": tmp_path / "cache", "INDEXER": "inline"}
    first = create_app(settings).test_client().get("/").get_data()
    kept = sorted((tmp_path / "cache" / "templates").iterdir())
    assert kept, "the compiled templates are kept"
    compiled: list[str] = []
    real = jinja2.Environment.compile

    def compile_counted(self: jinja2.Environment, source: str, name: str | None = None, *args: Any) -> Any:
        compiled.append(str(name))
        return real(self, source, name, *args)

    monkeypatch.setattr(jinja2.Environment, "compile", compile_counted)
    assert create_app(settings).test_client().get("/").get_data() == first
    assert "home.html" not in compiled, "loaded, not compiled again"
    for path in kept:
        path.write_bytes(b"\x00" * 10)
    assert create_app(settings).test_client().get("/").get_data() == first
    assert "home.html" in compiled, "a damaged one is compiled again"
    compiled.clear()
    shutil.rmtree(tmp_path / "cache" / "templates")
    (tmp_path / "cache" / "templates").write_bytes(b"")  # no folder can be made there
    assert create_app(settings).test_client().get("/").get_data() == first
    assert "home.html" in compiled
