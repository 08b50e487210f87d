"""HTTP views: HTML pages, photos, and the feed requests `serving.FeedResponder` leaves to Flask."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, g, render_template, request, send_file
from markupsafe import Markup
from werkzeug.exceptions import BadRequest

from . import edge, markup, metrics, periods
from .dates import format_icelandic
from .description import Links, Scope, byline, newest, section_titles
from .errors import IndexUnavailable, NotFound
from .formats import FORMATS, format_for
from .model import Article, Image, Site
from .publisher import Publisher
from .render.opml import OPML_FILE, OPML_MEDIA_TYPE, Directory, Subscription, render_opml
from .renditions import IMMUTABLE, RENDITION_FOLDER, rendition
from .serving import answer, base_url_for
from .slugs import SLUG_PATTERN
from .store import DEFAULT_SITE

blueprint = Blueprint("feeds", __name__)
ASSETS = Path(__file__).parent / "assets"
#: Answered without the index: a reader asks for the icon on every subscription, crawlers for robots.txt;
#: /healthz and /metrics say what is wrong when it cannot be read.
_WITHOUT_INDEX = frozenset({"feeds.healthz", "feeds.metrics_text", "feeds.favicon", "feeds.robots"})
ROBOTS = "User-agent: *\nDisallow: /healthz\nDisallow: /metrics\n"
#: What each view serves, as /metrics counts requests; anything else (an unknown URL) is "other".
_KINDS = {
    "feed": ("site_feed", "section_feed", "topic_feed"),
    "archive": ("site_archive", "section_archive", "topic_archive"),
    "page": ("home", "section_page", "topic_page", "site_archive_page", "section_archive_page",
             "topic_archive_page", "article_page"),
    "photo": ("photo",),
    "rendition": ("photo_rendition",),
    "opml": ("opml",),
    "health": ("healthz",),
    "metrics": ("metrics_text",),
    "asset": ("favicon", "robots"),
}  # fmt: skip
ROUTE_KINDS = {f"{blueprint.name}.{view}": kind for kind, views in _KINDS.items() for view in views}
#: The favicon and robots.txt change only with a new release.
_A_DAY = "public, max-age=86400"


def publisher() -> Publisher:
    found: Publisher = current_app.extensions["feeds"]
    return found


def base_url() -> str:
    """Where URLs inside a page point: FEEDS_BASE_URL, else the address the request came in on."""
    found = base_url_for(request.environ, publisher().settings.base_url)
    if found is None:
        raise BadRequest("the Host header does not name a host")
    return found


@blueprint.before_app_request
def note_route_kind() -> None:
    """First of all, so that a request refused by what follows is counted by its route too."""
    request.environ[metrics.ROUTE_KIND] = ROUTE_KINDS.get(request.endpoint or "", "other")


@blueprint.before_app_request
def check_host_and_keep_index_fresh() -> None:
    if request.endpoint in _WITHOUT_INDEX:
        return
    base_url()
    publisher().ensure_fresh()


@blueprint.get("/healthz")
def healthz() -> tuple[dict[str, object], int, dict[str, str]]:
    """Whether this worker can serve the current state of the content, and what stands in the way."""
    health = publisher().health()
    body: dict[str, object] = {
        "status": ("degraded" if health.content_errors else "ok") if health.ready else "unavailable",
        "ready": health.ready,
        "reason": health.reason,
        "articles": health.articles,
        "content_errors": [{"path": error.path, "reason": error.reason} for error in health.content_errors],
        "index": {
            "generation": health.generation,
            "version": health.version,
            "healthy": health.index_problem is None,
            "problem": health.index_problem,
            "age_seconds": None if health.index_age_seconds is None else round(health.index_age_seconds, 3),
            "path": None if health.generation is None else str(publisher().store.files.database(health.generation)),
        },
        "indexer": {"alive": health.indexer_alive, "state": health.indexer_state, "error": health.indexer_error},
        "last_change": None if health.last_change is None else health.last_change.isoformat(),
    }
    return body, 200 if health.ready else 503, {"Cache-Control": "no-store"}


@blueprint.get("/metrics")
def metrics_text() -> Response:
    """Prometheus text: every process's counts, and the figures of /healthz, read the same way."""
    body, content_type = publisher().metrics.exposition(publisher().health(), request.headers.get("Accept", ""))
    # Never kept by a shared cache: each scrape must reach a worker.
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})


