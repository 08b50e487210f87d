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
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import msgspec

from . import edge
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


class ChangeTracker:
    """Remembers what every feed document was, and finds the ones whose bytes changed since.

    Not thread-safe: one thread of the indexer's process calls `look`.
    """

    def __init__(self, publisher: Publisher, state_file: Path | None = None) -> None:
        self.publisher = publisher
        self.state_file = state_file
        self.base_url = publisher.settings.base_url or PLACEHOLDER_BASE_URL
        #: Digest of each document's bytes, by path.
        self._documents: dict[str, str] = {}
        #: Fingerprint of each scope's description, by its feed path.
        self._scopes: dict[str, str] = {}
        #: The articles (by path) in each scope's feeds, as last described.
        self._members: dict[Scope, frozenset[str]] = {}
        #: Fingerprint of each article seen in a feed, or edited, by path.
        self._articles: dict[str, str] = {}
        self._load()

    def look(self, bundles: Collection[str] | None) -> Changes:
        """Describes the scopes the change may touch, renders those whose description changed, and
        says which documents changed bytes. `bundles` names the bundles ("section/slug") changed
        since the last look, or is None when anything may have changed.

        With no state at all (a first start), everything is taken as it is: nothing is announced.
        Raises IndexUnavailable if the index cannot be read; nothing is recorded then.
        """
        baseline = not self._documents
        version = self.publisher.store.version()
        now = self.publisher.clock()
        articles_changed: set[str] = set()
        if bundles is None or not self._members:
            scopes = self._every_scope(now)
        else:
            scopes = {Scope()}
            for bundle in bundles:
                path = f"/{bundle}/"
                scopes.update(scope for scope, members in self._members.items() if path in members)
                section, _, slug = bundle.partition("/")
                try:
                    article = self.publisher.store.article(section, slug, now)
                except NotFound:
                    self._articles.pop(path, None)
                    articles_changed.add(path)
                    continue
                scopes.add(Scope(section=article.section))
                scopes.update(Scope(topic=topic.slug) for topic in article.topics)
                if self._note_article(article):
                    articles_changed.add(path)
        changed: list[str] = []
        gone: list[str] = []
        keys: set[str] = set()
        rendered = 0
        for scope in sorted(scopes, key=lambda scope: scope.feed_path):
            before = len(changed) + len(gone)
            rendered += self._look_at(scope, changed, gone, articles_changed)
            if len(changed) + len(gone) > before:
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

    def _look_at(self, scope: Scope, changed: list[str], gone: list[str], articles_changed: set[str]) -> int:
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
        for article in feed.articles:
            if self._note_article(article):
                articles_changed.add(article.path)
        described = fingerprint(feed)
        if self._scopes.get(feed.scope.feed_path) == described and all(d in self._documents for d in documents):
            return 0
        digests: list[str] = []
        try:
            for format_ in FORMATS:
                digests.append(body_digest(format_.render(feed)))
        except IncompleteRender as error:
            log.warning("%s: not compared this time: %s", scope.feed_path, error)
            return len(digests)
        for document, digest in zip(documents, digests, strict=True):
            if self._documents.get(document) != digest:
                changed.append(document)
                self._documents[document] = digest
        self._scopes[scope.feed_path] = described
        return len(digests)

    def _note_article(self, article: Article) -> bool:
        """Records an article's fingerprint; True if it differs from a known earlier one."""
        described = fingerprint(article)
        before = self._articles.get(article.path)
        self._articles[article.path] = described
        return before is not None and before != described

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


def _scope_of(feed_path: str) -> Scope:
    parts = feed_path.strip("/").split("/")
    if len(parts) == 3 and parts[1] == "topics":
        return Scope(topic=parts[2])
    if len(parts) == 2:
        return Scope(section=parts[1])
    return Scope()
