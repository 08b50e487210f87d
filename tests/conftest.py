"""Fixtures: a newsroom written by each test into a temporary folder, and the real app over it."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from PIL import Image

from feeds import create_app
from feeds.watcher import watch

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "media": "http://search.yahoo.com/mrss/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "content": "http://purl.org/rss/1.0/modules/content/",
}


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Newsroom:
    """Writes a content directory the way editors do."""

    root: Path
    written: list[Path] = field(default_factory=list)

    def site(self, **fields: Any) -> None:
        meta = {
            "title": "Fréttablaðið",
            "description": "Fréttir á íslensku",
            "language": "is",
            "timezone": "Atlantic/Reykjavik",
            "base_url": "https://frettir.example.is",
        }
        meta.update(fields)
        self.write("_index.md", front_matter(meta))

    def section(self, slug: str, title: str, description: str = "") -> None:
        self.write(f"{slug}/_index.md", front_matter({"title": title, "description": description}))

    def article(
        self,
        section: str,
        slug: str,
        body: str = "Fyrsta málsgrein fréttarinnar.\n\n## Millifyrirsögn\n\nÖnnur málsgrein.",
        photos: Mapping[str, tuple[int, int]] | None = None,
        **meta: Any,
    ) -> Path:
        """An article bundle; `photos` maps file names to sizes and is written as real images."""
        meta.setdefault("title", f"Frétt {slug}")
        meta.setdefault("date", "2026-10-01T12:00:00Z")
        for name, size in (photos or {}).items():
            self.photo(section, slug, name, size)
        return self.write(f"{section}/{slug}/index.md", front_matter(meta) + body)

    def numbered(self, count: int) -> None:
        """`count` plain articles, innlent/frett-0000 on, all of one hour: enough of them to be
        read by a pool of worker processes."""
        for number in range(count):
            meta = {"title": f"Frétt {number}", "date": "2026-10-01T12:00:00Z"}
            self.write(f"innlent/frett-{number:04d}/index.md", front_matter(meta) + "Texti.")

    def photo(self, section: str, slug: str, name: str, size: tuple[int, int] = (64, 48)) -> Path:
        kind = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}[name.rsplit(".", 1)[1]]
        buffer = io.BytesIO()
        Image.new("RGB", size, (200, 80, 20)).save(buffer, kind)
        path = self.root / section / slug / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
        return path

    def write(self, relative: str, text: str | bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        self.written.append(path)
        return path


def front_matter(meta: Mapping[str, Any]) -> str:
    return "---\n" + yaml.safe_dump(dict(meta), allow_unicode=True, sort_keys=False) + "---\n"


@pytest.fixture
def newsroom(tmp_path: Path) -> Newsroom:
    room = Newsroom(tmp_path / "content")
    room.site()
    room.section("innlent", "Innlent", "Fréttir innanlands")
    room.section("erlent", "Erlent", "Fréttir utan úr heimi")
    return room


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(newsroom: Newsroom, clock: Clock, tmp_path: Path) -> Flask:
    return create_app({"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache", "INDEXER": "inline"}, clock=clock)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        yield test_client


@dataclass
class RunningIndexer:
    """A watch loop in a thread of the test, stopped at the end of the test."""

    thread: threading.Thread
    stop_event: threading.Event

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()


@pytest.fixture
def indexers() -> list[RunningIndexer]:
    """The watch loops started by a test, oldest first."""
    return []


@pytest.fixture
def start_indexer(indexers: list[RunningIndexer]) -> Iterator[Callable[[Flask], RunningIndexer]]:
    started = indexers

    def start(app: Flask) -> RunningIndexer:
        publisher = app.extensions["feeds"]
        stop = threading.Event()
        thread = threading.Thread(
            target=watch, args=(publisher.indexer(), publisher.content_dir, 60.0, stop), daemon=True
        )
        thread.start()
        started.append(RunningIndexer(thread, stop))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def status(client: FlaskClient, url: str) -> int:
    """The status code of a GET, with the response closed (photos are streamed from files)."""
    with client.get(url) as response:
        return response.status_code


def get_ok(client: FlaskClient, url: str) -> bytes:
    with client.get(url) as response:
        assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:500])
        return response.get_data()


def xml(client: FlaskClient, url: str) -> etree._Element:
    """The feed parsed strictly, as an XML client would."""
    return etree.fromstring(get_ok(client, url), etree.XMLParser(resolve_entities=False, no_network=True))


def find(node: etree._Element, path: str) -> etree._Element:
    """The first element at `path` (prefixes from NS); the test fails where there is none."""
    found = node.find(path, NS)
    assert found is not None, f"no {path} in {node.tag}"
    return found


def findtext(node: etree._Element, path: str) -> str:
    """The text of the first element at `path` ('' for an empty one); the test fails where there is none."""
    text = node.findtext(path, namespaces=NS)
    assert text is not None, f"no {path} in {node.tag}"
    return text


def attribute(node: etree._Element, name: str) -> str:
    """An attribute's value; the test fails where the element has no such attribute."""
    value = node.get(name)
    assert value is not None, f"no {name} on {node.tag}"
    return value


def xpath_elements(node: etree._Element, expression: str) -> list[etree._Element]:
    """The elements an XPath expression (prefixes from NS) selects; the test fails on any other result."""
    result = node.xpath(expression, namespaces=NS)
    assert isinstance(result, list), result
    elements = [item for item in result if isinstance(item, etree._Element)]
    assert len(elements) == len(result), result
    return elements


def xpath_strings(node: etree._Element, expression: str) -> list[str]:
    """The strings (attribute values, text) an XPath expression selects; the test fails on any other result."""
    result = node.xpath(expression, namespaces=NS)
    assert isinstance(result, list), result
    strings = [item for item in result if isinstance(item, str)]
    assert len(strings) == len(result), result
    return strings


def parsed(client: FlaskClient, url: str) -> Any:
    """The feed as feedparser (the library behind many readers) sees it."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    # Headers as a client receives them, so that feedparser checks the Content-Type too.
    result = feedparser.parse(
        response.get_data(), response_headers={key.lower(): value for key, value in response.headers.items()}
    )
    assert not result.bozo, result.bozo_exception
    return result
