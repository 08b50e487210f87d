"""Static export: the files, served by real nginx with deploy/nginx/static.conf, are what the service serves."""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import feedparser
import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient

from bench import load, servers
from feeds import create_app, images
from feeds import export as export_module
from feeds.export import compressible, file_for
from feeds.manifest import Entry, Manifest, Since

from .conftest import Clock, Newsroom, parsed
from .running import need, settle, wait_for

BASE = "https://frettir.example.is"
CONF = servers.REPO / "deploy" / "nginx" / "static.conf"
#: Every absolute link in a body, whatever it is written in: HTML attributes and srcset lists, XML
#: (with escaped HTML inside), JSON strings (with escaped quotes).
LINK = re.compile(re.escape(BASE) + r"(/[^\"'<>\s,&\\]*)")


@pytest.fixture
def room(newsroom: Newsroom) -> Newsroom:
    """Three months, sections, topics with Icelandic names, photos with renditions, a draft and an embargo."""
    newsroom.article(
        "innlent",
        "eldgos-hafid",
        title="Eldgos hafið við Sundhnúksgíga",
        date="16. mars 2026 kl. 20.23",
        topics=["Reykjanesskagi", "Eldgos"],
        authors=["Anna Jónsdóttir", "Páll Ólafsson"],
        images=[
            {"file": "gos.jpg", "caption": "Hraunið rennur til vesturs.", "credit": "Ljósmynd/Jón Pétursson"},
            # A file name that is no URL as it stands: the export's file and the service's URL must meet.
            {"file": "Kort af svæðinu.png", "caption": "Kort af svæðinu.", "credit": "Veðurstofa Íslands"},
        ],
        photos={"gos.jpg": (800, 500), "Kort af svæðinu.png": (700, 700)},
        body="Eldgos hófst í kvöld.\n\n![Glóandi hraun](gos.jpg)\n\nÞað sést frá Þingvöllum.",
    )
    newsroom.article(
        "innlent",
        "thingvellir",
        title="Ný gestastofa á Þingvöllum",
        date="2026-09-02T09:00:00Z",
        topics=["Þingvellir"],
        images=[{"file": "stofa.jpg", "caption": "Gestastofan.", "credit": "AFP"}],
        photos={"stofa.jpg": (400, 300)},
    )
    newsroom.article("erlent", "kosning", title="Kosningar í Norður-Kóreu", date="2026-09-20T12:00:00Z",
                     topics=["Norður-Kórea"])  # fmt: skip
    newsroom.article("erlent", "eldflaug", title="Eldflaug skotið á loft", date="2026-10-05T07:30:00Z",
                     topics=["Norður-Kórea", "Eldgos"])  # fmt: skip
    newsroom.article("innlent", "stormur", title="Appelsínugul viðvörun", date="2026-10-20T18:00:00Z")
    newsroom.article("innlent", "drog", title="Drög", date="2026-10-21T18:00:00Z", draft=True)
    newsroom.article("erlent", "sidar", title="Birtist síðar", date="2026-12-24T18:00:00Z", topics=["Jól"])
    newsroom.section("menning", "Menning", "Ekkert birt enn")
    settle(newsroom)
    return newsroom


@pytest.fixture
def app(room: Newsroom, clock: Clock, tmp_path: Path) -> Flask:
    # Two items a feed, so that every scope has archive months to walk.
    settings = {"CONTENT_DIR": room.root, "CACHE_DIR": tmp_path / "cache", "INDEXER": "inline", "FEED_SIZE": 2}
    return create_app(settings, clock=clock)


