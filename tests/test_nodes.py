"""Several nodes, each with its own index, answer every URL alike: bytes, ETag, Last-Modified, every header.

Each node is the service as deployed (`flask --app app serve`: granian and the watch indexer) with
its own FEEDS_CACHE_DIR. A cache or a load balancer in front may ask any node, and revalidate
with another: nothing in an answer may come from when or how a node built its index.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench import load, servers

from .conftest import Newsroom
from .running import need, settle, start_origin, wait_for

BASE_URL = "https://frettir.example.is"
#: Two items a feed, so that every scope has an archive to walk.
SETTINGS = {"BASE_URL": BASE_URL, "FEED_SIZE": "2"}
#: Where the crawl begins: the front page, the OPML list and what a browser asks for unasked.
ROOTS = ("/", "/feeds.opml", "/favicon.ico", "/robots.txt")
#: Differs per node by design: each says how its own index and indexer are doing.
PER_NODE = frozenset({"/healthz"})
#: Headers about the answer, not the document: when it was sent, and the request's own id.
PER_ANSWER = frozenset({"date", "x-request-id"})
_URL = re.compile(re.escape(BASE_URL) + r"(/[^\s\\\"'<>)&]*)")
PUBLIC_ARTICLES = 7
#: How README's Deployment section has each node's content pushed to it.
RSYNC = ("-a", "--delete-after", "--delay-updates")
NEVER_SHOWN = (
    "/innlent/framtid/",
    "/innlent/drog/",
    "/innlent/framtid/framtid.jpg",
    "/feeds/topics/geimferdir/rss.xml",
)


@dataclass
class Node:
    server: servers.Server

    def get(self, path: str, headers: dict[str, str] | None = None) -> load.Probe:
        return load.probe(self.server.url(path), headers)

    def health(self) -> dict[str, Any]:
        probe = self.get("/healthz")
        body: dict[str, Any] = json.loads(probe.body)
        return body


@pytest.fixture(autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    servers.stop_all()


def start_node(content: Path, work: Path) -> Node:
    return Node(start_origin(Newsroom(content), work, servers.free_port(), **SETTINGS))


def write_site(room: Newsroom) -> None:
    """Sections, one of them empty, and no articles yet."""
    room.section("menning", "Menning", "Listir, leikhús og tónlist")  # never holds an article
    room.section("ithrottir", "Íþróttir", "Úrslit og fréttir af íþróttum")


#: Articles in three months, with photos, topics and Icelandic text; the last two are never public.
ARTICLES: tuple[dict[str, Any], ...] = (
    {
        "section": "innlent", "slug": "eldgos", "title": "Eldgos hafið við Sundhnúksgíga",
        "date": "16. mars 2024 kl. 20.23", "updated": "2024-03-17T08:00:00Z",
        "authors": ["Anna Jónsdóttir", "Páll Ólafsson"], "topics": ["Reykjanesskagi", "Eldgos", "Ísland"],
        "photos": {"gos.jpg": (800, 600), "hraun.png": (400, 300)},
        "images": [
            {"file": "gos.jpg", "caption": "Hraunið rennur til vesturs.", "credit": "Ljósmynd/Jón Pétursson"},
            {"file": "hraun.png", "caption": "Glóandi hraun að nóttu.", "credit": "AFP", "alt": "Hraun"},
        ],
        "body": "Eldgos hófst á Reykjanesskaga í kvöld.\n\n![Hraun](hraun.png)\n\n## Rýming\n\nGrindavík var rýmd.",
    },
    # The same topic spelt otherwise, published in the same second: which name a topic page shows
    # must not depend on the order the rows went in.
    {
        "section": "erlent", "slug": "gos-sed-ad-utan", "title": "Gosið séð utan úr heimi",
        "date": "2024-03-16T20:23:00Z", "topics": ["ELDGOS"], "authors": ["Guðrún Þórðardóttir"],
    },
    {
        "section": "erlent", "slug": "nordur-korea", "title": "Eldflaugaskot í Norður-Kóreu",
        "date": "10. febrúar 2024", "topics": ["Norður-Kórea"], "photos": {"skot.jpg": (1400, 900)},
        "images": [{"file": "skot.jpg", "caption": "Eldflaug á lofti.", "credit": "AFP/KCNA"}],
    },
    {
        "section": "innlent", "slug": "thingvellir", "title": "Þjóðgarðurinn á Þingvöllum fær nýtt þjónustuhús",
        "date": "2024-04-02T09:00:00Z", "topics": ["Þingvellir", "Ísland"], "photos": {"hus.webp": (640, 480)},
        "images": [{"file": "hus.webp", "caption": "Nýja húsið.", "credit": "Ljósmynd/Ása Björk"}],
    },
    {
        "section": "innlent", "slug": "vedur", "title": "Stormviðvörun á Suðurlandi", "date": "2024-04-03T07:15:00Z",
        "topics": ["Ísland"],
    },
    {
        "section": "ithrottir", "slug": "landsleikur", "title": "Ísland vann landsleikinn",
        "date": "2024-02-20T21:00:00Z", "topics": ["Fótbolti", "Ísland"], "photos": {"mark.gif": (300, 200)},
        "images": [{"file": "mark.gif", "caption": "Markið.", "credit": "Ljósmynd/KSÍ"}],
    },
    {"section": "erlent", "slug": "kosning", "title": "Kosið í Danmörku", "date": "2024-04-03T07:15:00Z"},
    {
        "section": "innlent", "slug": "framtid", "title": "Frétt framtíðarinnar", "date": "2099-01-01T00:00:00Z",
        "topics": ["Geimferðir"], "photos": {"framtid.jpg": (800, 600)},
        "images": [{"file": "framtid.jpg", "caption": "Síðar.", "credit": "AFP"}],
    },
    {"section": "innlent", "slug": "drog", "title": "Drög að frétt", "date": "2024-04-01T10:00:00Z", "draft": True},
)  # fmt: skip


def write_articles(room: Newsroom, pause: float = 0.0) -> None:
    """Every article of ARTICLES, with `pause` seconds between them."""
    for article in ARTICLES:
        room.article(**article)
        time.sleep(pause)


def crawl(node: Node) -> list[str]:
    """Every path reachable from the roots through links in pages, feeds, archives and the OPML list."""
    seen: list[str] = []
    waiting = list(ROOTS)
    while waiting:
        path = waiting.pop()
        if path in seen or path in PER_NODE:
            continue
        seen.append(path)
        probe = node.get(path)
        assert probe.status == 200, (path, probe.status, probe.body[:300])
        if probe.headers["content-type"].startswith(("text/", "application/")):
            waiting.extend(_URL.findall(probe.body.decode()))
    return sorted(seen)


def answers(node: Node, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    probe = node.get(path, headers)
    return probe.status, {name: value for name, value in probe.headers.items() if name not in PER_ANSWER}, probe.body


def assert_alike(first: Node, second: Node) -> list[str]:
    """Both nodes answer every URL of the site with the same status, headers and bytes, plain and
    gzipped, and each confirms the other's validators with a 304. Returns the paths crawled."""
    paths = crawl(first)
    assert crawl(second) == paths
    differences = []
    for path in paths:
        for headers in ({}, {"Accept-Encoding": "gzip"}):
            status, found, body = answers(first, path, headers)
            status_there, found_there, body_there = answers(second, path, headers)
            if (status_there, body_there) != (status, body):
                differences.append(f"{path} {headers}: {status} and {status_there}, or the bytes differ")
            differences += [
                f"{path} {headers}: {name}: {found.get(name)!r} but {found_there.get(name)!r}"
                for name in sorted(found.keys() | found_there.keys())
                if found.get(name) != found_there.get(name)
            ]
            for validator, condition in (("etag", "If-None-Match"), ("last-modified", "If-Modified-Since")):
                if validator in found and second.get(path, {**headers, condition: found[validator]}).status != 304:
                    differences.append(f"{path} {headers}: no 304 for the other's {condition}")
    assert not differences, "\n".join(differences)
    for path in NEVER_SHOWN:
        assert (first.get(path).status, second.get(path).status) == (404, 404), path
    return paths


