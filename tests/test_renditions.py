"""Photo renditions: smaller copies made once, kept outside content/, upright and without metadata;
and photos that cannot be shown are left out of a published article, named by check."""

from __future__ import annotations

import io
import json
import shutil
import zlib
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import html
from PIL import Image

from feeds import web
from feeds.errors import NotFound
from feeds.model import RENDITION_WIDTHS

from .conftest import NS, Newsroom, attribute, find, get_ok, parsed, status, xml, xpath_strings

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def noisy_jpeg(size: tuple[int, int], orientation: int | None = None) -> bytes:
    """A photo-like JPEG (noise compresses as badly as a real photo), with EXIF that a rendition must drop."""
    image = Image.effect_noise(size, 64).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x9286] = "Leyndarmál"  # UserComment
    exif.get_ifd(GPS_IFD)[2] = (64.0, 8.0, 0.0)  # GPSLatitude
    if orientation is not None:
        exif[ORIENTATION] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, exif=exif, comment=b"Taken at a secret place")
    return buffer.getvalue()


@pytest.fixture
def photographed(newsroom: Newsroom) -> Newsroom:
    newsroom.write("innlent/gos/gos.jpg", noisy_jpeg((1600, 1000)))
    newsroom.write("innlent/gos/standandi.jpg", noisy_jpeg((800, 600), orientation=6))  # shown 600 × 800
    newsroom.photo("innlent", "gos", "litil.png", (200, 100))
    newsroom.article(
        "innlent",
        "gos",
        date="2026-10-01T12:00:00Z",
        body="Gos hófst í nótt.\n\n![](standandi.jpg)\n\nMeira síðar.",
        images=[
            {"file": "gos.jpg", "caption": "Hraunið rennur.", "credit": "Ljósmynd/Jón Pétursson"},
            {"file": "standandi.jpg", "caption": "Upprétt mynd.", "credit": "AFP"},
            {"file": "litil.png", "caption": "Lítil mynd.", "credit": "RÚV"},
        ],
    )
    return newsroom


def srcset(client: FlaskClient, page: str = "/innlent/gos/") -> list[list[tuple[str, int]]]:
    document = html.fromstring(get_ok(client, page))
    return [
        [(url, int(width.rstrip("w"))) for url, width in (item.split() for item in value.split(","))]
        for value in xpath_strings(document, "//article//img/@srcset")
    ]


def test_pages_offer_renditions_narrower_than_the_original(photographed: Newsroom, client: FlaskClient) -> None:
    lead, upright = srcset(client)
    assert [width for _, width in lead] == [320, 640, 1280, 1600]
    assert [width for _, width in upright] == [320, 600]
    assert lead[-1][0] == "http://localhost/innlent/gos/gos.jpg"
    document = html.fromstring(get_ok(client, "/innlent/gos/"))
    assert document.xpath("//article//img/@sizes") == ["(min-width: 46rem) 44rem, 100vw"] * 2
    # A photo narrower than every rendition is offered as it is.
    assert document.xpath("//article//img[contains(@src, 'litil.png')]/@srcset") == []


def test_a_rendition_is_smaller_upright_and_without_metadata(
    photographed: Newsroom, client: FlaskClient, tmp_path: Path
) -> None:
    lead, upright = srcset(client)
    original_size = (photographed.root / "innlent/gos/gos.jpg").stat().st_size
    for url, width in lead[:-1]:
        with client.get(url.removeprefix("http://localhost")) as response:
            assert response.status_code == 200 and response.mimetype == "image/jpeg"
            data = response.get_data()
        assert len(data) < original_size
        with Image.open(io.BytesIO(data)) as image:
            assert image.size == (width, round(1000 * width / 1600))
            assert dict(image.getexif()) == {} and "comment" not in image.info and "exif" not in image.info
    # Turned upright by its EXIF orientation: 800 × 600 stored, 600 × 800 shown.
    with Image.open(io.BytesIO(get_ok(client, upright[0][0].removeprefix("http://localhost")))) as image:
        assert image.size == (320, 427)
    # Kept in the cache directory, never in content/.
    assert list((tmp_path / "cache" / "renditions").rglob("*.jpg"))
    assert sorted(path.name for path in (photographed.root / "innlent/gos").iterdir()) == [
        "gos.jpg",
        "index.md",
        "litil.png",
        "standandi.jpg",
    ]