@pytest.fixture(autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    servers.stop_all()


def export(app: Flask, outdir: Path, *options: str) -> Result:
    result = app.test_cli_runner().invoke(args=["export", str(outdir), "--base-url", BASE, *options])
    assert result.exit_code == 0, result.output
    return result


def counts(result: Result) -> dict[str, int]:
    found = re.search(r"written (\d+), kept (\d+), removed (\d+)", result.output)
    assert found, result.output
    return dict(zip(("written", "kept", "removed"), map(int, found.groups()), strict=True))


def files(outdir: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under `outdir`: inode, modification time and bytes."""
    found = {}
    for path in outdir.rglob("*"):
        if path.is_file():
            status = path.stat()
            found[str(path.relative_to(outdir))] = (status.st_ino, status.st_mtime_ns, path.read_bytes())
    return found


def start_static(outdir: Path, work: Path) -> servers.Server:
    """nginx on loopback with deploy/nginx/static.conf, as an operator installs it."""
    binary = servers.nginx_binary()
    need(binary if Path(binary).exists() else None, "nginx")
    port = servers.free_port()
    conf = CONF.read_text().replace("@OUTDIR@", str(outdir)).replace("@LISTEN@", f"{servers.HOST}:{port}")
    for folder in (outdir, *outdir.parents):  # nginx's workers may run as nobody
        if folder in (Path(tempfile.gettempdir()), Path("/")):
            break
        folder.chmod(folder.stat().st_mode | 0o755)
    server = servers.start_nginx_with("static", port, work, conf)
    server.wait_ready("/robots.txt", 30)
    return server


def live(client: FlaskClient, path: str, gzipped: bool = False) -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept-Encoding": "gzip"} if gzipped else {}
    with client.get(path, base_url=BASE, headers=headers) as response:
        return response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.get_data()


def test_every_reachable_url_is_served_by_nginx_as_the_service_serves_it(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    outdir = tmp_path / "public"
    first = counts(export(app, outdir))
    assert first["written"] > 0 and first["kept"] == first["removed"] == 0
    server = start_static(outdir, tmp_path / "nginx")

    queue = ["/", "/feeds.opml", "/robots.txt"]
    seen: set[str] = set(queue)
    while queue:
        path = queue.pop()
        static = load.probe(server.url(path))
        status, headers, body = live(client, path)
        assert (static.status, status) == (200, 200), path
        assert static.body == body, path
        assert static.headers["content-type"] == headers["content-type"], path
        assert static.headers["cache-control"] == headers["cache-control"], path
        if "charset=utf-8" not in headers["content-type"]:
            continue  # a photo, or the icon
        for link in LINK.findall(body.decode()):
            if link not in seen:
                seen.add(link)
                queue.append(link)

    exported = {name for name in files(outdir) if not name.endswith(".gz")}
    assert {file_for(path) for path in seen} <= exported
    # Archive documents of months a subscription feed holds whole are answered but not linked.
    for name in exported - {file_for(path) for path in seen}:
        assert "/archive/" in name, name
        path = "/" + name.removesuffix("index.html")
        assert load.probe(server.url(path)).body == live(client, path)[2], path
    kinds = {
        "article": "/innlent/eldgos-hafid/",
        "section": "/innlent/",
        "topic": "/topics/nordur-korea/",
        "archive page": "/innlent/archive/2026-03/",
        "archive feed": "/feeds/innlent/archive/2026-03/atom.xml",
        "photo": "/innlent/eldgos-hafid/gos.jpg",
        "photo named in Icelandic": "/innlent/eldgos-hafid/Kort%20af%20sv%C3%A6%C3%B0inu.png",
        "rendition": "/innlent/eldgos-hafid/320w-",
        "OPML": "/feeds.opml",
        "JSON Feed": "/feeds/innlent/feed.json",
        "empty section": "/feeds/menning/rss.xml",
    }
    for kind, start in kinds.items():
        assert any(path.startswith(start) for path in seen), kind
    assert not any("sidar" in path or "drog" in path or "/topics/jol/" in path for path in seen)
    assert "/feeds/archive/2026-03/rss.xml" in seen


def test_clients_that_accept_gzip_get_the_files_written_beside(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    outdir = tmp_path / "public"
    export(app, outdir)
    server = start_static(outdir, tmp_path / "nginx")
    texts = [name for name in files(outdir) if compressible(name)]
    assert "index.html" in texts and "feeds/atom.xml" in texts and "innlent/archive/2026-03/index.html" in texts
    for name in texts:
        path = "/" + name.removesuffix("index.html")
        plain = (outdir / name).read_bytes()
        packed = (outdir / f"{name}.gz").read_bytes()
        assert gzip.decompress(packed) == plain
        answer = load.probe(server.url(path), {"Accept-Encoding": "gzip"})
        assert answer.headers.get("content-encoding") == "gzip", path
        assert answer.body == packed, path
        assert answer.headers["vary"] == "Accept-Encoding"
        assert load.probe(server.url(path)).body == plain
        if name.startswith("feeds/") and not name.endswith(".opml"):
            # The same bytes as the service's own gzip copy of a feed: fixed time, no name.
            assert live(client, path, gzipped=True)[2] == packed, path
    photo = load.probe(server.url("/innlent/eldgos-hafid/gos.jpg"), {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in photo.headers
    for path in ("/feeds/", "/nothing/", "/innlent/eldgos-hafid/nothing.jpg", "/healthz", "/.manifest"):
        assert load.probe(server.url(path)).status == 404, path


def test_a_second_run_after_an_edit_rewrites_only_the_files_whose_bytes_changed(
    app: Flask, room: Newsroom, tmp_path: Path
) -> None:
    outdir = tmp_path / "public"
    export(app, outdir)
    before = files(outdir)
    unchanged = counts(export(app, outdir))
    assert unchanged["written"] == unchanged["removed"] == 0
    assert files(outdir) == before

    reading = open(outdir / "feeds" / "rss.xml", "rb")  # noqa: SIM115 - held across the run
    room.article("erlent", "eldflaug", title="Eldflaug skotið á loft í nótt", date="2026-10-05T07:30:00Z",
                 topics=["Norður-Kórea", "Eldgos"])  # fmt: skip
    edited = counts(export(app, outdir))
    after = files(outdir)
    changed = {name for name in after if name in before and after[name][2] != before[name][2]}
    rewritten = {name for name in after if name in before and after[name][:2] != before[name][:2]}
    assert changed == rewritten, "a file is rewritten if and only if its bytes changed"
    assert {"erlent/eldflaug/index.html", "feeds/rss.xml", "feeds/topics/eldgos/atom.xml"} <= changed
    assert "innlent/eldgos-hafid/index.html" not in changed
    urls = [name for name in after if not name.endswith(".gz")]
    written = [name for name in changed if not name.endswith(".gz")]
    assert edited == {"written": len(written), "kept": len(urls) - len(written), "removed": 0}
    # A reader who opened the old file reads it whole; the name now holds the new one.
    assert reading.read() == before["feeds/rss.xml"][2]
    reading.close()
    assert b"loft \xc3\xad n\xc3\xb3tt" in (outdir / "feeds" / "rss.xml").read_bytes()
    assert not [path for path in outdir.rglob(".*")], "no temporary file is left"


def test_a_period_is_looked_up_once_for_its_files_and_never_filed_under_a_newer_state(
    app: Flask, room: Newsroom, client: FlaskClient, clock: Clock
) -> None:
    """The export makes a period's four files within `describing_once`: one lookup of its articles,
    and an edit or a lifted embargo meanwhile is never rendered from what was looked up before."""
    publisher = app.extensions["feeds"]
    with app.app_context(), publisher.describing_once():
        assert titles(client, "/feeds/topics/eldgos/rss.xml") == [
            "Eldflaug skotið á loft",
            "Eldgos hafið við Sundhnúksgíga",
        ]
        looked_up: list[str] = []
        publisher.store._db()[1].set_trace_callback(looked_up.append)
        assert titles(client, "/feeds/topics/eldgos/atom.xml") == [
            "Eldflaug skotið á loft",
            "Eldgos hafið við Sundhnúksgíga",
        ]
        assert client.get("/topics/eldgos/").status_code == 200
        publisher.store._db()[1].set_trace_callback(None)
        # Each render still asks when the next embargo lifts, and reads the version and the site.
        assert looked_up
        lookups = [sql for sql in looked_up if "published" in sql and not sql.startswith("SELECT MIN(published)")]
        assert not lookups, "no lookup of the period's articles again"

        room.article("erlent", "eldflaug", title="Eldflaug skotið á loft í nótt", date="2026-10-05T07:30:00Z",
                     topics=["Norður-Kórea", "Eldgos"])  # fmt: skip
        assert titles(client, "/feeds/topics/eldgos/feed.json") == [
            "Eldflaug skotið á loft í nótt",
            "Eldgos hafið við Sundhnúksgíga",
        ]
        assert titles(client, "/feeds/erlent/rss.xml") == ["Eldflaug skotið á loft í nótt", "Kosningar í Norður-Kóreu"]

        clock.advance(days=60)  # past the embargo of "Birtist síðar"
        assert titles(client, "/feeds/erlent/atom.xml")[0] == "Birtist síðar"
    # Nothing rendered in the block is stale outside it either.
    assert titles(client, "/feeds/erlent/rss.xml")[0] == "Birtist síðar"
    assert titles(client, "/feeds/topics/eldgos/atom.xml")[0] == "Eldflaug skotið á loft í nótt"


def test_an_article_is_looked_up_once_for_its_page_and_photos_and_never_after_a_change(
    app: Flask, room: Newsroom, client: FlaskClient
) -> None:
    """The export asks for an article's page, photos and renditions in a row within
    `describing_once`: one lookup, and an edit or a removal meanwhile is never answered from it."""
    publisher = app.extensions["feeds"]
    article = "/innlent/eldgos-hafid/"

    def status(path: str) -> int:
        return live(client, path)[0]

    with app.app_context(), publisher.describing_once():
        page = client.get(article, base_url=BASE)
        assert page.status_code == 200 and "Eldgos hafið" in page.get_data(as_text=True)
        renditions = re.findall(r"/innlent/eldgos-hafid/(\d+w-\w+/gos\.jpg)", page.get_data(as_text=True))
        assert renditions
        looked_up: list[str] = []
        publisher.store._db()[1].set_trace_callback(looked_up.append)
        for path in [article, f"{article}gos.jpg", *(f"{article}{name}" for name in renditions)]:
            assert status(path) == 200, path
        publisher.store._db()[1].set_trace_callback(None)
        assert not [sql for sql in looked_up if "FROM bundle WHERE path" in sql], "no lookup of the article again"

        room.article("innlent", "eldgos-hafid", title="Eldgos hafið á ný", date="16. mars 2026 kl. 20.23",
                     images=[{"file": "gos.jpg", "caption": "Hraunið.", "credit": "AFP"}],
                     photos={"gos.jpg": (800, 500)})  # fmt: skip
        assert "Eldgos hafið á ný" in client.get(article, base_url=BASE).get_data(as_text=True)
        assert status(f"{article}Kort%20af%20sv%C3%A6%C3%B0inu.png") == 404
        shutil.rmtree(room.root / "innlent" / "eldgos-hafid")
        assert status(f"{article}gos.jpg") == 404
        assert status(article) == 404


def titles(client: FlaskClient, url: str) -> list[str]:
    """The items' titles, as a reader of the format reads them."""
    if url.endswith(".json"):
        return [item["title"] for item in client.get(url).get_json()["items"]]
    return [entry.title for entry in parsed(client, url).entries]


def test_a_deleted_article_takes_its_files_with_it(app: Flask, room: Newsroom, tmp_path: Path) -> None:
    outdir = tmp_path / "public"
    export(app, outdir)
    article = outdir / "innlent" / "eldgos-hafid"
    assert (article / "index.html.gz").exists() and (article / "gos.jpg").exists()
    assert any(article.glob("640w-*/gos.jpg"))
    assert (outdir / "feeds" / "archive" / "2026-03" / "rss.xml").exists()
    for path in sorted((room.root / "innlent" / "eldgos-hafid").iterdir()):
        path.unlink()
    (room.root / "innlent" / "eldgos-hafid").rmdir()
    removed = counts(export(app, outdir))
    assert not article.exists(), "the page, its .gz, the photos and their renditions"
    assert not (outdir / "feeds" / "archive" / "2026-03").exists(), "the month held nothing else"
    assert not (outdir / "topics" / "reykjanesskagi").exists()
    assert removed["removed"] >= 2 + 3 + 4 + 3
    assert not [path for path in outdir.rglob("*") if path.name.endswith(".gz") and not path.with_suffix("").exists()]


def test_a_photo_the_service_sends_is_the_same_file(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    outdir = tmp_path / "public"
    export(app, outdir)
    for name in ("innlent/eldgos-hafid/gos.jpg", "innlent/thingvellir/stofa.jpg"):
        assert (outdir / name).read_bytes() == live(client, "/" + name)[2]
    rendition = next((outdir / "innlent" / "eldgos-hafid").glob("320w-*/Kort af svæðinu.png"))
    status, headers, body = live(client, "/" + quote(str(rendition.relative_to(outdir))))
    assert (status, headers["content-type"], body) == (200, "image/png", rendition.read_bytes())


def block_renditions(cache: Path, photo: Path) -> Path:
    """Makes the photo's renditions impossible to make now, as a full disk would: a file stands
    where their folder in the cache directory goes (which stops root too). Returns the file."""
    digest = images.digest(photo.read_bytes())
    blocker = cache / "renditions" / digest[:2] / digest
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"in the way")
    return blocker


def test_a_rendition_that_cannot_be_made_is_left_out_of_that_run_alone(
    app: Flask, room: Newsroom, tmp_path: Path
) -> None:
    """One photo whose renditions cannot be made does not stop the export: every other file is
    written, the run names each missing rendition, and the next run (one after changes, with no
    change to the article) makes them."""
    outdir = tmp_path / "public"
    blocker = block_renditions(tmp_path / "cache", room.root / "innlent" / "eldgos-hafid" / "gos.jpg")
    result = export(app, outdir)
    missing = re.findall(r"warning: (/innlent/eldgos-hafid/(\d+w-\w+/gos.jpg)): not exported", result.output)
    assert missing, result.output
    assert f"{len(missing)} could not be made now" in result.output
    # Still blocked: the run after it (one after changes, with none) tries them again, and says so.
    again = export(app, outdir)
    assert "what changed since the last run looked at" in again.output
    assert re.findall(r"warning: (/innlent/eldgos-hafid/(\d+w-\w+/gos.jpg)): not exported", again.output) == missing
    blocker.unlink()
    complete = tree(export_fresh(app, tmp_path / "fresh"))
    left_out = {f"innlent/eldgos-hafid/{name}" for _, name in missing}
    assert set(complete) - set(tree(outdir)) == left_out
    assert tree(outdir) == {name: body for name, body in complete.items() if name not in left_out}

    again = export(app, outdir)
    assert "what changed since the last run looked at" in again.output
    assert "could not be made" not in again.output and "warning" not in again.output
    assert counts(again)["written"] == len(missing)
    assert tree(outdir) == complete
    assert counts(export(app, outdir))["written"] == 0


def test_what_a_manifest_kept_unmade_before_keys_were_kept_is_looked_at_again() -> None:
    """Manifests written before files of feeds could be unmade kept an article's path alone."""
    assert export_module._unmade_key("/innlent/eldgos-hafid/") == "article:/innlent/eldgos-hafid/"
    assert export_module._unmade_key("article:/innlent/eldgos-hafid/") == "article:/innlent/eldgos-hafid/"
    assert export_module._unmade_key("page:/feeds/innlent/atom.xml") == "page:/feeds/innlent/atom.xml"


def test_watch_makes_a_rendition_it_could_not_make_once_it_can(room: Newsroom, tmp_path: Path) -> None:
    """What a watching export could not make is tried again with no change to carry it."""
    outdir, log = tmp_path / "public", tmp_path / "export.log"
    blocker = block_renditions(tmp_path / "cache", room.root / "innlent" / "thingvellir" / "stofa.jpg")
    with watching(outdir, watch_env(room, tmp_path), log):
        assert b"thingvellir/320w-" in log.read_bytes() and b"not exported" in log.read_bytes()
        folder = outdir / "innlent" / "thingvellir"
        assert (folder / "index.html").is_file() and (folder / "stofa.jpg").is_file()
        assert not list(folder.glob("*w-*/stofa.jpg"))
        page = (folder / "index.html").read_text(encoding="utf-8")
        blocker.unlink()
        wait_for(lambda: any(folder.glob("320w-*/stofa.jpg")), "the rendition was never made", 20)
        # Every rendition the page names is there, and nothing else changed.
        named = set(re.findall(r"/innlent/thingvellir/(\d+w-\w+/stofa\.jpg)", page))
        assert named and {str(path.relative_to(folder)) for path in folder.glob("*w-*/stofa.jpg")} == named
    assert b"re-export failed" not in log.read_bytes()


def watch_env(room: Newsroom, tmp_path: Path, **settings: str) -> dict[str, str]:
    return {**os.environ, "FEEDS_CONTENT_DIR": str(room.root), "FEEDS_CACHE_DIR": str(tmp_path / "cache"),
            "FEEDS_INDEXER": "watch", **settings}  # fmt: skip


@contextlib.contextmanager
def watching(outdir: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`flask export OUTDIR --watch` while the block runs, once it watches; it must then stop
    cleanly on SIGTERM and leave no temporary file behind."""
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "export", str(outdir), "--base-url", BASE, "--watch"],
            cwd=servers.REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: b"exporting every change" in log.read_bytes(), "the export never started watching", 60)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # no export left running after a failed test
            process.wait()
            raise
    assert process.returncode == 0, log.read_text()
    assert not [path for path in outdir.rglob(".*")]


def test_watch_exports_each_change(room: Newsroom, tmp_path: Path) -> None:
    outdir = tmp_path / "public"
    with watching(outdir, watch_env(room, tmp_path, FEEDS_FEED_SIZE="2"), tmp_path / "export.log"):
        page = outdir / "innlent" / "stormur" / "index.html"
        before = files(outdir)
        room.article("innlent", "stormur", title="Rauð viðvörun", date="2026-10-20T18:00:00Z")
        wait_for(lambda: "Rauð viðvörun" in page.read_text(encoding="utf-8"), "the edit was never exported", 20)
        month = outdir / "feeds" / "innlent" / "archive" / "2026-10" / "rss.xml"
        wait_for(lambda: b"Rau\xc3\xb0" in month.read_bytes(), "the archive month was never exported", 20)
        room.article("erlent", "ny", title="Glæný frétt", date="2026-10-30T10:00:00Z")
        wait_for(lambda: (outdir / "erlent" / "ny" / "index.html.gz").exists(), "a new article was never exported", 20)
        after = files(outdir)
        rewritten = {name for name in after if name in before and after[name][:2] != before[name][:2]}
        changed = {name for name in after if name in before and after[name][2] != before[name][2]}
        assert rewritten == changed
        assert "innlent/eldgos-hafid/index.html" not in rewritten


class Systemd:
    """systemd's end of NOTIFY_SOCKET (sd_notify(3)), bound as systemd binds it: what it hears."""

    def __init__(self, address: Path) -> None:
        self.address = address
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(address))
        self.socket.settimeout(0.1)

    def heard(self, seconds: float) -> list[str]:
        """Every message of the next `seconds`."""
        said: list[str] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                said.append(self.socket.recv(256).decode())
        return said


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[Systemd]:
    listener = Systemd(tmp_path / "notify")
    yield listener
    listener.socket.close()


def test_watch_tells_systemd_it_is_ready_and_feeds_its_watchdog(
    room: Newsroom, systemd: Systemd, tmp_path: Path
) -> None:
    """As a service of Type=notify (deploy/systemd/feeds-export.service): READY=1 once it watches,
    WATCHDOG=1 from its watch loop while nothing changes, none while the process is stopped (systemd
    then kills it), STOPPING=1 on SIGTERM. The socket is bound here as systemd binds it."""
    outdir, log, heard = tmp_path / "public", tmp_path / "export.log", systemd.heard
    with watching(outdir, watch_env(room, tmp_path, NOTIFY_SOCKET=str(systemd.address)), log) as process:
        said = heard(3.5)
        # (The scanner beats while the first run reads, too: systemd ignores those.)
        assert set(said) == {"READY=1", "WATCHDOG=1"}, said
        assert said[said.index("READY=1") :].count("WATCHDOG=1") >= 3, said
        os.kill(process.pid, signal.SIGSTOP)
        heard(0.3)  # what it said before it stopped
        assert heard(3) == []
        os.kill(process.pid, signal.SIGCONT)
        assert "WATCHDOG=1" in heard(3)
        # A change is exported while it beats, and it beats on after it.
        room.article("innlent", "stormur", title="Rauð viðvörun", date="2026-10-20T18:00:00Z")
        page = outdir / "innlent" / "stormur" / "index.html"
        wait_for(lambda: "Rauð viðvörun" in page.read_text(encoding="utf-8"), "the edit was never exported", 20)
        assert "WATCHDOG=1" in heard(2)
    assert heard(0.5)[-1:] == ["STOPPING=1"]


def children(pid: int) -> set[int]:
    """The processes `pid` started that still run."""
    found: set[int] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):
            found.update(map(int, Path(f"/proc/{pid}/task/{task}/children").read_text().split()))
    return found


def many_articles(newsroom: Newsroom, count: int = 160) -> None:
    """Enough articles for a whole run to make its files in worker processes."""
    for number in range(count):
        newsroom.article(
            "innlent", f"frett-{number:03d}", title=f"Frétt {number}", date=f"2026-{1 + number % 9:02d}-10T12:00:00Z",
            images=[{"file": "mynd.jpg", "caption": "Mynd.", "credit": "AFP"}], photos={"mynd.jpg": (700, 400)},
        )  # fmt: skip
    settle(newsroom)


def test_watch_stops_feeding_the_watchdog_while_a_run_makes_no_file(
    newsroom: Newsroom, systemd: Systemd, tmp_path: Path
) -> None:
    """A run that hangs while the watch loop goes on (here a worker process of a whole run stopped
    with SIGSTOP, as one stuck on a dead disk would be) withholds the beats once it has made no file
    for FEEDS_WATCHDOG_SECONDS, so that systemd restarts the export; they come back once it moves."""
    many_articles(newsroom)
    outdir, log, heard = tmp_path / "public", tmp_path / "export.log", systemd.heard
    env = watch_env(newsroom, tmp_path, NOTIFY_SOCKET=str(systemd.address), FEEDS_WATCHDOG_SECONDS="2")
    stopped: set[int] = set()
    with watching(outdir, env, log) as process:
        try:
            assert "WATCHDOG=1" in heard(1.5)
            before = children(process.pid)
            # OUTDIR removed: the next change is exported by a whole run, in worker processes.
            shutil.rmtree(outdir)
            newsroom.article("innlent", "frett-000", title="Rauð viðvörun", date="2026-01-10T12:00:00Z",
                             images=[{"file": "mynd.jpg", "caption": "Mynd.", "credit": "AFP"}])  # fmt: skip
            # Every worker stopped as it starts (for a while after the first is seen).
            deadline, until = time.monotonic() + 20, float("inf")
            while time.monotonic() < min(deadline, until):
                for pid in children(process.pid) - before - stopped:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGSTOP)
                        stopped.add(pid)
                        until = min(until, time.monotonic() + 0.5)
            assert stopped, "the whole run started no worker process"
            wait_for(lambda: b"the export has made no file for" in log.read_bytes(),
                     "the stopped run was never taken as hung", 15)  # fmt: skip
            heard(0.2)  # a beat sent just before
            assert "WATCHDOG=1" not in heard(2), "beats while the run made nothing"
        finally:
            for pid in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        page = outdir / "innlent" / "frett-000" / "index.html"
        wait_for(lambda: page.exists() and "Rauð viðvörun" in page.read_text(encoding="utf-8"),
                 "the whole run never finished", 30)  # fmt: skip
        assert "WATCHDOG=1" in heard(2)