def shows(node: Node, path: str, text: str) -> bool:
    probe = node.get(path)
    return probe.status == 200 and text.encode() in probe.body


def caught_up(nodes: tuple[Node, ...], articles: int = PUBLIC_ARTICLES) -> Callable[[], bool]:
    """Whether every node is ready and publishes that many articles."""

    def check() -> bool:
        return all(health["ready"] and health["articles"] == articles for health in (n.health() for n in nodes))

    return check


def covers_everything(paths: list[str]) -> None:
    """What the crawl must have reached for the comparison to mean something."""
    expected = [
        "/feeds/menning/rss.xml", "/feeds/menning/atom.xml", "/feeds/menning/feed.json", "/menning/",
        "/feeds/topics/nordur-korea/feed.json", "/topics/thingvellir/", "/feeds/topics/eldgos/atom.xml",
        "/feeds/archive/2024-02/rss.xml", "/innlent/archive/2024-03/", "/feeds/topics/island/archive/2024-03/feed.json",
        "/topics/island/archive/2024-02/", "/feeds/erlent/archive/2024-02/atom.xml",
        "/innlent/eldgos/", "/innlent/eldgos/gos.jpg", "/innlent/eldgos/hraun.png", "/ithrottir/landsleikur/mark.gif",
        "/innlent/thingvellir/hus.webp",
    ]  # fmt: skip
    assert [path for path in expected if path not in paths] == []
    renditions = [path for path in paths if re.search(r"/\d+w-[0-9a-f]{12}/", path)]
    assert {path.rsplit("/", 1)[1] for path in renditions} == {"gos.jpg", "hraun.png", "skot.jpg", "hus.webp"}


