"""Feed requests answered straight from the render cache, in front of Flask.

A hit costs a route match, a version check and a dictionary lookup; conditional requests get
a 304 and gzip-capable clients the copy compressed once per version. Anything else (pages,
photos, unknown feeds, errors) goes to Flask, which maps errors to HTTP in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from .description import Scope
from .errors import FeedsError
from .formats import FORMATS, Format, format_for

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .publisher import Publisher
    from .render_cache import Headers, Rendered

_FEED_PATH = re.compile(
    r"^/feeds/(?:topics/(?P<topic>[a-z0-9]+(?:-[a-z0-9]+)*)/|(?P<section>[a-z0-9]+(?:-[a-z0-9]+)*)/)?"
    r"(?:archive/(?P<month>[0-9]{4}-(?:0[1-9]|1[0-2])(?:-[0-3][0-9](?:T[0-2][0-9])?)?)/)?"
    r"(?P<file>" + "|".join(re.escape(format_.file_name) for format_ in FORMATS) + r")$"
)
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")


@lru_cache(maxsize=4096)
def feed_route(path: str) -> tuple[Scope, Format] | None:
    """The feed a path names, or None if it names no feed."""
    match = _FEED_PATH.match(path)
    if match is None or match["section"] == "topics":
        return None
    return Scope(section=match["section"], topic=match["topic"], month=match["month"]), format_for(match["file"])


def base_url_for(environ: WSGIEnvironment, configured: str | None) -> str | None:
    """Where URLs in an answer point: the configured base URL, else the scheme, host and mount
    point the request came in on; None for a Host header that is not a host."""
    if configured:
        return configured
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    return _base_url(environ.get("wsgi.url_scheme", "http"), host, environ.get("SCRIPT_NAME", ""))


@lru_cache(maxsize=256)
def _base_url(scheme: str, host: str, script_name: str) -> str | None:
    if not _HOST.match(host):
        return None
    if (scheme, host[-3:]) == ("http", ":80") or (scheme, host[-4:]) == ("https", ":443"):
        host = host.rsplit(":", 1)[0]
    return f"{scheme}://{host}{script_name}"


@lru_cache(maxsize=256)
def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header admits gzip (a q of 0 refuses it)."""
    for part in header.split(","):
        coding, _, parameters = part.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            quality = parameters.strip().lower()
            if not quality.startswith("q="):
                return True
            try:
                return float(quality[2:]) > 0
            except ValueError:
                return False
    return False


def not_modified(environ: WSGIEnvironment, rendered: Rendered) -> bool:
    """RFC 9110 section 13.1: If-None-Match wins; If-Modified-Since counts only without it."""
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match == rendered.etag or if_none_match == rendered.gzip_etag:
        return True
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or rendered.etag in tags or rendered.gzip_etag in tags
    if_modified_since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return since.tzinfo is not None and rendered.last_modified <= since.timestamp()
    return False


def answer(environ: WSGIEnvironment, rendered: Rendered) -> tuple[str, Headers, bytes]:
    """Status, headers and body for a GET or HEAD of a rendered feed: the one way feeds are answered."""
    gzipped = accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", ""))
    if not_modified(environ, rendered):
        return "304 Not Modified", rendered.headers(gzipped, not_modified=True), b""
    headers = rendered.headers(gzipped, not_modified=False)
    if environ["REQUEST_METHOD"] == "HEAD":
        return "200 OK", headers, b""
    return "200 OK", headers, rendered.gzipped() if gzipped else rendered.body


class FeedResponder:
    """WSGI middleware that answers cached feeds before Flask; wraps the Flask app's `wsgi_app`.

    It is a shortcut only: Flask routes the same URLs to a view that answers the same way, and
    gets every request this cannot answer from the cache (other methods, unknown feeds, errors).
    """

    def __init__(self, app: WSGIApplication, publisher: Publisher) -> None:
        self.app = app
        self.publisher = publisher

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        route = feed_route(environ.get("PATH_INFO", "")) if environ["REQUEST_METHOD"] in ("GET", "HEAD") else None
        base_url = base_url_for(environ, self.publisher.settings.base_url)
        if route is None or base_url is None:
            return self.app(environ, start_response)
        try:
            self.publisher.ensure_fresh()
            rendered = self.publisher.rendered(route[0], route[1], base_url)
        except FeedsError:
            return self.app(environ, start_response)
        status, headers, body = answer(environ, rendered)
        start_response(status, headers)
        return [body]
