"""Which feed documents changed bytes after a change of content, and which surrogate keys that makes stale.

The indexer's process keeps, for every feed document (every scope, every format), the digest of
its bytes as last announced, and for every scope a fingerprint of its description: a scope whose
description is the same renders the same bytes (renderers are pure), so only scopes whose
description changed are rendered again, and only documents whose digest differs count as changed.
After an edit of known bundles only the scopes that held or now hold them are looked at; anything
else (a whole pass, a new index, an embargo lifting) looks at every scope. What was announced is
kept in a small file beside the index, so that changes made while the indexer was down are
announced when it starts, and nothing else is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec

from . import edge, periods
from .dates import month_of
from .description import Scope
from .errors import IncompleteRender, NotFound
from .formats import FORMATS
from .model import Article
from .publisher import Publisher
from .render_cache import body_digest
from .store import ContentVersion

log = logging.getLogger(__name__)

#: Bumped when the state file's meaning changes; an old one is then taken as no state.
STATE_VERSION = 1
#: The base URL documents are compared at when FEEDS_BASE_URL is unset (only purges need no base).
PLACEHOLDER_BASE_URL = "http://localhost"


@dataclass(frozen=True, slots=True)
class Changes:
    """What one look found."""

    version: ContentVersion
    #: Feed documents whose bytes changed (new ones included), by path: "/feeds/innlent/rss.xml".
    documents: tuple[str, ...]
    #: Feed documents that were there and are not now (their scope went): purged, not announced.
    gone: tuple[str, ...]
    #: Surrogate keys whose cached copies are stale now.
    keys: frozenset[str]
    #: How many scopes were described, and how many documents rendered, to find that out.
    scopes_looked_at: int
    documents_rendered: int

    def __bool__(self) -> bool:
        return bool(self.documents or self.keys)


def fingerprint(value: object) -> str:
    """A digest of a description or an article, exact in every field."""
    return hashlib.blake2b(msgspec.msgpack.encode(value), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Seen:
    """Where a public article stands: what it is, its month, its section and its topics.

    An empty fingerprint is one not known: the article is taken as changed when it is looked at."""

    fingerprint: str
    month: str
    section: str
    topics: tuple[str, ...]

    @classmethod
    def of(cls, article: Article, zone: ZoneInfo) -> Seen:
        """Where the article stands now."""
        topics = tuple(topic.slug for topic in article.topics)
        return cls(fingerprint(article), month_of(article.published, zone), article.section, topics)

    @property
    def scopes(self) -> set[Scope]:
        return {Scope(), Scope(section=self.section), *(Scope(topic=topic) for topic in self.topics)}

    def archives(self) -> set[Scope]:
        """The months of the archives that hold it, in each of its scopes (a busy month's
        documents are its days or hours)."""
        return {scope.archive(self.month) for scope in self.scopes}


class ChangeTracker:
    """Remembers what every feed document was, and finds the ones whose bytes changed since.

    Subscription feeds are compared by the digest of their bytes. Archive documents (a month of a
    scope, RFC 5005) are too many to render for comparison (dozens of months per scope, thousands
    of items in the site's): one changed when an article in it changed, came or went, and its
    neighbours when a month came or went, which is known from every public article's fingerprint,
    month and scopes, read once at the first look.

    Not thread-safe: one thread of the indexer's process calls `look` and `look_at_archives`.
    """

    def __init__(
        self, publisher: Publisher, state_file: Path | None = None, base_url: str | None = None, cached: bool = False
    ) -> None:
        """`cached`: documents are rendered through the publisher's render cache (as the service
        answers them), for a caller that is about to ask for the same documents: the static export."""
        self.publisher = publisher
        self.state_file = state_file
        self.base_url = base_url or publisher.settings.base_url or PLACEHOLDER_BASE_URL
        self.cached = cached
        #: Digest of each subscription document's bytes, by path.
        self._documents: dict[str, str] = {}
        #: Fingerprint of each subscription scope's description, by its feed path.
        self._scopes: dict[str, str] = {}
        #: The articles (by path) in each scope's subscription feeds, as last described.
        self._members: dict[Scope, frozenset[str]] = {}
        #: Every public article, by path; None until the first look has read them all.
        self._known: dict[str, Seen] | None = None
        #: Archive months to look at after the subscription feeds: the months articles left or
        #: joined, and whether each is known to have held an article before.
        self._archives_due: dict[Scope, bool] = {}
        #: The archive documents inside each month looked at, as they were then (its own, or
        #: those of its days or hours).
        self._documents_in: dict[Scope, set[Scope]] = {}
        self._load()

    @property
    def known(self) -> dict[str, Seen] | None:
        """Every public article by path, as the last look left them; None before the first."""
        return self._known

    def resume(self, documents: Mapping[str, str], known: Mapping[str, Seen]) -> None:
        """Starts from what another record says was published (a static export's manifest): the
        digest of every feed document's bytes by path, subscription and archive ones, and where
        every public article stood. The next look with bundles compares with these; a scope whose
        description is not known is rendered and compared by its documents' digests."""
        self._documents, self._scopes, self._documents_in = {}, {}, {}
        for path, digest in documents.items():
            found = scope_of_document(path)
            if found is None:
                continue
            scope, period = found
            if period is None:
                self._documents[path] = digest
                self._scopes[scope.feed_path] = ""  # there, and its description not known
            else:
                self._documents_in.setdefault(scope.archive(period[:7]), set()).add(scope.archive(period))
        self._known = dict(known)

    def look(self, bundles: Collection[str] | None) -> Changes:
        """Describes the subscription feeds the change may touch, renders those whose description
        changed, and says which documents changed bytes. `bundles` names the bundles ("section/slug")
        changed since the last look, or is None when anything may have changed. The archive
        documents it touched are looked at by `look_at_archives`, next.

        With no state at all (a first start), everything is taken as it is: nothing is announced.
        Raises IndexUnavailable if the index cannot be read; nothing is recorded then.
        """
        baseline = not self._documents
        version = self.publisher.store.version()
        now = self.publisher.clock()
        zone = ZoneInfo(self.publisher.store.site().timezone)
        articles_changed: set[str] = set()
        if bundles is None or self._known is None:
            scopes = self._every_scope(now)
            everything = self._every_article(now, zone)
            if self._known is not None:
                for path in self._known.keys() | everything.keys():
                    if self._moved(path, self._known.get(path), everything.get(path)):
                        articles_changed.add(path)
            self._known = everything
        else:
            scopes = {Scope()}
            for bundle in bundles:
                path = f"/{bundle}/"
                scopes.update(scope for scope, members in self._members.items() if path in members)
                section, _, slug = bundle.partition("/")
                try:
                    seen: Seen | None = Seen.of(self.publisher.store.article(section, slug, now), zone)
                except NotFound:
                    seen = None
                before = self._known.get(path)
                for one in (before, seen):
                    scopes.update(() if one is None else one.scopes)
                if self._moved(path, before, seen):
                    articles_changed.add(path)
                if seen is None:
                    self._known.pop(path, None)
                else:
                    self._known[path] = seen
        changed: list[str] = []
        gone: list[str] = []
        keys: set[str] = set()
        rendered = 0
        for scope in sorted(scopes, key=lambda scope: scope.feed_path):
            before_count = len(changed) + len(gone)
            rendered += self._look_at(scope, changed, gone)
            if len(changed) + len(gone) > before_count:
                keys.add(edge.page_key(scope.page_path))
        keys.update(edge.article_key(path) for path in articles_changed)
        keys.update(f"feed:{document}" for document in (*changed, *gone))
        if keys:
            keys.add(edge.page_key(Scope().page_path))  # the front page lists the newest, topics and counts
        if baseline:
            changed, gone, keys = [], [], set()
        if changed or gone or baseline:
            self._save()
        return Changes(version, tuple(changed), tuple(gone), frozenset(keys), len(scopes), rendered)

    def look_at_archives(self) -> Changes:
        """The archive documents the last look touched: every document inside each month an
        article joined or left, those that went, and the neighbours of a month whose documents
        came or went (their prev-archive and next-archive links)."""
        version = self.publisher.store.version()
        now = self.publisher.clock()
        site = self.publisher.store.site()
        zone = ZoneInfo(site.timezone)
        due, self._archives_due = self._archives_due, {}
        changed: set[Scope] = set()
        gone: set[Scope] = set()
        for month_scope in sorted(due, key=_path):
            held = due[month_scope]
            scope, month = month_scope.current, periods.parse(month_scope.month or "")
            plan = self.publisher.archive_plan(scope, site, now)
            inside = {scope.archive(period.name) for period in plan.within(month)}
            before = self._documents_in.get(month_scope)
            if before is not None:
                moved = inside != before
            else:
                # Not looked at since this process started: it had its own document if it held an
                # article, and its neighbours' links change if it came, went or is cut finer.
                before = {month_scope} if held else set()
                moved = not held or not inside or inside != {month_scope}
            gone.update(before - inside)
            changed.update(inside)
            if moved:
                start, end = month.span(zone)
                older, newer = self.publisher.store.published_near(start, end, now, scope.section, scope.topic)
                changed.update(scope.archive(plan.period_of(moment).name) for moment in (older, newer) if moment)
            self._documents_in[month_scope] = inside
        gone -= changed
        documents = [archive.document_path(f.file_name) for archive in sorted(changed, key=_path) for f in FORMATS]
        went = [archive.document_path(f.file_name) for archive in sorted(gone, key=_path) for f in FORMATS]
        keys = {f"feed:{document}" for document in (*documents, *went)}
        keys.update(edge.page_key(archive.page_path) for archive in changed | gone)
        return Changes(version, tuple(documents), tuple(went), frozenset(keys), len(due), 0)

    def _moved(self, path: str, before: Seen | None, after: Seen | None) -> bool:
        """Records which archive documents an article's change touches; True if it changed at all."""
        if before == after:
            return False
        held_before = set() if before is None else before.archives()
        for archive in held_before:
            self._archives_due[archive] = True
        for archive in set() if after is None else after.archives():
            self._archives_due[archive] = self._archives_due.get(archive, False) or archive in held_before
        return True

    def _every_article(self, now: datetime, zone: ZoneInfo) -> dict[str, Seen]:
        """Every public article, read through the site's subscription feed and then its archive."""
        found: dict[str, Seen] = {}
        scope: Scope | None = Scope()
        while scope is not None:
            feed = self.publisher.feed(scope, self.base_url)
            found.update((article.path, Seen.of(article, zone)) for article in feed.articles)
            scope = None if feed.archive.previous is None else Scope(month=feed.archive.previous)
        return found

    def _every_scope(self, now: datetime) -> set[Scope]:
        store = self.publisher.store
        scopes = {Scope(), *(Scope(section=section.slug) for section in store.sections())}
        scopes.update(Scope(topic=count.topic.slug) for count in store.topics(now))
        # Those that had feeds and may have none now, e.g. a topic whose last article went.
        scopes.update(self._members)
        known = {scope.feed_path for scope in scopes}
        for feed_path in self._scopes:
            if feed_path not in known:
                scopes.add(_scope_of(feed_path))
        return scopes

    def _look_at(self, scope: Scope, changed: list[str], gone: list[str]) -> int:
        """Adds the scope's documents whose bytes changed to `changed` (or that went, to `gone`);
        returns how many were rendered."""
        documents = [scope.document_path(format_.file_name) for format_ in FORMATS]
        try:
            feed = self.publisher.feed(scope, self.base_url)
        except NotFound:
            # Gone: its documents now answer 404, and caches must not keep the old ones.
            self._members.pop(scope, None)
            if self._scopes.pop(scope.feed_path, None) is not None:
                gone.extend(document for document in documents if self._documents.pop(document, None))
            return 0
        self._members[scope] = frozenset(article.path for article in feed.articles)
        described = fingerprint(feed)
        if self._scopes.get(feed.scope.feed_path) == described and all(d in self._documents for d in documents):
            return 0
        digests: list[str] = []
        try:
            for format_ in FORMATS:
                if self.cached:
                    body = self.publisher.rendered(scope, format_, self.base_url).body
                else:
                    body = format_.render(feed)
                digests.append(body_digest(body))
        except IncompleteRender as error:
            log.warning("%s: not compared this time: %s", scope.feed_path, error)
            return len(digests)
        for document, digest in zip(documents, digests, strict=True):
            if self._documents.get(document) != digest:
                changed.append(document)
                self._documents[document] = digest
        self._scopes[scope.feed_path] = described
        return len(digests)

    # -- the state file ----------------------------------------------------------

    def _load(self) -> None:
        if self.state_file is None:
            return
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
            if state.get("version") != STATE_VERSION or state.get("base_url") != self.base_url:
                return
            documents, scopes = dict(state["documents"]), dict(state["scopes"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
            log.warning("%s: not used (%s); taking feeds as they are", self.state_file, error)
            return
        self._documents = {str(k): str(v) for k, v in documents.items()}
        self._scopes = {str(k): str(v) for k, v in scopes.items()}

    def _save(self) -> None:
        if self.state_file is None:
            return
        state = {"version": STATE_VERSION, "base_url": self.base_url, "documents": self._documents,
                 "scopes": self._scopes}  # fmt: skip
        temporary = self.state_file.with_suffix(f".{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps(state, sort_keys=True), encoding="utf-8")
            os.replace(temporary, self.state_file)
        except OSError as error:
            # A full or read-only disk: announcing goes on; a restart may announce some feeds again.
            log.warning("cannot record what was announced: %s", error)
            with contextlib.suppress(OSError):
                temporary.unlink()


def _path(scope: Scope) -> str:
    return scope.feed_path


_DOCUMENT_NAMES = frozenset(format_.file_name for format_ in FORMATS)


def scope_of_document(path: str) -> tuple[Scope, str | None] | None:
    """The scope of a feed document's path ("/feeds/innlent/archive/2023-09-17/rss.xml"), and the
    period of an archive document; None for a path that is no feed document."""
    folder, _, name = path.rpartition("/")
    if name not in _DOCUMENT_NAMES or not (folder + "/").startswith("/feeds/"):
        return None
    base, archived, period = folder.partition("/archive/")
    if archived and ("/" in period or not period):
        return None
    return _scope_of(base), (period if archived else None)


def _scope_of(feed_path: str) -> Scope:
    parts = feed_path.strip("/").split("/")
    if len(parts) == 3 and parts[1] == "topics":
        return Scope(topic=parts[2])
    if len(parts) == 2:
        return Scope(section=parts[1])
    return Scope()