def test_nodes_built_in_another_order_at_other_times_answer_alike(newsroom: Newsroom, tmp_path: Path) -> None:
    """One node indexes the articles as they arrive one by one; the other starts later and reads them
    all at once. Then an edit (a new title, a photo replaced) and a deletion that empties a section."""
    write_site(newsroom)
    settle(newsroom)
    early = start_node(newsroom.root, tmp_path / "early")
    write_articles(newsroom, pause=0.3)
    wait_for(caught_up((early,)), "the early node never indexed every article", 30)
    time.sleep(1.1)  # a later second: anything taken from the time of indexing differs
    late = start_node(newsroom.root, tmp_path / "late")
    nodes = (early, late)
    wait_for(caught_up(nodes), "the late node never indexed every article", 30)
    covers_everything(assert_alike(early, late))

    newsroom.article(
        "erlent", "nordur-korea", title="Eldflaugaskot í Norður-Kóreu, leiðrétt", date="10. febrúar 2024",
        updated="2024-02-11T10:00:00Z", topics=["Norður-Kórea"], photos={"skot.jpg": (1200, 800)},
        images=[{"file": "skot.jpg", "caption": "Eldflaug á lofti.", "credit": "AFP/KCNA"}],
    )  # fmt: skip
    wait_for(lambda: all(shows(node, "/erlent/nordur-korea/", "leiðrétt") for node in nodes), "the edit never showed")
    month = "/feeds/erlent/archive/2024-02/rss.xml"
    wait_for(lambda: all(b'width="1200"' in node.get(month).body for node in nodes), "the new photo never showed")
    assert_alike(late, early)

    shutil.rmtree(newsroom.root / "ithrottir" / "landsleikur")
    wait_for(caught_up(nodes, PUBLIC_ARTICLES - 1), "the deletion never showed")
    paths = assert_alike(early, late)
    assert "/ithrottir/landsleikur/" not in paths
    assert b"<item>" not in early.get("/feeds/ithrottir/rss.xml").body  # emptied, but still a feed


