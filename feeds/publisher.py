"""Answers the web layer's questions from the index: feeds, pages and photos, never early, never stale."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .config import Settings
from .description import Feed, Links, Scope, authority_of, newest, section_titles
from .errors import NotFound
from .index import ContentIndex, TopicCount
from .model import Article, Image, Section, Site, Topic

GENERATOR = "feeds (Python feedgen)"

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
        self._refresh_lock = threading.Lock()
        self._last_refresh = float("-inf")

    def refresh(self) -> None:
        """Rescans the content directory if the last rescan is older than the configured interval."""
        if time.monotonic() - self._last_refresh < self.settings.rescan_seconds:
            return
        with self._refresh_lock:
            if time.monotonic() - self._last_refresh < self.settings.rescan_seconds:
                return
            self.index.sync()
            self._last_refresh = time.monotonic()

    def now(self) -> datetime:
        return self.clock()

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
            updated=newest(articles) or self._scope_changed(scope),
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
                real_root = os.path.realpath(self.index.content_dir)
                real_path = os.path.realpath(path)
                # Checked again here: the file may have been swapped for a link since it was indexed.
                if os.path.commonpath([real_root, real_path]) == real_root and os.path.isfile(real_path):
                    return image, Path(real_path)
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

    def _scope_changed(self, scope: Scope) -> datetime:
        """For an empty feed: when its section's settings (or the site's) last changed on disk."""
        folder = self.index.content_dir / scope.section if scope.section else self.index.content_dir
        try:
            return datetime.fromtimestamp(int((folder / "_index.md").stat().st_mtime), UTC)
        except OSError:
            return datetime(2000, 1, 1, tzinfo=UTC)
