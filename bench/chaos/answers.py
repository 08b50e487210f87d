"""One request on a fresh loopback connection, and a feed read the way a strict client reads it."""

from __future__ import annotations

import gzip
import http.client
import json
import re
import threading
import time
from typing import NamedTuple

from lxml import etree

from .corpus import END_MARK, VERSION_IN_TITLE
from .truth import ItemSeen

HOST = "127.0.0.1"
TIMEOUT_S = 10.0
_ATOM = "{http://www.w3.org/2005/Atom}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
_CLOSING_TAGS = re.compile(r"(?:\s*</[a-z0-9]+>)*\s*")
_parsers = threading.local()  # an lxml parser must not be shared between threads


class Malformed(ValueError):
    """A body a client cannot read as the feed it asked for."""


class Response(NamedTuple):
    #: 0 when no answer came (refused, reset, timed out).
    status: int
    headers: dict[str, str]
    body: bytes
    #: Wall-clock seconds: just before connecting, and once the whole body was read.
    t0: float
    t1: float
    error: str


def get(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = TIMEOUT_S) -> Response:
    """A GET to 127.0.0.1 only, on a fresh connection (so successive requests reach every worker)."""
    t0 = time.time()
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        answer = connection.getresponse()
        body = answer.read()
        found = {name.lower(): value for name, value in answer.getheaders()}
        if found.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        return Response(answer.status, found, body, t0, time.time(), "")
    except (OSError, http.client.HTTPException, EOFError) as error:
        return Response(0, {}, b"", t0, time.time(), f"{type(error).__name__}: {error}"[:200])
    finally:
        connection.close()


def read_feed(path: str, body: bytes) -> tuple[ItemSeen, ...]:
    """The items of an RSS, Atom or JSON Feed document; raises Malformed if it is not one."""
    if path.endswith(".json"):
        return _read_json(body)
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as error:
        raise Malformed(f"not well-formed XML: {error}") from None
    if path.endswith("rss.xml"):
        if root.tag != "rss" or root.find("channel") is None:
            raise Malformed(f"root element {root.tag}, not an RSS channel")
        rows = [(item.findtext("guid"), item.findtext("title"), item.findtext(_CONTENT)) for item in root.iter("item")]
    else:
        if root.tag != f"{_ATOM}feed":
            raise Malformed(f"root element {root.tag}, not an Atom feed")
        rows = [
            (entry.findtext(f"{_ATOM}id"), entry.findtext(f"{_ATOM}title"), entry.findtext(f"{_ATOM}content"))
            for entry in root.iter(f"{_ATOM}entry")
        ]
    return tuple(_item(*row) for row in rows)


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    return parser


def _read_json(body: bytes) -> tuple[ItemSeen, ...]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise Malformed(f"not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("version") != "https://jsonfeed.org/version/1.1":
        raise Malformed("not a JSON Feed 1.1 document")
    items = document.get("items")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise Malformed("items is not a list of objects")
    return tuple(_item(item.get("id"), item.get("title"), item.get("content_html")) for item in items)


def _item(guid: object, title: object, body: object) -> ItemSeen:
    if not isinstance(guid, str) or not guid or not isinstance(title, str) or not isinstance(body, str):
        raise Malformed(f"an item without a GUID, title or body: {str(guid)[:80]}")
    version = VERSION_IN_TITLE.search(title)
    marks = list(END_MARK.finditer(body))
    at_end = bool(marks) and _only_closing_tags(body[marks[-1].end() :])
    end_mark = (marks[-1][1], int(marks[-1][2])) if at_end and len(marks) == 1 else None
    return ItemSeen(guid, int(version[1]) if version else None, end_mark)


def _only_closing_tags(rest: str) -> bool:
    return _CLOSING_TAGS.fullmatch(rest) is not None
