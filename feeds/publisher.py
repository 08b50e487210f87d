"""Answers the web layer's questions from the index: feeds, pages and photos, never early, never stale."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from . import edge, periods
from .config import Settings
from .content import inside
from .description import Archive, Feed, Links, Scope, authority_of, newest, section_titles
from .errors import ContentError, FeedsError, IncompleteRender, IndexUnavailable, NotFound, Unavailable
from .formats import Format
from .indexer import Indexer, IndexerBusy, Status, indexer_alive
from .metrics import Metrics
from .model import Article, Image, Section, Site, Topic
from .render_cache import Rendered, render_cache
from .scanner import SyncReport
from .store import ContentVersion, Store, TopicCount, damage

GENERATOR = "feeds (Python feedgen)"
#: How stale a worker's idea of the content version may be: well under the 200 ms to visible.
VERSION_POLL_SECONDS = 0.01
#: How often a worker looks whether an indexer is running.
INDEXER_CHECK_SECONDS = 1.0
#: How long an inline sync waits for another process's sync to finish.
INLINE_WAIT_SECONDS = 10.0
#: How long the indexer may go without confirming the index before /healthz says it is not ready
#: (it confirms every STATUS_HEARTBEAT_SECONDS when all is well).
STALE_STATUS_SECONDS = 15.0
NO_INDEXER = "no indexer is running for this content: start `flask --app app index --watch` (`make run` does)"

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Listing:
    """An HTML page's worth of articles for one scope."""

    scope: Scope
    title: str
    description: str
    articles: tuple[Article, ...]
    archive: Archive


@dataclass(frozen=True, slots=True)
class Overview:
    """What the front page lists."""

    site: Site
    sections: tuple[Section, ...]
    topics: tuple[TopicCount, ...]
    articles: tuple[Article, ...]


@dataclass(frozen=True, slots=True)
class Health:
    """What /healthz says: whether the current state can be served, and what stands in the way."""

    #: True when the service can serve the current state of `content/`.
    ready: bool
    #: Why it cannot, when it cannot.
    reason: str | None
    articles: int | None
    content_errors: tuple[ContentError, ...]
    generation: int | None
    version: int | None
    index_problem: str | None
    indexer_alive: bool
    indexer_state: str | None
    indexer_error: str | None
    #: Seconds since the indexer last found the index in step with `content/`.
    index_age_seconds: float | None
    last_change: datetime | None


_Description = tuple[str, str, tuple[Article, ...], Archive]


@dataclass(slots=True)
class _Described:
    """The scopes looked up within a `describing_once` block, and the last article, valid for one
    content version, until the next embargo lifts and until the period of any scope ends."""

    version: ContentVersion | None = None
    expires: datetime | None = None
    scopes: dict[tuple[Scope, Site], _Description] = field(default_factory=dict)
    #: (section, slug) and the article: a page, its photos and their renditions ask in a row.
    article: tuple[tuple[str, str], Article] | None = None


