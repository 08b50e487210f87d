"""What a feed holds, whatever its format: its scope, its words, its links and its articles."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from . import markup
from .model import Article, Image, Section, Site


@dataclass(frozen=True, slots=True)
class Scope:
    """Which articles a feed holds: the whole site, one section or one topic; and either the newest
    of them (the feed readers subscribe to) or all of one month (an RFC 5005 archive document)."""

    section: str | None = None
    topic: str | None = None
    #: "2023-09" for the archive document of that month, in the newsroom's timezone.
    month: str | None = None

    @property
    def current(self) -> Scope:
        """The subscription feed of the same articles."""
        return Scope(self.section, self.topic)

    def archive(self, month: str) -> Scope:
        return Scope(self.section, self.topic, month)

    @property
    def feed_path(self) -> str:
        """Where its feed files live, from the site root, without a trailing slash."""
        if self.topic is not None:
            path = f"/feeds/topics/{self.topic}"
        elif self.section is not None:
            path = f"/feeds/{self.section}"
        else:
            path = "/feeds"
        return path if self.month is None else f"{path}/archive/{self.month}"

    def document_path(self, file_name: str) -> str:
        """One of its feed documents, from the site root, e.g. "/feeds/innlent/rss.xml"."""
        return f"{self.feed_path}/{file_name}"

    @property
    def page_path(self) -> str:
        """Its HTML page, from the site root."""
        if self.topic is not None:
            path = f"/topics/{self.topic}/"
        elif self.section is not None:
            path = f"/{self.section}/"
        else:
            path = "/"
        return path if self.month is None else f"{path}archive/{self.month}/"


@dataclass(frozen=True, slots=True)
class Archive:
    """Where a document stands in its feed's RFC 5005 archive: one document per month."""

    #: The next older month with articles: `prev-archive`, and JSON Feed's `next_url`.
    previous: str | None = None
    #: The next newer month with articles, for an archive document: `next-archive`.
    following: str | None = None
    #: Whether the month is over, so that the document changes only when one of its articles does.
    complete: bool = False
    #: When the period of an archive document not yet complete ends, and it becomes complete.
    ends: datetime | None = None


@dataclass(frozen=True, slots=True)
class Links:
    """Absolute URLs for everything the service publishes, from one base."""

    #: Scheme and host, and a path prefix if the service is mounted below one; no trailing slash.
    base_url: str

    def to(self, path: str) -> str:
        """The absolute URL of a path from the site root."""
        return f"{self.base_url}{path}"

    def article(self, article: Article) -> str:
        return self.to(article.path)

    def image(self, image: Image) -> str:
        return image.src if "://" in image.src else self.to(image.src)

    def thumbnail(self, image: Image) -> tuple[str, int, int]:
        """URL, width and height of the photo's smallest rendition, or of the photo if it has none."""
        if not image.renditions:
            return self.image(image), image.width, image.height
        width, height = image.renditions[0]
        return self.to(image.rendition_src(width)), width, height

    def body(self, article: Article) -> str:
        """The article's HTML with every link and photo made absolute."""
        return markup.absolutize(article.body_html, self.base_url)

    def feed(self, scope: Scope, file_name: str) -> str:
        return self.to(scope.document_path(file_name))


@dataclass(frozen=True, slots=True)
class Feed:
    """Everything a renderer needs; renderers add nothing but syntax."""

    scope: Scope
    title: str
    description: str
    language: str
    #: The newest date among the articles; NO_ARTICLES_DATE for an empty feed.
    updated: datetime
    #: How long a reader may wait before polling again, in minutes.
    ttl_minutes: int
    #: The host that names every GUID.
    authority: str
    #: The canonical URL prefix of the site, for identifiers that must not move with mirrors.
    canonical_base_url: str
    links: Links
    #: Newest first.
    articles: tuple[Article, ...]
    #: The publisher's name, the author of articles that name none.
    publisher: str
    #: Section titles by slug, for the section category of each article.
    section_titles: Mapping[str, str]
    #: The name of the generator.
    generator: str
    #: WebSub hubs that readers may subscribe through; each document names them and itself.
    hubs: tuple[str, ...] = ()
    #: Its neighbours in the archive; for the subscription feed, only `previous`.
    archive: Archive = Archive()

    def self_url(self, file_name: str) -> str:
        return self.links.feed(self.scope, file_name)

    def current_url(self, file_name: str) -> str:
        """The subscription document: the same as `self_url` unless this is an archive document."""
        return self.links.feed(self.scope.current, file_name)

    def archive_url(self, month: str, file_name: str) -> str:
        return self.links.feed(self.scope.archive(month), file_name)

    def feed_id(self, file_name: str) -> str:
        """A permanent id for the feed, the same in its archive documents: its canonical URL."""
        return f"{self.canonical_base_url}{self.scope.current.document_path(file_name)}"

    @property
    def page_url(self) -> str:
        return self.links.to(self.scope.page_path)

    def guid(self, article: Article) -> str:
        return article.guid(self.authority)


#: The word that joins the last two names of a byline, by the newsroom's language.
_AND = {"is": "og", "en": "and", "da": "og", "nb": "og", "nn": "og", "sv": "och", "de": "und", "fo": "og"}


def byline(authors: tuple[str, ...], language: str) -> str:
    """Every author in one text, as the newsroom writes it: "A, B og C" for Icelandic.

    One `dc:creator` holding every name is what readers show whole; given one per author,
    some show only the first and others only the last.
    """
    if len(authors) < 2:
        return "".join(authors)
    conjunction = _AND.get(language.split("-")[0].lower(), "&")
    return f"{', '.join(authors[:-1])} {conjunction} {authors[-1]}"


def authority_of(site: Site, base_url: str) -> str:
    """The host that names GUIDs: the site's canonical host if it has one, else the serving one."""
    host = urlsplit(site.base_url or base_url).hostname
    return host or "localhost"


#: The date of a document without articles (a new section's feed): fixed, so that it is the same on
#: every node and after every rebuild, as nothing taken from the index (when it changed) would be.
NO_ARTICLES_DATE = datetime(1970, 1, 1, tzinfo=UTC)


def newest(articles: tuple[Article, ...]) -> datetime:
    """The newest `updated` among the articles: a document's date, whichever node answers."""
    return max((article.updated for article in articles), default=NO_ARTICLES_DATE)


def section_titles(sections: tuple[Section, ...]) -> dict[str, str]:
    return {section.slug: section.title for section in sections}