@blueprint.after_app_request
def allow_caching(response: Response) -> Response:
    if response.status_code == 200 and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = edge.cache_control(publisher().settings)
    return response


def _keyed(body: str, keys: Iterable[str]) -> Response:
    """An HTML page carrying the surrogate keys of itself and of every article it shows."""
    response = Response(body, mimetype="text/html")
    response.headers.extend(edge.key_headers(keys))
    return response


@blueprint.app_context_processor
def page_helpers() -> dict[str, object]:
    return {
        "formats": FORMATS,
        # Error pages are rendered for bad Host headers too, so this one does not raise.
        "links": Links(base_url_for(request.environ, publisher().settings.base_url) or ""),
        "site": _site_or_default(),
        "root_scope": Scope(),
        "scope_of_section": lambda slug: Scope(section=slug),
        "scope_of_topic": lambda slug: Scope(topic=slug),
        "srcset": _srcset,
    }


def _srcset(image: Image, sizes: str) -> Markup:
    """A photo's srcset and sizes attributes, absolute, for a page's <img>."""
    links = Links(base_url_for(request.environ, publisher().settings.base_url) or "")
    return Markup(markup.absolutize(markup.srcset_attributes(image, sizes), links.base_url))  # noqa: S704 - escaped there


def _site() -> Site:
    """The site's settings, read once per request: a page's every date and byline asks for them."""
    site: Site | None = g.get("feeds_site")
    if site is None:
        site = g.feeds_site = publisher().store.site()
    return site


def _site_or_default() -> Site:
    """The site's settings; error pages are rendered while the index cannot be read, too."""
    try:
        return _site()
    except IndexUnavailable:
        return DEFAULT_SITE


@blueprint.app_template_filter("byline")
def byline_filter(authors: tuple[str, ...]) -> str:
    return byline(authors, _site_or_default().language)


@blueprint.app_template_filter("period_name")
def period_name_filter(period: str) -> str:
    """An archive period the newsroom's way: "september 2023", "17. september 2023"."""
    return periods.parse(period).label()


@blueprint.app_template_filter("icelandic_date")
def icelandic_date(moment: datetime) -> str:
    return format_icelandic(moment, ZoneInfo(_site().timezone))


@blueprint.get("/favicon.ico")
def favicon() -> Response:
    return _document(_asset("favicon.ico"), "image/vnd.microsoft.icon", _A_DAY)


