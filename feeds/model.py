"""The typed, frozen model every view of the content is made from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Site:
    """The newsroom as a whole, from `content/_index.md`."""

    #: Name of the publication.
    title: str
    #: One-line description of the publication.
    description: str
    #: BCP 47 language tag of the articles.
    language: str = "is"
    #: IANA zone in which times written without a zone are read.
    timezone: str = "Atlantic/Reykjavik"
    #: Canonical public address; its host names every GUID, so GUIDs survive a change of mirror.
    base_url: str | None = None


@dataclass(frozen=True, slots=True)
class Section:
    """A folder of articles, with its own feeds."""

    #: The folder's name, also its URL segment.
    slug: str
    title: str
    description: str


@dataclass(frozen=True, slots=True)
class Topic:
    """A subject shared by articles across sections, with its own feeds."""

    #: The name as the newsroom writes it, e.g. "Norður-Kórea".
    name: str
    #: Its lowercase ASCII URL segment, e.g. "nordur-korea".
    slug: str


#: Widths of the smaller copies made of each photo, for phones, lists and thumbnails.
RENDITION_WIDTHS = (320, 640, 1280)
#: How much of a photo's digest its renditions' URLs carry: a new version is a new URL.
RENDITION_VERSION_LENGTH = 12


@dataclass(frozen=True, slots=True)
class Image:
    """One photo of an article, measured from its file."""

    #: Path from the site root ("/innlent/gos/gos.jpg"), or an absolute URL for a remote photo.
    src: str
    #: Bundle file name; None for a remote photo.
    file: str | None
    media_type: str
    #: Exact size in bytes.
    length: int
    width: int
    height: int
    caption: str
    #: Verbatim, e.g. "AFP/KCNA" or "Ljósmynd/Jón Pétursson".
    credit: str
    alt: str
    #: A hash of the file's bytes; names its renditions, which change with it. Empty for a remote photo.
    digest: str = ""

    @property
    def credited_caption(self) -> str:
        """Caption and credit in one line, where a format has room for one text: "Hraunið rennur. (AFP)"."""
        return f"{self.caption} ({self.credit})"

    @property
    def renditions(self) -> tuple[tuple[int, int], ...]:
        """Width and height of each smaller copy served of the photo, narrowest first: only narrower
        than the original, and none of a remote photo or of a GIF (which may move)."""
        if self.file is None or not self.digest or self.media_type == "image/gif":
            return ()
        return tuple(
            (width, max(1, round(self.height * width / self.width))) for width in RENDITION_WIDTHS if width < self.width
        )

    def rendition_src(self, width: int) -> str:
        """Path of a rendition from the site root: "/innlent/gos/320w-1a2b3c4d5e6f/gos.jpg"."""
        folder, _, name = self.src.rpartition("/")
        return f"{folder}/{width}w-{self.digest[:RENDITION_VERSION_LENGTH]}/{name}"


@dataclass(frozen=True, slots=True)
class Article:
    """One published (or embargoed) article, parsed and checked."""

    #: Stable identity; the GUID is built from it and never changes once published.
    id: str
    section: str
    slug: str
    title: str
    #: Aware UTC; an article is public only from this moment on.
    published: datetime
    #: Aware UTC; equal to `published` unless the article says otherwise.
    updated: datetime
    #: The publication day in the newsroom's timezone, as YYYY-MM-DD, for the GUID.
    tag_date: str
    authors: tuple[str, ...]
    topics: tuple[Topic, ...]
    #: The lede as plain text.
    summary: str
    #: Sanitized HTML of the body; links inside the site start with markup.SITE_ROOT_MARK, which
    #: `markup.absolutize` turns into the base URL of the request or the setting.
    body_html: str
    #: The first one is the lead photo.
    images: tuple[Image, ...]
    #: Photos the article is published without, each as "path: reason" (see errors.PhotoRefused).
    left_out: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """Path of the article's page from the site root, e.g. "/innlent/gos/"."""
        return f"/{self.section}/{self.slug}/"

    @property
    def guid_key(self) -> str:
        """What tells this article's GUID from others' on one site: two articles with the same key
        share a GUID."""
        return f"{self.tag_date}:{self.id}"

    def guid(self, authority: str) -> str:
        """The RFC 4151 tag URI that names this article in every feed, forever."""
        return f"tag:{authority},{self.guid_key}"