class Publisher:
    """The one object the web layer talks to."""

    def __init__(
        self, store: Store, content_dir: Path, settings: Settings, clock: Clock = utc_now, *, metrics: Metrics
    ) -> None:
        self.store = store
        self.content_dir = content_dir
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self._cache = render_cache(settings.render_cache_mb * 1024 * 1024)
        self._version: ContentVersion | None = None
        #: The last content version read from the index, kept while the index cannot be read.
        self._last_version: ContentVersion | None = None
        self._version_read_at = float("-inf")
        self._indexer_seen = (float("-inf"), True)
        self._index_seen_at = float("-inf")
        self._inline_lock = threading.Lock()
        #: Per thread: what a `describing_once` block has looked up.
        self._described = threading.local()
        self._cache_control = edge.cache_control(settings)
        self._archive_cache_control = edge.cache_control(settings, settings.archive_max_age)

    def indexer(self, settle_seconds: float | None = None, isolated: bool = False) -> Indexer:
        """An indexer for this app's index (it still has to acquire the index's lock to write); a
        long-lived one is `isolated`: it reads no bundle in its own process (`Scanner`)."""
        settle = self.settings.settle_seconds if settle_seconds is None else settle_seconds
        return Indexer(self.store.files, self.content_dir, settle, metrics=self.metrics, isolated=isolated)

    def ensure_fresh(self) -> None:
        """With the inline indexer (tests, editing), brings the index in step with `content/` now.

        Otherwise the watch process keeps it current, and this only looks, at most every
        INDEXER_CHECK_SECONDS, whether one is running: without one, an index left by an earlier
        run is served (with a warning in the log and in /healthz), and no index at all is a 503
        that says what to start. Raises Unavailable when the index cannot be brought up to date.
        """
        if self.settings.indexer == "inline":
            self._sync_inline()
        elif not self.indexer_alive() and not self._index_built():
            raise Unavailable(f"the index is not built, and {NO_INDEXER}")

    def _index_built(self) -> bool:
        """Whether the index has a current generation. A yes holds for INDEXER_CHECK_SECONDS: an
        export with no indexer running read the pointer file for each of its 400,000 files."""
        now = time.monotonic()
        if now - self._index_seen_at < INDEXER_CHECK_SECONDS:
            return True
        if self.store.files.current() is None:
            return False
        self._index_seen_at = now
        return True

    def indexer_alive(self) -> bool:
        checked_at, alive = self._indexer_seen
        now = time.monotonic()
        if now - checked_at >= INDEXER_CHECK_SECONDS:
            was_alive, alive = alive, indexer_alive(self.store.files)
            self._indexer_seen = (now, alive)
            if was_alive and not alive:
                # Said once when it goes, not on every request; /healthz says it for as long as it lasts.
                log.warning("%s", NO_INDEXER)
        return alive

    def _sync_inline(self) -> None:
        with self._inline_lock:
            try:
                self.sync_now(INLINE_WAIT_SECONDS)
            except IndexerBusy as error:
                raise Unavailable(str(error)) from None
            except (sqlite3.Error, OSError, FeedsError) as error:
                raise Unavailable(f"the index could not be brought up to date: {error}") from error
            self._version_read_at = float("-inf")

    def sync_now(self, wait_seconds: float, isolated: bool = False) -> SyncReport:
        """Brings the index in step with `content/` in this process, building it if need be.

        Files are read as they are: whoever asks for this has just finished writing them. Raises
        IndexerBusy if another indexer keeps the index's lock for longer than `wait_seconds`.
        With `isolated`, no bundle is read in this process (see `indexer`).
        """
        indexer = self.indexer(settle_seconds=0, isolated=isolated)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                indexer.acquire(wait=False)
                break
            except IndexerBusy:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        try:
            return indexer.open()
        finally:
            indexer.release()

    def current_version(self) -> ContentVersion:
        """The content version, read from the index at most every VERSION_POLL_SECONDS."""
        now = time.monotonic()
        if self._version is None or now - self._version_read_at >= VERSION_POLL_SECONDS:
            try:
                self._version = self._last_version = self.store.version()
            except IndexUnavailable:
                self._version = None
                raise
            self._version_read_at = now
        return self._version

    def rendered(self, scope: Scope, format_: Format, base_url: str) -> Rendered:
        """The feed's bytes, rendered once per content version; raises NotFound for an unknown scope.

        While the index cannot be read, the last document rendered is the answer (the last good
        state); without one, IndexUnavailable is raised. A document is never made from half an answer.
        """
        key = (scope, format_.file_name, base_url)
        entry = self._cache.get(key)
        try:
            version = self.current_version()
            if entry is not None and entry.version == version and self._current(entry):
                self.metrics.render_cache(hit=True, archive=scope.month is not None)
                return entry
            self.metrics.render_cache(hit=False, archive=scope.month is not None)
            started = time.perf_counter()
            now = self.clock()
            feed = self.feed(scope, base_url)
            # Rendered again when an embargo lifts, or when the period of an archive document ends.
            moments = (self.store.next_release(now), feed.archive.ends)
            expires = min((moment for moment in moments if moment is not None), default=None)
            fresh = Rendered(
                body=format_.render(feed),
                content_type=format_.content_type,
                last_modified=int(feed.updated.timestamp()),
                version=version,
                expires=None if expires is None else expires.timestamp(),
                cache_control=self._archive_cache_control if feed.archive.complete else self._cache_control,
                extra_headers=edge.feed_headers(feed, format_.file_name),
            )
            self.metrics.rendered(format_.file_name, time.perf_counter() - started)
        except (IndexUnavailable, IncompleteRender) as error:
            # The last good state, exactly: a document rendered from the last content version this
            # worker read, and with no embargo lifted since; anything older would hide an edit.
            if entry is None or entry.version != self._last_version or not self._current(entry):
                raise
            log.warning("%s %s: answering with the last good document: %s", scope.feed_path, format_.file_name, error)
            return entry
        self._cache.put(key, fresh)
        return fresh

    def _current(self, entry: Rendered) -> bool:
        """Whether no embargo has lifted since the document was rendered."""
        return entry.expires is None or self._timestamp() < entry.expires

    def _timestamp(self) -> float:
        """Now, in seconds since the epoch; the system clock's own call unless a clock was given."""
        return time.time() if self.clock is utc_now else self.clock().timestamp()

    def feed(self, scope: Scope, base_url: str) -> Feed:
        """The description of a feed or archive document as it stands now; raises NotFound for an
        unknown scope or a month without public articles."""
        site = self.store.site()
        title, description, articles, archive = self._describe(scope, site)
        return Feed(
            scope=scope,
            title=title,
            description=description,
            language=site.language,
            updated=newest(articles),
            ttl_minutes=self.settings.ttl_minutes,
            authority=authority_of(site, base_url),
            canonical_base_url=site.base_url or base_url,
            links=Links(base_url),
            articles=articles,
            publisher=site.title,
            section_titles=section_titles(self.store.sections()),
            generator=GENERATOR,
            hubs=self.settings.websub_hubs,
            archive=archive,
        )

    def listing(self, scope: Scope) -> Listing:
        title, description, articles, archive = self._describe(scope, self.store.site())
        return Listing(scope, title, description, articles, archive)

    @contextlib.contextmanager
    def describing_once(self) -> Iterator[None]:
        """Within the block, in this thread, each scope is looked up in the index once for as long as
        the content version stays, no embargo lifts and no period ends: a period's feed in every
        format and its page are then made from one answer. So is an article asked for again in a
        row (its page, photos and renditions). For batch work such as the export."""
        self._described.memo = _Described()
        try:
            yield
        finally:
            del self._described.memo

    def _memo(self, now: datetime) -> _Described | None:
        """This thread's `describing_once` memo, emptied if it no longer holds; None outside one."""
        memo: _Described | None = getattr(self._described, "memo", None)
        if memo is not None:
            # Read before looking up, as `rendered` does: what is found is never older than the
            # version a render made from it is filed under.
            version = self.current_version()
            if memo.version != version or (memo.expires is not None and now >= memo.expires):
                memo.scopes.clear()
                memo.article = None
                memo.version, memo.expires = version, self.store.next_release(now)
        return memo

    def _describe(self, scope: Scope, site: Site) -> _Description:
        """Title, description, articles and neighbours of a scope now; raises NotFound."""
        now = self.clock()
        memo = self._memo(now)
        if memo is not None and (found := memo.scopes.get((scope, site))) is not None:
            return found
        found = (*self._words(scope, site, now), *self._articles(scope, site, now))
        if memo is not None:
            memo.scopes[scope, site] = found
            ends = found[3].ends
            if ends is not None and (memo.expires is None or ends < memo.expires):
                memo.expires = ends
        return found

    def _articles(self, scope: Scope, site: Site, now: datetime) -> tuple[tuple[Article, ...], Archive]:
        """The articles of a subscription feed or of an archive period; and the document's neighbours.

        Each public article is in exactly one period (`feeds.periods`), and a reader who follows
        `prev-archive` from the subscription feed meets each exactly once (RFC 5005): the
        subscription feed holds the newest `feed_size` articles and the rest of the period the
        oldest of them is in, and names the period before that, which is over. It thus holds from
        `feed_size` up to `feed_size` - 1 plus one period (at most twice `feed_size`, unless one
        hour holds more). One that holds every article of its scope names no archive.
        """
        plan = self.archive_plan(scope, site, now)
        if scope.month is None:
            oldest = self.store.nth_published(now, self.settings.feed_size, scope.section, scope.topic)
            if oldest is None:
                return self.store.latest(now, self.settings.feed_size, scope.section, scope.topic), Archive()
            start, _ = plan.period_of(oldest).span(plan.zone)
            articles = self.store.between(start, now + timedelta(seconds=1), scope.section, scope.topic)
            older, _ = self.store.published_near(start, start, now, scope.section, scope.topic)
            return articles, Archive(previous=None if older is None else plan.period_of(older).name)
        try:
            period = periods.parse(scope.month)
        except ValueError:
            raise NotFound("archive", scope.month) from None
        start, end = period.span(plan.zone)
        if start > now or not plan.holds(period):
            raise NotFound("archive", scope.month)
        articles = self.store.between(start, min(end, now + timedelta(seconds=1)), scope.section, scope.topic)
        if not articles:
            raise NotFound("archive", scope.month)
        older, newer = self.store.published_near(start, end, now, scope.section, scope.topic)
        archive = Archive(
            previous=None if older is None else plan.period_of(older).name,
            following=None if newer is None else plan.period_of(newer).name,
            complete=end <= now,
            ends=None if end <= now else end,
        )
        return articles, archive

    def archive_plan(self, scope: Scope, site: Site, now: datetime) -> periods.Plan:
        """How the scope's archive is cut into periods now: months, and days or hours of busy ones."""

        def count(start: datetime, end: datetime) -> int:
            return self.store.count_between(start, min(end, now + timedelta(seconds=1)), scope.section, scope.topic)

        return periods.Plan(count, ZoneInfo(site.timezone), 2 * self.settings.feed_size)

    def overview(self) -> Overview:
        now = self.clock()
        return Overview(
            site=self.store.site(),
            sections=self.store.sections(),
            topics=self.store.topics(now),
            articles=self.store.latest(now, 10),
        )

    def article(self, section: str, slug: str) -> Article:
        """A public article; raises NotFound otherwise."""
        now = self.clock()
        memo = self._memo(now)
        if memo is not None and memo.article is not None and memo.article[0] == (section, slug):
            return memo.article[1]
        found = self.store.article(section, slug, now)
        if memo is not None:
            memo.article = ((section, slug), found)
        return found

    def photo(self, section: str, slug: str, file_name: str) -> tuple[Article, Image, Path]:
        """A public article, its listed photo, and the photo's file; raises NotFound otherwise."""
        article = self.article(section, slug)
        for image in article.images:
            if image.file == file_name:
                path = self.content_dir / section / slug / file_name
                # Checked again here: the file may have been swapped for a link since it was indexed.
                if inside(path, self.content_dir) and path.is_file():
                    return article, image, path
        raise NotFound("photo", f"{section}/{slug}/{file_name}")

    def _words(self, scope: Scope, site: Site, now: datetime) -> tuple[str, str]:
        """Title and description of a scope; raises NotFound if it has no public existence."""
        if scope.topic is not None:
            topic: Topic = self.store.topic(scope.topic, now)
            return f"{topic.name} – {site.title}", f"{site.title}: {topic.name}"
        if scope.section is not None:
            section = self.store.section(scope.section)
            return f"{section.title} – {site.title}", section.description or f"{site.title}: {section.title}"
        return site.title, site.description or site.title

    def health(self) -> Health:
        """The service's state as /healthz reports it; never raises for a broken index."""
        alive = self.settings.indexer == "inline" or self.indexer_alive()
        status = Status.read(self.store.files)
        generation = self.store.files.current()
        problem = "the index is not built yet" if generation is None else damage(self.store.files.database(generation))
        articles = version = None
        errors: tuple[ContentError, ...] = ()
        last_change = None
        if problem is None:
            try:
                articles = self.store.count(self.clock())
                version = self.store.version()[1]
                errors = self.store.problems()
                last_change = self.store.changed_at()
            except IndexUnavailable as error:
                problem = str(error)
        age = None if status is None or status.confirmed_at is None else max(time.time() - status.confirmed_at, 0.0)
        reason = None
        if problem is not None:
            reason = problem
        elif not alive:
            reason = NO_INDEXER
        elif self.settings.indexer == "watch" and status is not None and status.state in ("building", "failing"):
            reason = f"the indexer is {status.state}: {status.error}"
        elif self.settings.indexer == "watch" and (age is None or age > STALE_STATUS_SECONDS):
            # A full disk keeps the indexer from saying anything at all, even that it fails.
            reason = f"the indexer has not confirmed the index for {age or 0:.0f} s"
        return Health(
            ready=reason is None,
            reason=reason,
            articles=articles,
            content_errors=errors,
            generation=generation,
            version=version,
            index_problem=problem,
            indexer_alive=alive,
            indexer_state=None if status is None else status.state,
            indexer_error=None if status is None else status.error,
            index_age_seconds=age,
            last_change=last_change,
        )