def test_a_node_whose_index_was_rebuilt_after_damage_answers_as_the_other(newsroom: Newsroom, tmp_path: Path) -> None:
    write_site(newsroom)
    write_articles(newsroom)
    settle(newsroom)
    nodes = (start_node(newsroom.root, tmp_path / "a"), start_node(newsroom.root, tmp_path / "b"))
    wait_for(caught_up(nodes), "the nodes never indexed every article", 30)
    damaged = nodes[1]
    generation = damaged.health()["index"]["generation"]
    time.sleep(1.1)  # the rebuild happens in a later second than the first build
    with open(damaged.health()["index"]["path"], "r+b") as index:
        index.write(b"\0" * 4096)  # its header gone: the indexer builds the next generation from content/
    wait_for(lambda: damaged.health()["index"]["generation"] == generation + 1, "the index was never rebuilt", 30)
    wait_for(caught_up(nodes), "the rebuilt node never became ready", 30)
    covers_everything(assert_alike(*nodes))


def test_nodes_with_their_own_copies_of_the_content_answer_alike(newsroom: Newsroom, tmp_path: Path) -> None:
    """Each node reads its own copy at its own path, with its own file times (a copy that does not
    keep them, as a checkout does): nothing may come from a file's time, inode or path."""
    write_site(newsroom)
    write_articles(newsroom)
    settle(newsroom)
    copy = tmp_path / "elsewhere" / "content"
    shutil.copytree(newsroom.root, copy, copy_function=shutil.copyfile)
    nodes = (start_node(newsroom.root, tmp_path / "a"), start_node(copy, tmp_path / "b"))
    wait_for(caught_up(nodes), "the nodes never indexed every article", 30)
    covers_everything(assert_alike(*nodes))


def test_a_node_fed_by_rsync_answers_as_the_node_it_copies(newsroom: Newsroom, tmp_path: Path) -> None:
    """The recommended way (README, Deployment): the newsroom's files pushed to a node's own disk by
    rsync, which renames each file into place, and a run's files together at its end."""
    rsync = need(shutil.which("rsync"), "rsync")
    copy = tmp_path / "node" / "content"
    copy.mkdir(parents=True)

    def push() -> None:
        subprocess.run([rsync, *RSYNC, f"{newsroom.root}/", f"{copy}/"], check=True)

    write_site(newsroom)
    write_articles(newsroom)
    settle(newsroom)
    push()
    nodes = (start_node(newsroom.root, tmp_path / "a"), start_node(copy, tmp_path / "b"))
    wait_for(caught_up(nodes), "the nodes never indexed every article", 30)
    # One push brings an edit with a new photo, a new article with its photos, and a deletion.
    newsroom.article(
        "erlent", "kosning", title="Kosið í Danmörku: úrslitin", date="2024-04-03T07:15:00Z",
        updated="2024-04-04T06:00:00Z", photos={"talning.png": (900, 600)},
        images=[{"file": "talning.png", "caption": "Talið fram á nótt.", "credit": "Ritzau Scanpix"}],
    )  # fmt: skip
    newsroom.article(
        "menning", "tonleikar", title="Tónleikar í Hörpu", date="2024-04-05T20:00:00Z", topics=["Tónlist"],
        photos={"harpa.jpg": (1000, 700)},
        images=[{"file": "harpa.jpg", "caption": "Harpa að kvöldi.", "credit": "Ljósmynd/Ari Sigvaldason"}],
    )  # fmt: skip
    shutil.rmtree(newsroom.root / "ithrottir" / "landsleikur")
    push()
    wait_for(lambda: all(shows(node, "/menning/", "Hörpu") and shows(node, "/erlent/", "úrslitin") for node in nodes),
             "the push never showed", 30)  # fmt: skip
    wait_for(caught_up(nodes), "the nodes never settled", 30)
    paths = assert_alike(*nodes)
    assert "/menning/tonleikar/harpa.jpg" in paths and "/ithrottir/landsleikur/" not in paths
