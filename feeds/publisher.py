"""Answers the web layer's questions from the index: feeds, pages and photos, never early, never stale."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .config import Settings
from .content import inside
from .description import Feed, Links, Scope, authority_of, newest, section_titles
from .errors import NotFound, Unavailable
from .formats import Format
from .index import ContentIndex, TopicCount
from .indexer import Indexer
from .model import Article, Image, Section, Site, Topic
from .render_cache import Rendered, render_cache

GENERATOR = "feeds (Python feedgen)"
#: How stale a worker's idea of the content version may be: well under the 200 ms to visible.
VERSION_POLL_SECONDS = 0.01
#: How long a request waits for the first index build before answering 503.
FIRST_BUILD_WAIT_SECONDS = 20.0

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Listing:
    """An HTML page's worth of articles for one scope."""

    scope: Scope
    title: str
    description: str
    articles: tuple[Article, ...]


@dataclass(frozen=True, slots=True)
class Overview:
    """What the front page lists."""

    site: Site
    sections: tuple[Section, ...]
    topics: tuple[TopicCount, ...]
    articles: tuple[Article, ...]


class Publisher:
    """The one object the web layer talks to."""

    def __init__(self, index: ContentIndex, settings: Settings, clock: Clock = utc_now) -> None:
        self.index = index
        self.settings = settings
        self.clock = clock
        self.indexer = Indexer(index, settings.rescan_seconds, settings.settle_seconds)
        self._cache = render_cache(settings.render_cache_mb * 1024 * 1024)
        self._version = 0
        self._version_read_at = float("-inf")

    def ensure_fresh(self) -> None:
        """Makes sure the index is being kept current, and has been built at least once.

        With `rescan_seconds` at 0 the content directory is synced right here, before every
        request (for tests and editing); otherwise a background indexer does it. Raises
        Unavailable while the very first build is still under way elsewhere.
        """
        if self.settings.rescan_seconds == 0:
            self._version = self.index.sync().version
            self._version_read_at = time.monotonic()
            return
        self.indexer.start()
        if self._version:
            return
        deadline = time.monotonic() + FIRST_BUILD_WAIT_SECONDS
        while not self.current_version():
            if time.monotonic() > deadline:
                raise Unavailable("the article index is being built")
            time.sleep(0.05)

    def current_version(self) -> int:
        """The content version, read from the database at most every VERSION_POLL_SECONDS."""
        now = time.monotonic()
        if now - self._version_read_at >= VERSION_POLL_SECONDS:
            self._version = self.index.version()
            self._version_read_at = now
        return self._version

    def rendered(self, scope: Scope, format_: Format, base_url: str) -> Rendered:
        """The feed's bytes, rendered once per content version; raises NotFound for an unknown scope."""
        key = (scope, format_.file_name, base_url)
        version = self.current_version()
        entry = self._cache.get(key)
        if (
            entry is not None
            and entry.version == version
            and (entry.expires is None or self._timestamp() < entry.expires)
        ):
            return entry
        now = self.clock()
        feed = self.feed(scope, base_url)
        release = self.index.next_release(now)
        entry = Rendered(
            body=format_.render(feed),
            content_type=format_.content_type,
            last_modified=int(feed.updated.timestamp()),
            version=version,
            expires=None if release is None else release.timestamp(),
            cache_control=f"public, max-age={self.settings.max_age}",
        )
        self._cache.put(key, entry)
        return entry

    def _timestamp(self) -> float:
        """Now, in seconds since the epoch; the system clock's own call unless a clock was given."""
        return time.time() if self.clock is utc_now else self.clock().timestamp()

    def feed(self, scope: Scope, base_url: str) -> Feed:
        """The description of a feed as it stands now; raises NotFound for an unknown scope."""
        now = self.clock()
        site = self.index.site()
        title, description = self._words(scope, site, now)
        articles = self.index.latest(now, self.settings.feed_size, scope.section, scope.topic)
        return Feed(
            scope=scope,
            title=title,
            description=description,
            language=site.language,
            # An empty feed still needs a date (Atom's updated): when the index last changed.
            updated=newest(articles) or self.index.changed_at(),
            ttl_minutes=self.settings.ttl_minutes,
            authority=authority_of(site, base_url),
            canonical_base_url=site.base_url or base_url,
            links=Links(base_url),
            articles=articles,
            publisher=site.title,
            section_titles=section_titles(self.index.sections()),
            generator=GENERATOR,
        )

    def listing(self, scope: Scope) -> Listing:
        now = self.clock()
        title, description = self._words(scope, self.index.site(), now)
        articles = self.index.latest(now, self.settings.feed_size, scope.section, scope.topic)
        return Listing(scope, title, description, articles)

    def overview(self) -> Overview:
        now = self.clock()
        return Overview(
            site=self.index.site(),
            sections=self.index.sections(),
            topics=self.index.topics(now),
            articles=self.index.latest(now, 10),
        )

    def article(self, section: str, slug: str) -> Article:
        return self.index.article(section, slug, self.clock())

    def photo(self, section: str, slug: str, file_name: str) -> tuple[Image, Path]:
        """A listed photo of a public article, and its file; raises NotFound otherwise."""
        article = self.article(section, slug)
        for image in article.images:
            if image.file == file_name:
                path = self.index.content_dir / section / slug / file_name
                # Checked again here: the file may have been swapped for a link since it was indexed.
                if inside(path, self.index.content_dir) and path.is_file():
                    return image, path
        raise NotFound("photo", f"{section}/{slug}/{file_name}")

    def _words(self, scope: Scope, site: Site, now: datetime) -> tuple[str, str]:
        """Title and description of a scope; raises NotFound if it has no public existence."""
        if scope.topic is not None:
            topic: Topic = self.index.topic(scope.topic, now)
            return f"{topic.name} – {site.title}", f"{site.title}: {topic.name}"
        if scope.section is not None:
            section = self.index.section(scope.section)
            return f"{section.title} – {site.title}", section.description or f"{site.title}: {section.title}"
        return site.title, site.description or site.title