def test_a_rendition_is_made_once_and_cached_long_with_its_own_etag(
    photographed: Newsroom, client: FlaskClient, tmp_path: Path
) -> None:
    url = srcset(client)[0][0][0].removeprefix("http://localhost")
    with client.get(url) as first:
        made = next((tmp_path / "cache" / "renditions").rglob("320.jpg"))
        stamp = made.stat().st_mtime_ns
        with client.get(url) as second:
            assert made.stat().st_mtime_ns == stamp and first.get_data() == second.get_data()
        with client.get("/innlent/gos/gos.jpg") as original:
            assert first.headers["ETag"] != original.headers["ETag"]
        assert first.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        with client.get(url, headers={"If-None-Match": first.headers["ETag"]}) as revalidated:
            assert revalidated.status_code == 304


def test_a_new_version_of_a_photo_has_new_rendition_urls(photographed: Newsroom, client: FlaskClient) -> None:
    old = srcset(client)[0][0][0].removeprefix("http://localhost")
    photographed.write("innlent/gos/gos.jpg", noisy_jpeg((1600, 1000)))
    new = srcset(client)[0][0][0].removeprefix("http://localhost")
    assert new != old
    assert status(client, new) == 200
    assert status(client, old) == 404


@pytest.mark.parametrize(
    "path",
    [
        "/innlent/gos/2000w-{v}/gos.jpg",  # wider than the original
        "/innlent/gos/500w-{v}/gos.jpg",  # not one of the widths
        "/innlent/gos/320w-{v}/litil.png",  # narrower than every rendition
        "/innlent/gos/320w-000000000000/gos.jpg",  # another version
        "/innlent/gos/320w-{v}/index.md",
        "/innlent/gos/320/gos.jpg",
    ],
)
def test_renditions_that_do_not_exist_are_not_found(photographed: Newsroom, client: FlaskClient, path: str) -> None:
    version = srcset(client)[0][0][0].split("/")[-2].split("-")[1]
    assert status(client, path.format(v=version)) == 404


@pytest.mark.parametrize("url", ["/feeds/rss.xml", "/feeds/atom.xml"])
def test_media_thumbnail_is_the_smallest_rendition(photographed: Newsroom, client: FlaskClient, url: str) -> None:
    contents = xml(client, url).findall(".//media:content", NS)
    lead = contents[0]
    assert lead.get("url") == "http://localhost/innlent/gos/gos.jpg"
    assert lead.get("fileSize") == str((photographed.root / "innlent/gos/gos.jpg").stat().st_size)
    thumbnail = find(lead, "media:thumbnail")
    assert (thumbnail.get("width"), thumbnail.get("height")) == ("320", "200")
    with Image.open(io.BytesIO(get_ok(client, attribute(thumbnail, "url").removeprefix("http://localhost")))) as image:
        assert image.size == (320, 200)
    assert parsed(client, url).entries[0].enclosures[0].href == "http://localhost/innlent/gos/gos.jpg"


def test_json_feed_names_each_photos_thumbnail(photographed: Newsroom, client: FlaskClient) -> None:
    item = json.loads(get_ok(client, "/feeds/feed.json"))["items"][0]
    thumbnails = [image["thumbnail"] for image in item["_media"]["images"]]
    sizes = [(thumbnail["width"], thumbnail["height"]) for thumbnail in thumbnails]
    assert sizes == [(320, 200), (320, 427), (200, 100)]