@functools.cache
def _asset(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


@blueprint.get("/robots.txt")
def robots() -> Response:
    return _document(ROBOTS.encode(), "text/plain; charset=utf-8", _A_DAY)


@blueprint.get(f"/{OPML_FILE}")
def opml() -> Response:
    """Every feed of the site as OPML 2.0; each scope once, in the first format of the table."""
    overview = publisher().overview()
    links = Links(base_url())
    file_name = FORMATS[0].file_name

    def subscription(scope: Scope, title: str) -> Subscription:
        return Subscription(title, links.feed(scope, file_name), links.to(scope.page_path))

    site = overview.site
    directory = Directory(
        title=site.title,
        language=site.language,
        modified=newest(overview.articles),
        site=subscription(Scope(), site.title),
        groups=(
            ("Efnisflokkar", [subscription(Scope(section=s.slug), s.title) for s in overview.sections]),
            ("Efni", [subscription(Scope(topic=t.topic.slug), t.topic.name) for t in overview.topics]),
        ),
    )
    return _document(render_opml(directory), f"{OPML_MEDIA_TYPE}; charset=utf-8")


def _document(body: bytes, content_type: str, cache_control: str | None = None) -> Response:
    """A small generated document with an ETag of its bytes, answering conditional requests."""
    response = Response(body, content_type=content_type)
    response.set_etag(hashlib.blake2b(body, digest_size=12).hexdigest())
    if cache_control is not None:
        response.headers["Cache-Control"] = cache_control
    response.make_conditional(request)
    return response


@blueprint.get("/feeds/<file_name>")
def site_feed(file_name: str) -> Response:
    return _feed(Scope(), file_name)


@blueprint.get("/feeds/<section>/<file_name>")
def section_feed(section: str, file_name: str) -> Response:
    return _feed(Scope(section=_slug("section", section)), file_name)


@blueprint.get("/feeds/topics/<topic>/<file_name>")
def topic_feed(topic: str, file_name: str) -> Response:
    return _feed(Scope(topic=_slug("topic", topic)), file_name)


@blueprint.get("/feeds/archive/<month>/<file_name>")
def site_archive(month: str, file_name: str) -> Response:
    return _feed(Scope(month=month), file_name)


@blueprint.get("/feeds/<section>/archive/<month>/<file_name>")
def section_archive(section: str, month: str, file_name: str) -> Response:
    return _feed(Scope(section=_slug("section", section), month=month), file_name)


@blueprint.get("/feeds/topics/<topic>/archive/<month>/<file_name>")
def topic_archive(topic: str, month: str, file_name: str) -> Response:
    return _feed(Scope(topic=_slug("topic", topic), month=month), file_name)


def _feed(scope: Scope, file_name: str) -> Response:
    """The same answer as `serving.FeedResponder`'s, for what reaches Flask (first renders, errors)."""
    rendered = publisher().rendered(scope, format_for(file_name), base_url())
    status, headers, body = answer(request.environ, rendered)
    return Response(body, status=status, headers=headers)


@blueprint.get("/")
def home() -> Response:
    overview = publisher().overview()
    keys = [edge.page_key(Scope().page_path), *map(edge.article_key, overview.articles)]
    return _keyed(render_template("home.html", overview=overview), keys)


@blueprint.get("/<section>/")
def section_page(section: str) -> Response:
    return _listing(Scope(section=_slug("section", section)))


@blueprint.get("/topics/<topic>/")
def topic_page(topic: str) -> Response:
    return _listing(Scope(topic=_slug("topic", topic)))


@blueprint.get("/archive/<month>/")
def site_archive_page(month: str) -> Response:
    return _listing(Scope(month=month))


@blueprint.get("/<section>/archive/<month>/")
def section_archive_page(section: str, month: str) -> Response:
    return _listing(Scope(section=_slug("section", section), month=month))


@blueprint.get("/topics/<topic>/archive/<month>/")
def topic_archive_page(topic: str, month: str) -> Response:
    return _listing(Scope(topic=_slug("topic", topic), month=month))


def _listing(scope: Scope) -> Response:
    listing = publisher().listing(scope)
    keys = [edge.page_key(scope.page_path), *map(edge.article_key, listing.articles)]
    return _keyed(render_template("listing.html", listing=listing), keys)


@blueprint.get("/<section>/<slug>/")
def article_page(section: str, slug: str) -> Response:
    article = publisher().article(_slug("section", section), _slug("article", slug))
    site = _site()
    titles = section_titles(publisher().store.sections())
    page = render_template("article.html", article=article, site=site, section_title=titles.get(section, section))
    return _keyed(page, [edge.article_key(article)])


@blueprint.get("/<section>/<slug>/<file_name>")
def photo(section: str, slug: str, file_name: str) -> Response:
    article, image, path = publisher().photo(_slug("section", section), _slug("article", slug), file_name)
    return _photo_file(path, article, image, image.digest, edge.cache_control(publisher().settings))


@blueprint.get("/<section>/<slug>/<version>/<file_name>")
def photo_rendition(section: str, slug: str, version: str, file_name: str) -> Response:
    """A smaller copy of a photo, at a URL that names its width and the photo's version."""
    match = RENDITION_FOLDER.match(version)
    article, image, path = publisher().photo(_slug("section", section), _slug("article", slug), file_name)
    if match is None or not image.digest.startswith(match["digest"]):
        raise NotFound("photo", f"{section}/{slug}/{version}/{file_name}")
    width = int(match["width"])
    made = rendition(publisher().store.files.cache_dir, image, path, width)
    return _photo_file(made, article, image, f"{image.digest}-{width}", IMMUTABLE)


def _photo_file(path: Path, article: Article, image: Image, etag: str, cache_control: str) -> Response:
    """A photo's bytes, with validators from what was indexed: its digest and its article's date.

    Never the file's own time, inode or path (werkzeug's default ETag), which differ from node to
    node, and for a rendition with when this node happened to make it.
    """
    try:
        response = send_file(
            path, mimetype=image.media_type, etag=etag, last_modified=article.updated, conditional=True
        )
    except FileNotFoundError:
        # Gone since it was looked up: the newsroom removed the photo, or the indexer removed a
        # rendition no article has any more.
        raise NotFound("photo", image.src) from None
    response.headers["Cache-Control"] = cache_control
    # Keyed by its article: a photo replaced in place changes the article, which is purged.
    response.headers.extend(edge.key_headers([edge.article_key(article)]))
    return response


def _slug(kind: str, value: str) -> str:
    if not SLUG_PATTERN.match(value):
        raise NotFound(kind, value)
    return value