def test_a_killed_worker_process_costs_a_run_nothing(newsroom: Newsroom, tmp_path: Path) -> None:
    """A worker process of a one-off export killed while it makes files (as the kernel's OOM killer
    would) takes its tasks with it: they are done again in new processes, the run ends, and OUTDIR
    is then byte for byte what an undisturbed run writes, with nothing left for the next run."""
    many_articles(newsroom)
    outdir, env = tmp_path / "public", watch_env(newsroom, tmp_path)
    flask_export = [sys.executable, "-m", "flask", "--app", "app", "export"]
    command = [*flask_export, str(outdir), "--base-url", BASE, "--workers", "2"]
    process = subprocess.Popen(command, cwd=servers.REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killed: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not killed and process.poll() is None and time.monotonic() < deadline:
            # Once the first files are there, every child process is one of the run's workers.
            if outdir.exists() and any(outdir.iterdir()):
                for pid in sorted(children(process.pid))[:1]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
            time.sleep(0.005)
        assert killed, "no worker process was seen at work"
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()  # a hung run
            process.wait()
    text = output.decode()
    assert process.returncode == 0, text
    assert "an export worker process ended" in text
    run = re.search(r"written (\d+), kept (\d+), removed (\d+)", text)
    assert run and int(run[1]) > 0, text
    cache_env = {**env, "FEEDS_CACHE_DIR": str(tmp_path / "cache-fresh")}
    fresh = tmp_path / "fresh"
    subprocess.run([*flask_export, str(fresh), "--base-url", BASE], cwd=servers.REPO, env=cache_env, check=True,
                   capture_output=True)  # fmt: skip
    assert tree(outdir) == tree(fresh)
    again = subprocess.run(command, cwd=servers.REPO, env=env, check=True, capture_output=True, text=True)
    assert "written 0, kept" in again.stdout and "removed 0" in again.stdout, again.stdout


def stop_all(pid: int) -> bool:
    """Stops the process group `pid` leads; whether it and the processes it started were all seen
    stopped within half a second. A signal takes effect when each one next leaves the kernel, not
    when kill returns (syncfs can hold one for seconds), and one forked meanwhile is stopped by the
    next kill."""

    def state(one: int) -> str:
        try:
            return Path(f"/proc/{one}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return "gone"

    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        os.killpg(pid, signal.SIGSTOP)
        if all(state(one) in ("t", "T", "Z", "X", "gone") for one in [pid, *children(pid)]):
            return True
        time.sleep(0.001)
    return False


def killed_while_writing(command: list[str], env: dict[str, str], outdir: Path) -> list[Path]:
    """Runs the export and SIGKILLs it with its workers (as systemd's watchdog or a machine going
    down would) once it is caught with files half written: the temporary files it left, or none if
    the run ended before it was caught."""
    process = subprocess.Popen(command, cwd=servers.REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if stop_all(process.pid):  # a still picture of what is being written
                left = list(outdir.rglob(".*.tmp")) if outdir.exists() else []
                if left:
                    os.killpg(process.pid, signal.SIGKILL)
                    return left
            os.killpg(process.pid, signal.SIGCONT)
            time.sleep(0.002)
        return []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_an_export_killed_while_it_writes_leaves_nothing_half_written_after_the_next(
    newsroom: Newsroom, tmp_path: Path
) -> None:
    """An export killed with files half written leaves their temporary files; the next export of
    that OUTDIR removes them, and OUTDIR is then what an undisturbed run writes."""
    many_articles(newsroom)
    flask_export = [sys.executable, "-m", "flask", "--app", "app", "export"]
    for attempt in range(5):  # files are half written for moments: a run may end before it is caught
        outdir, env = tmp_path / f"public-{attempt}", watch_env(newsroom, tmp_path / f"run-{attempt}")
        command = [*flask_export, str(outdir), "--base-url", BASE]
        left = killed_while_writing(command, env, outdir)
        if left:
            break
    assert left, "the export was never caught writing a file"
    assert [path for path in left if path.exists()], "killed as it wrote"
    subprocess.run(command, cwd=servers.REPO, env=env, check=True, capture_output=True)
    assert not list(outdir.rglob(".*.tmp"))
    fresh_env = {**env, "FEEDS_CACHE_DIR": str(tmp_path / "cache-fresh")}
    fresh = tmp_path / "fresh"
    subprocess.run([*flask_export, str(fresh), "--base-url", BASE], cwd=servers.REPO, env=fresh_env, check=True,
                   capture_output=True)  # fmt: skip
    assert tree(outdir) == tree(fresh)


def test_one_export_of_an_outdir_at_a_time(room: Newsroom, tmp_path: Path) -> None:
    """A second export of the OUTDIR a watching export writes is refused with the reason (the two
    would each keep a manifest of the other's files); once the first stops, it runs."""
    outdir, log = tmp_path / "public", tmp_path / "export.log"
    env = watch_env(room, tmp_path)
    command = [sys.executable, "-m", "flask", "--app", "app", "export", str(outdir), "--base-url", BASE]
    with watching(outdir, env, log) as process:
        second = subprocess.run(command, cwd=servers.REPO, env=env, capture_output=True, text=True, check=False)
        assert second.returncode == 1
        assert f"Error: {outdir}: another export of it runs (process {process.pid})" in second.stderr
    again = subprocess.run(command, cwd=servers.REPO, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "written 0, kept" in again.stdout


def end_process(task: object) -> None:
    os._exit(1)


def test_a_run_whose_worker_processes_keep_ending_fails_and_says_so(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks lost with a worker process are done again alone, not for ever: when a process with
    nothing to make ends too, the fault is not in the files, and the run fails with the reason
    instead of calling every file unmade; the next run makes everything."""
    outdir = tmp_path / "public"
    monkeypatch.setattr(export_module, "CHUNK", 1)  # processes even for these few files
    with monkeypatch.context() as faults:
        faults.setattr(export_module, "_work", end_process)
        result = app.test_cli_runner().invoke(args=["export", str(outdir), "--base-url", BASE, "--workers", "2"])
    assert result.exit_code == 1
    assert f"{outdir}: its worker processes end even with nothing to make" in result.output
    export(app, outdir, "--workers", "2")
    assert tree(outdir) == tree(export_fresh(app, tmp_path / "fresh"))


def ends_its_process_on(*urls: str) -> Callable[..., Any]:
    """Exporter._make, except that making one of `urls` in a worker process ends the process at
    once, as a crash in a decoder would: no exception, no cleanup."""
    make, parent = export_module.Exporter._make, os.getpid()

    def fatal(exporter: export_module.Exporter, unit: export_module.Unit, *rest: Any) -> Any:
        if unit.url in urls and os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return make(exporter, unit, *rest)

    return fatal


def test_a_file_whose_making_ends_its_process_is_the_only_one_left_unmade(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One file that ends any process that makes it (a photo that crashes a decoder, a render
    that runs out of memory) is found by halving the work it was in, and left as it was, named; every
    other file is made, and the run ends well. The next run looks at it again (a feed document by
    its own key, an article's rendition by its article's) and, once it can be made, makes it."""
    outdir = tmp_path / "public"
    export(app, outdir)
    fresh = tree(export_fresh(app, tmp_path / "fresh"))
    feed = "/feeds/innlent/atom.xml"
    [rendition] = [name for name in fresh if name.startswith("innlent/eldgos-hafid/320w-") and name.endswith("gos.jpg")]
    fatal = [feed, "/" + quote(rendition)]
    shutil.rmtree(outdir)  # all of it to make, with a manifest that still knows the run before
    monkeypatch.setattr(export_module, "CHUNK", 1)  # processes even for these few files
    with monkeypatch.context() as faults:
        faults.setattr(export_module.Exporter, "_make", ends_its_process_on(*fatal))
        result = app.test_cli_runner().invoke(
            args=["export", str(outdir), "--base-url", BASE, "--workers", "2", "--whole"]
        )
    assert result.exit_code == 0, result.output
    assert "2 could not be made now" in result.output
    for url in fatal:
        assert f"{url}: making it ended its process (signal 9)" in result.output
    made = tree(outdir)
    assert sorted(set(fresh) - set(made)) == sorted([file_for(feed), f"{file_for(feed)}.gz", rendition])
    assert made == {name: body for name, body in fresh.items() if name in made}
    assert not list(outdir.rglob(".*.tmp"))
    # The next run, of only what changed since, looks at those two again and makes them.
    again = export(app, outdir, "--workers", "2")
    assert "what changed since the last run looked at" in again.output
    assert counts(again)["written"] == 2, again.output  # the feed (with its .gz) and the rendition
    assert tree(outdir) == fresh


def test_watch_exports_an_outdir_removed_meanwhile_whole(room: Newsroom, tmp_path: Path) -> None:
    """OUTDIR removed while the export watches (a deploy script, a mistaken `rm -rf`): the next
    change brings back every file, not only those it touched."""
    outdir, env, log = tmp_path / "public", watch_env(room, tmp_path), tmp_path / "export.log"
    with watching(outdir, env, log):
        shutil.rmtree(outdir)
        room.article("innlent", "stormur", title="Rauð viðvörun", date="2026-10-20T18:00:00Z")
        page = outdir / "innlent" / "stormur" / "index.html"
        wait_for(lambda: page.exists() and "Rauð viðvörun" in page.read_text(encoding="utf-8"),
                 "the edit was never exported", 20)  # fmt: skip
        # A one-off export elsewhere, of the index the watching export keeps, is the whole surface.
        fresh = tmp_path / "fresh"
        subprocess.run([sys.executable, "-m", "flask", "--app", "app", "export", str(fresh), "--base-url", BASE],
                       cwd=servers.REPO, env=env, check=True, capture_output=True, timeout=60)  # fmt: skip
        wait_for(lambda: tree(outdir) == tree(fresh), "the removed OUTDIR was not exported whole", 20)
        assert (outdir / "innlent" / "eldgos-hafid" / "index.html").exists()
        # A folder removed that the export had made: the next change in it is written all the same.
        shutil.rmtree(outdir / "innlent")
        room.article("innlent", "stormur", title="Appelsínugul viðvörun", date="2026-10-20T18:00:00Z")
        wait_for(lambda: page.exists() and "Appelsínugul viðvörun" in page.read_text(encoding="utf-8"),
                 "an edit in a removed folder was never exported", 20)  # fmt: skip
        assert b"re-export failed" not in log.read_bytes()


def test_watch_writes_a_change_that_failed_once_it_can(room: Newsroom, tmp_path: Path) -> None:
    """A change whose files cannot be written (here a folder stands where a page goes, which stops
    root too) is tried again until it is written, with no other change to carry it."""
    outdir, log = tmp_path / "public", tmp_path / "export.log"
    with watching(outdir, watch_env(room, tmp_path), log):
        page = outdir / "innlent" / "stormur" / "index.html"
        page.unlink()
        (page / "in-the-way").mkdir(parents=True)
        room.article("innlent", "stormur", title="Rauð viðvörun", date="2026-10-20T18:00:00Z")
        wait_for(lambda: b"re-export failed" in log.read_bytes(), "the blocked export did not fail", 20)
        shutil.rmtree(page)
        wait_for(lambda: page.is_file() and "Rauð viðvörun" in page.read_text(encoding="utf-8"),
                 "the failed change was never written", 20)  # fmt: skip
        site_feed = outdir / "feeds" / "rss.xml"
        wait_for(lambda: "Rauð viðvörun" in [entry.title for entry in feedparser.parse(site_feed.read_bytes()).entries],
                 "the site feed of the failed change was never written", 20)  # fmt: skip


def tree(outdir: Path) -> dict[str, bytes]:
    return {name: found[2] for name, found in files(outdir).items()}


def test_a_run_after_changes_looks_only_at_them_and_writes_what_a_whole_run_writes(
    app: Flask, room: Newsroom, clock: Clock, tmp_path: Path
) -> None:
    """After each kind of change, the run that follows looks only at what changed (the index's
    log of changed bundles, lifted embargoes, ended periods), and OUTDIR is then byte for byte what
    a whole export into an empty folder writes; a file whose bytes did not change is not rewritten."""
    outdir = tmp_path / "public"
    assert "every URL looked at" in export(app, outdir).output
    busy = [f"annad-{number}" for number in range(4)]

    def remove(*bundles: str) -> None:
        for bundle in bundles:
            shutil.rmtree(room.root / bundle)

    def move(source: str, target: str) -> None:
        (room.root / target).parent.mkdir(parents=True, exist_ok=True)
        os.rename(room.root / source, room.root / target)

    steps: list[tuple[str, Callable[[], object]]] = [
        ("nothing", lambda: None),
        (
            "an edit",
            lambda: room.article(
                "erlent",
                "eldflaug",
                title="Eldflaug skotið á loft í nótt",
                date="2026-10-05T07:30:00Z",
                topics=["Norður-Kórea", "Eldgos"],
            ),
        ),
        (
            "a new article in a month of its own, with a new topic and a photo",
            lambda: room.article(
                "innlent",
                "hvalir",
                title="Hvalir í Hvalfirði",
                date="2026-07-14T08:00:00Z",
                topics=["Hvalir"],
                images=[{"file": "hvalur.jpg", "caption": "Hnúfubakur.", "credit": "AFP/KCNA"}],
                photos={"hvalur.jpg": (500, 400)},
            ),
        ),
        (
            "an article moved to another month",
            lambda: room.article(
                "erlent",
                "eldflaug",
                title="Eldflaug skotið á loft í nótt",
                date="2026-06-05T07:30:00Z",
                topics=["Norður-Kórea", "Eldgos"],
            ),
        ),
        (
            "a month so busy that it is cut into days",
            lambda: [
                room.article("innlent", slug, date=f"2026-10-{10 + number}T12:00:00Z", topics=["Eldgos"])
                for number, slug in enumerate(busy)
            ],
        ),
        ("the busy month back to one document", lambda: remove(*(f"innlent/{slug}" for slug in busy))),
        ("a topic's only article removed", lambda: remove("innlent/thingvellir")),
        ("a photo replaced", lambda: room.photo("innlent", "eldgos-hafid", "gos.jpg", (900, 600))),
        (
            "an article made a draft",
            lambda: room.article(
                "innlent", "stormur", title="Appelsínugul viðvörun", date="2026-10-20T18:00:00Z", draft=True
            ),
        ),
        ("a bundle moved to another section", lambda: move("innlent/hvalir", "erlent/hvalir")),
        (
            "a copy that shares an article's GUID, held back",
            lambda: room.article(
                "erlent", "kosning-afrit", id="erlent/kosning", title="Kosningar (afrit)", date="2026-09-20T13:00:00Z"
            ),
        ),
        ("the first gone: the copy is published", lambda: move("erlent/kosning", "../kosning")),
        (
            "an article of the month that is running",
            lambda: room.article(
                "erlent", "nyjast", title="Nýjasta fréttin", date="2026-11-01T10:00:00Z", topics=["Hvalir"]
            ),
        ),
        ("the month ends", lambda: clock.advance(days=30)),
        ("an embargo lifts", lambda: clock.advance(days=30)),
    ]
    for number, (what, change) in enumerate(steps):
        before = files(outdir)
        change()
        result = export(app, outdir)
        assert "what changed since the last run looked at" in result.output, what
        after = files(outdir)
        fresh = tmp_path / f"fresh-{number}"
        export(app, fresh)
        assert tree(outdir) == tree(fresh), what
        changed = {name for name in after if name in before and after[name][2] != before[name][2]}
        rewritten = {name for name in after if name in before and after[name][:2] != before[name][:2]}
        assert changed == rewritten, what
        written = [name for name in set(after) - set(before) | changed if not name.endswith(".gz")]
        assert counts(result)["written"] == len(written), what
        if what == "nothing":
            assert counts(result) == {"written": 0, "kept": len([n for n in after if not n.endswith(".gz")]),
                                      "removed": 0}  # fmt: skip
    assert (outdir / "feeds" / "archive" / "2026-10-10").exists() is False
    # New settings show on every page: all is looked at again.
    room.section("erlent", "Útlönd", "Fréttir utan úr heimi")
    result = export(app, outdir)
    assert "every URL looked at" in result.output
    assert tree(outdir) == tree(export_fresh(app, tmp_path / "fresh-settings"))


def export_fresh(app: Flask, outdir: Path) -> Path:
    export(app, outdir)
    return outdir


def test_a_photo_rewritten_in_place_leaves_no_temporary_file(app: Flask, room: Newsroom, tmp_path: Path) -> None:
    """The export hard-links photos: a photo then rewritten in content/ in place is the exported
    file already, and linking it into place again must not leave the new link behind."""
    outdir = tmp_path / "public"
    export(app, outdir)
    photo = room.root / "innlent" / "eldgos-hafid" / "gos.jpg"
    if os.stat(photo).st_ino != os.stat(outdir / "innlent" / "eldgos-hafid" / "gos.jpg").st_ino:
        pytest.skip("the export could not hard-link the photo here")
    room.photo("innlent", "eldgos-hafid", "gos.jpg", (900, 600))
    assert counts(export(app, outdir))["written"] >= 1
    assert (outdir / "innlent" / "eldgos-hafid" / "gos.jpg").read_bytes() == photo.read_bytes()
    assert not [path.name for path in outdir.rglob(".*")], "no temporary file is left"


def test_a_damaged_manifest_makes_a_whole_run_and_loses_nothing(app: Flask, room: Newsroom, tmp_path: Path) -> None:
    outdir = tmp_path / "public"
    export(app, outdir)
    (manifest,) = (tmp_path / "cache").glob("export-*.sqlite3")
    manifest.write_bytes(b"not a manifest " * 100)
    room.article("innlent", "stormur", title="Rauð viðvörun", date="2026-10-20T18:00:00Z")
    result = export(app, outdir)
    assert "every URL looked at" in result.output
    assert tree(outdir) == tree(export_fresh(app, tmp_path / "fresh"))
    assert "what changed since the last run looked at" in export(app, outdir).output


@pytest.mark.parametrize("how", ["removed", "emptied"])
def test_an_outdir_removed_or_emptied_since_the_last_run_is_exported_whole(
    app: Flask, room: Newsroom, tmp_path: Path, how: str
) -> None:
    """The manifest lives in the cache directory, not in OUTDIR: `rm -rf public` and a run must not
    trust it and write only what changed, leaving every other file missing."""
    outdir = tmp_path / "public"
    export(app, outdir)
    if how == "removed":
        shutil.rmtree(outdir)
    else:
        for path in outdir.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    room.article("innlent", "stormur", title="Rauð viðvörun", date="2026-10-20T18:00:00Z")
    result = export(app, outdir)
    assert "every URL looked at" in result.output
    assert tree(outdir) == tree(export_fresh(app, tmp_path / "fresh"))
    assert "what changed since the last run looked at" in export(app, outdir).output


def test_more_changes_than_a_run_follows_make_a_whole_run(
    app: Flask, room: Newsroom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past CHANGES_LIMIT changed bundles, a run looks at everything, as cheap by then and surely whole."""
    monkeypatch.setattr(export_module, "CHANGES_LIMIT", 1)
    outdir = tmp_path / "public"
    export(app, outdir)
    room.article("innlent", "stormur", title="Rauð viðvörun", date="2026-10-20T18:00:00Z", topics=["Veður"])
    assert "what changed since the last run looked at" in export(app, outdir).output
    room.article("innlent", "stormur", title="Appelsínugul viðvörun", date="2026-10-20T18:00:00Z")
    room.article("erlent", "kosning", title="Kosningar í Norður-Kóreu", date="2026-09-21T12:00:00Z",
                 topics=["Norður-Kórea"])  # fmt: skip
    assert "every URL looked at" in export(app, outdir).output
    assert tree(outdir) == tree(export_fresh(app, tmp_path / "fresh"))
    assert not (outdir / "topics" / "vedur").exists()


def test_a_run_whose_manifest_cannot_be_saved_is_made_good_by_the_next(
    app: Flask, room: Newsroom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files of a run are written before its manifest: a run that dies then (a full disk) leaves
    the manifest of the run before, and the next run looks again at everything changed since."""
    outdir = tmp_path / "public"
    export(app, outdir)
    room.article("innlent", "stormur", title="Rauð viðvörun", date="2026-10-20T18:00:00Z", topics=["Veður"])

    def full_disk(self: Manifest) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(Manifest, "save", full_disk)
        failed = app.test_cli_runner().invoke(args=["export", str(outdir), "--base-url", BASE])
    assert failed.exit_code != 0 and "No space left on device" in failed.output
    room.article("erlent", "kosning", title="Kosningar í Norður-Kóreu", date="2026-09-21T12:00:00Z",
                 topics=["Norður-Kórea"])  # fmt: skip
    result = export(app, outdir)
    assert "what changed since the last run looked at" in result.output
    assert tree(outdir) == tree(export_fresh(app, tmp_path / "fresh"))
    assert (outdir / "topics" / "vedur" / "index.html").exists()


def test_a_manifest_is_saved_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "export.sqlite3"
    manifest = Manifest(path, BASE)
    for number in range(50):
        manifest.put(f"innlent/frett-{number}/index.html", Entry("in", f"d{number}", 10, 1, number, True))
    manifest.place({"/innlent/frett-0/": ("2026-10", "innlent", ("eldgos",))})
    manifest.since = Since(1, 5, 1.0, "c")
    manifest.save()
    manifest.close()

    manifest = Manifest(path, BASE)
    for number in range(10):
        manifest.pop(f"innlent/frett-{number}/index.html")
    manifest.put("innlent/boom/index.html", Entry("in", "boom", 10, 1, 99, True))
    manifest.place({"/innlent/frett-0/": None})
    # A row the database refuses, after the removals: the whole save must be undone.
    with sqlite3.connect(path) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON file WHEN NEW.name = 'innlent/boom/index.html'"
                   " BEGIN SELECT RAISE(ABORT, 'refused'); END")  # fmt: skip
    with pytest.raises(sqlite3.DatabaseError):
        manifest.since = Since(1, 6, 2.0, "c")
        manifest.save()
    manifest.close()

    again = Manifest(path, BASE)
    assert again.since == Since(1, 5, 1.0, "c")
    assert again.count == 50
    assert len(again.everything()) == 50
    assert again.positions(["/innlent/frett-0/"]) == {"/innlent/frett-0/": ("2026-10", "innlent", ("eldgos",))}


def test_a_saved_manifest_forgets_what_it_read_and_answers_from_its_file(tmp_path: Path) -> None:
    """A watching export lives for weeks: what one run read (every entry, in a whole run) is not
    kept after it is saved, and later runs read what they ask for."""
    manifest = Manifest(tmp_path / "export.sqlite3", BASE)
    names = [f"innlent/frett-{number}/index.html" for number in range(50)]
    for number, name in enumerate(names):
        manifest.put(name, Entry("in", f"d{number}", 10, 1, number, True))
    manifest.place({"/innlent/frett-0/": ("2026-10", "innlent", ("eldgos",))})
    manifest.save()
    assert manifest.held == 0
    assert sorted(manifest.everything()) == sorted(names)
    assert manifest.held == 50
    manifest.pop(names[3])
    manifest.put("erlent/kosning/index.html", Entry("in", "k", 12, 2, 77, False))
    manifest.save()
    assert manifest.held == 0
    assert manifest.get(names[3]) is None
    assert manifest.get("erlent/kosning/index.html") == Entry("in", "k", 12, 2, 77, False)
    assert manifest.under(["innlent/"]) == sorted(names[:3] + names[4:])
    assert manifest.positions(["/innlent/frett-0/"]) == {"/innlent/frett-0/": ("2026-10", "innlent", ("eldgos",))}
    assert manifest.count == 50