def png_bomb(width: int, height: int) -> bytes:
    """A PNG of a few kilobytes that would decode to width × height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    rows = zlib.compress(b"\x00" * (width + 1) * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def corrupt_jpeg() -> bytes:
    data = bytearray(noisy_jpeg((400, 300)))
    return bytes(data[: len(data) // 2])  # a valid header, then the data stops


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (png_bomb(30000, 30000), "refused: 30000 × 30000 pixels is more than the 60 million a photo may have"),
        (corrupt_jpeg(), "refused: the photo's data is corrupt"),
    ],
    ids=["decompression-bomb", "corrupt"],
)
def test_a_photo_that_cannot_be_shown_is_left_out_and_the_article_published(
    newsroom: Newsroom, app: Flask, client: FlaskClient, data: bytes, reason: str
) -> None:
    newsroom.write("innlent/gos/vond.jpg" if data[:2] == b"\xff\xd8" else "innlent/gos/vond.png", data)
    name = "vond.jpg" if data[:2] == b"\xff\xd8" else "vond.png"
    newsroom.photo("innlent", "gos", "god.jpg", (400, 300))
    newsroom.article(
        "innlent",
        "gos",
        title="Gos",
        body=f"Fyrsta málsgrein.\n\n![]({name})\n\nÖnnur málsgrein.",
        images=[
            {"file": name, "caption": "Vond mynd.", "credit": "AFP"},
            {"file": "god.jpg", "caption": "Góð mynd.", "credit": "RÚV"},
        ],
    )
    (entry,) = parsed(client, "/feeds/rss.xml").entries
    assert entry.title == "Gos"
    assert [enclosure.href.rsplit("/", 1)[1] for enclosure in entry.enclosures] == ["god.jpg"]
    assert name not in entry.content[0].value
    assert status(client, f"/innlent/gos/{name}") == 404
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"innlent/gos/{name}: {reason}")
    health = client.get("/healthz").get_json()
    assert health["status"] == "degraded" and health["content_errors"][0]["path"] == f"innlent/gos/{name}"


def test_fixing_a_refused_photo_brings_it_back(newsroom: Newsroom, app: Flask, client: FlaskClient) -> None:
    newsroom.write("innlent/gos/vond.jpg", corrupt_jpeg())
    newsroom.article("innlent", "gos", images=[{"file": "vond.jpg", "caption": "Mynd.", "credit": "AFP"}])
    assert parsed(client, "/feeds/rss.xml").entries[0].enclosures == []
    newsroom.write("innlent/gos/vond.jpg", noisy_jpeg((400, 300)))
    assert len(parsed(client, "/feeds/rss.xml").entries[0].enclosures) == 1
    assert app.test_cli_runner().invoke(args=["check"]).exit_code == 0


def test_rendition_widths_are_few_and_ascending() -> None:
    assert list(RENDITION_WIDTHS) == sorted(RENDITION_WIDTHS) and len(RENDITION_WIDTHS) <= 4


def test_a_photo_named_in_icelandic_with_spaces_has_urls_that_every_client_can_fetch(
    newsroom: Newsroom, client: FlaskClient
) -> None:
    """A file name is not a URL: "Þingvellir í sól.jpg" is percent-encoded wherever it is linked (a
    space would end a URL in srcset, and an enclosure's url must be a URI), and each link fetches it."""
    original = noisy_jpeg((800, 500))
    newsroom.write("innlent/thing/Þingvellir í sól.jpg", original)
    newsroom.article(
        "innlent",
        "thing",
        body="Fyrsta málsgrein.\n\n![Sól](<Þingvellir í sól.jpg>)\n\nÖnnur málsgrein.",
        images=[{"file": "Þingvellir í sól.jpg", "caption": "Sól á Þingvöllum.", "credit": "Ljósmynd/Jón Pétursson"}],
    )
    encoded = "/innlent/thing/%C3%9Eingvellir%20%C3%AD%20s%C3%B3l.jpg"
    rss, atom = xml(client, "/feeds/rss.xml"), xml(client, "/feeds/atom.xml")
    attachments = json.loads(get_ok(client, "/feeds/feed.json"))["items"][0]["attachments"]
    photo_urls = [
        *xpath_strings(rss, "//item/enclosure/@url | //item/media:content/@url"),
        *xpath_strings(atom, "//atom:entry/atom:link[@rel='enclosure']/@href"),
        *(attachment["url"] for attachment in attachments),
    ]
    assert photo_urls == [f"http://localhost{encoded}"] * 4
    [(figure, _)] = [candidate for candidate in srcset(client, "/innlent/thing/")[0] if candidate[1] == 800]
    assert figure == f"http://localhost{encoded}"
    offered = [url for candidates in srcset(client, "/innlent/thing/") for url, _ in candidates]
    offered += xpath_strings(html.fromstring(get_ok(client, "/innlent/thing/")), "//article//img/@src")
    assert len(offered) == 4 and all(url.isascii() and " " not in url for url in offered), offered
    for url in offered:
        assert status(client, url.removeprefix("http://localhost")) == 200, url
    assert get_ok(client, encoded) == original


# -- renditions of photos no article has any more ---------------------------------------------------


def rendition_folder(client: FlaskClient, tmp_path: Path, page: str = "/innlent/gos/", photo: int = 0) -> Path:
    """Asks for the narrowest rendition of a photo on the page (the lead's by default) and returns
    the folder it was made in."""
    url = srcset(client, page)[photo][0][0].removeprefix("http://localhost")
    assert status(client, url) == 200
    width, _, version = url.split("/")[-2].partition("w-")
    (made,) = (tmp_path / "cache" / "renditions").glob(f"{version[:2]}/{version}*/{width}.*")
    return made.parent


def made_folders(tmp_path: Path) -> set[Path]:
    return set((tmp_path / "cache" / "renditions").glob("*/*"))


def one_photo(newsroom: Newsroom, slug: str, photo: bytes, **meta: Any) -> None:
    newsroom.write(f"innlent/{slug}/mynd.jpg", photo)
    images = [{"file": "mynd.jpg", "caption": "Hraunið rennur.", "credit": "Ljósmynd/Jón Pétursson"}]
    newsroom.article("innlent", slug, images=images, **meta)


def test_the_renditions_of_a_replaced_photo_are_removed_and_the_others_kept(
    photographed: Newsroom, client: FlaskClient, tmp_path: Path
) -> None:
    old = rendition_folder(client, tmp_path)
    upright = rendition_folder(client, tmp_path, photo=1)
    assert made_folders(tmp_path) == {old, upright}
    photographed.write("innlent/gos/gos.jpg", noisy_jpeg((1600, 1000)))
    new = rendition_folder(client, tmp_path)
    assert new != old
    assert made_folders(tmp_path) == {new, upright}


@pytest.mark.parametrize("how", ["removed", "draft"])
def test_a_photo_two_articles_share_keeps_its_renditions_until_neither_has_it(
    newsroom: Newsroom, client: FlaskClient, tmp_path: Path, how: str
) -> None:
    photo = noisy_jpeg((800, 500))  # the same bytes in both: one digest, one set of renditions
    one_photo(newsroom, "fyrri", photo, title="Fyrri frétt")
    one_photo(newsroom, "seinni", photo, title="Seinni frétt")
    folder = rendition_folder(client, tmp_path, "/innlent/fyrri/")
    made = {path: path.stat().st_mtime_ns for path in folder.iterdir()}
    shutil.rmtree(newsroom.root / "innlent" / "fyrri")
    assert status(client, "/innlent/fyrri/") == 404
    # The other article still has it: its renditions are the same files, not made again.
    assert rendition_folder(client, tmp_path, "/innlent/seinni/") == folder
    assert {path: path.stat().st_mtime_ns for path in folder.iterdir()} == made
    if how == "removed":
        shutil.rmtree(newsroom.root / "innlent" / "seinni")
    else:
        newsroom.article("innlent", "seinni", title="Seinni frétt", draft=True)
    assert status(client, "/feeds/rss.xml") == 200  # the change is read
    assert not folder.exists()
    assert made_folders(tmp_path) == set()


def test_an_article_held_back_keeps_the_renditions_of_its_photos(
    newsroom: Newsroom, client: FlaskClient, tmp_path: Path
) -> None:
    """Published first, then held back by an article dated earlier that shares its GUID: its
    photos' renditions are kept for when it is published again."""
    one_photo(newsroom, "gos-afrit", noisy_jpeg((800, 500)), id="2026-gos", date="2026-10-01T18:00:00Z")
    folder = rendition_folder(client, tmp_path, "/innlent/gos-afrit/")
    one_photo(newsroom, "gos", noisy_jpeg((800, 500)), id="2026-gos", date="2026-10-01T12:00:00Z")
    assert status(client, "/innlent/gos-afrit/") == 404
    assert folder.exists()
    shutil.rmtree(newsroom.root / "innlent" / "gos")
    assert status(client, "/innlent/gos-afrit/") == 200
    assert rendition_folder(client, tmp_path, "/innlent/gos-afrit/") == folder


def test_a_rebuilt_index_removes_the_renditions_no_article_has_and_keeps_the_rest(
    photographed: Newsroom, app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    """A new generation does not know what the old one dropped: every photo's renditions are looked at."""
    kept = rendition_folder(client, tmp_path)
    stray = tmp_path / "cache" / "renditions" / "ab" / ("ab" + "0" * 30)
    stray.mkdir(parents=True)
    (stray / "320.jpg").write_bytes(b"a rendition of a photo deleted while no indexer ran")
    other = tmp_path / "cache" / "renditions" / "ab" / "not-a-photo"
    other.mkdir()
    indexer = app.extensions["feeds"].indexer(settle_seconds=0)
    indexer.acquire(wait=True)
    try:
        indexer.open()
        indexer.rebuild("a test asks for one")
    finally:
        indexer.release()
    assert kept.exists() and other.exists()
    assert not stray.exists()


def test_a_photo_file_gone_since_it_was_looked_up_is_not_found(
    photographed: Newsroom, app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    """The indexer removes a rendition, or the newsroom a photo, between the lookup and the sending:
    a 404, not a 500."""
    assert status(client, "/innlent/gos/gos.jpg") == 200
    with app.test_request_context("/innlent/gos/gos.jpg"):
        article, image, _ = app.extensions["feeds"].photo("innlent", "gos", "gos.jpg")
        with pytest.raises(NotFound):
            web._photo_file(tmp_path / "gone.jpg", article, image, image.digest, "no-cache")
