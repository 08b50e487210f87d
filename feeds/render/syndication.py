"""RSS 2.0 and Atom 1.0 documents, written by feedgen with the newsroom extension.

Items are kept once written (render.kept): a feed re-rendered because one article changed writes
one item with feedgen and reuses the rest. The result is byte for byte what feedgen writes for the
whole feed at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from feedgen.feed import FeedGenerator

from ..description import Feed, byline
from ..errors import IncompleteRender
from ..model import Article
from .kept import ARTICLES_KEPT, item_cache
from .newsroom_extension import NewsroomEntryExtension, NewsroomExtension

RSS_FILE = "rss.xml"
ATOM_FILE = "atom.xml"
RSS_MEDIA_TYPE = "application/rss+xml"
ATOM_MEDIA_TYPE = "application/atom+xml"
EXTENSION = "newsroom"


#: Items kept written, across feeds and renders, in RSS and Atom.
ITEM_CACHE_SIZE = 2 * ARTICLES_KEPT


@dataclass(frozen=True, slots=True)
class _Syntax:
    file_name: str
    media_type: str
    #: Element names are only ever markup in feedgen's output: text and attributes escape "<".
    item_start: bytes
    item_end: bytes
    #: The head document's closing, before which the items go.
    closing: bytes
    write: Callable[[FeedGenerator], bytes]


RSS = _Syntax(RSS_FILE, RSS_MEDIA_TYPE, b"<item>", b"</item>", b"</channel>", lambda g: g.rss_str(pretty=False))
ATOM = _Syntax(ATOM_FILE, ATOM_MEDIA_TYPE, b"<entry>", b"</entry>", b"</feed>", lambda g: g.atom_str(pretty=False))


def render_rss(feed: Feed) -> bytes:
    """The feed as RSS 2.0, UTF-8."""
    return _render(feed, RSS)


def render_atom(feed: Feed) -> bytes:
    """The feed as Atom 1.0, UTF-8."""
    return _render(feed, ATOM)


def _render(feed: Feed, syntax: _Syntax) -> bytes:
    keys = [_item_key(feed, syntax, article) for article in feed.articles]
    # Held here, not looked up again: keeping the items written below may push these out of the cache.
    found = [_items.get(key) for key in keys]
    missing = [article for article, item in zip(feed.articles, found, strict=True) if item is None]
    if not missing:
        written: Iterator[bytes] = iter(())
    elif len(missing) == len(keys):
        document = syntax.write(_generator(feed, syntax, feed.articles))
        _keep(keys, _complete_items(document, syntax, len(keys)))
        return document
    else:
        written = iter(_complete_items(syntax.write(_generator(feed, syntax, missing)), syntax, len(missing)))
    items = [item if item is not None else next(written) for item in found]
    # Kept again, the ones found too: the items of feeds still asked for are the last to be forgotten.
    _keep(keys, items)
    head = syntax.write(_generator(feed, syntax, ()))
    cut = head.rindex(syntax.closing)
    return b"".join((head[:cut], *items, head[cut:]))


def _complete_items(document: bytes, syntax: _Syntax, expected: int) -> list[bytes]:
    """The document's items, which must be exactly the `expected` number: a feed never loses one."""
    items = _split(document, syntax)
    if len(items) != expected:
        raise IncompleteRender(f"{syntax.file_name}: {expected} items described, {len(items)} written")
    return items


def _keep(keys: list[tuple[object, ...]], items: list[bytes]) -> None:
    for key, item in zip(keys, items, strict=True):
        _items.put(key, item)


def _item_key(feed: Feed, syntax: _Syntax, article: Article) -> tuple[object, ...]:
    """Everything an item's bytes depend on."""
    section = feed.section_titles.get(article.section, article.section)
    return (syntax.file_name, article, feed.links.base_url, feed.authority, section, feed.publisher, feed.language)


def _split(document: bytes, syntax: _Syntax) -> list[bytes]:
    items = []
    end = 0
    while (start := document.find(syntax.item_start, end)) != -1:
        end = document.index(syntax.item_end, start) + len(syntax.item_end)
        items.append(document[start:end])
    return items


_items = item_cache(formats=2)


def _archive_links(feed: Feed, file_name: str) -> tuple[tuple[str, str], ...]:
    """RFC 5005 links as (rel, href): an archive document names the feed and both its neighbours."""
    links = []
    if feed.scope.month is not None:
        links.append(("current", feed.current_url(file_name)))
    if feed.archive.previous is not None:
        links.append(("prev-archive", feed.archive_url(feed.archive.previous, file_name)))
    if feed.archive.following is not None:
        links.append(("next-archive", feed.archive_url(feed.archive.following, file_name)))
    return tuple(links)


def _generator(feed: Feed, syntax: _Syntax, articles: tuple[Article, ...] | list[Article]) -> FeedGenerator:
    file_name, media_type = syntax.file_name, syntax.media_type
    generator = FeedGenerator()
    generator.register_extension(EXTENSION, NewsroomExtension, NewsroomEntryExtension)
    getattr(generator, EXTENSION).last_build = feed.updated if feed.articles else None
    generator.id(feed.feed_id(file_name))
    generator.title(feed.title)
    generator.description(feed.description or feed.title)
    generator.language(feed.language)
    generator.link(href=feed.self_url(file_name), rel="self", type=media_type)
    # Atom only: feedgen writes no hub link in RSS, so the extension adds those.
    for hub in feed.hubs:
        generator.link(href=hub, rel="hub")
    getattr(generator, EXTENSION).hubs = feed.hubs
    archive_links = _archive_links(feed, file_name)
    for rel, href in archive_links:
        generator.link(href=href, rel=rel, type=media_type)
    getattr(generator, EXTENSION).archive_links = archive_links
    getattr(generator, EXTENSION).archived = feed.scope.month is not None
    # Last, because feedgen makes the last link the RSS channel's <link>.
    generator.link(href=feed.page_url, rel="alternate", type="text/html")
    generator.author({"name": feed.publisher})
    generator.updated(feed.updated)
    generator.ttl(feed.ttl_minutes)
    generator.generator(feed.generator)
    generator.docs("https://www.rssboard.org/rss-specification")

    for article in articles:
        entry = generator.add_entry(order="append")
        entry.guid(feed.guid(article), permalink=False)
        entry.title(article.title)
        entry.link(href=feed.links.article(article), rel="alternate", type="text/html")
        entry.updated(article.updated)
        for author in article.authors or (feed.publisher,):
            entry.author({"name": author})
        entry.summary(article.summary or article.title)
        entry.content(feed.links.body(article), type="html")
        section = feed.section_titles.get(article.section, article.section)
        entry.category(
            [{"term": section, "label": section}]
            + [{"term": topic.name, "label": topic.name} for topic in article.topics]
        )
        extension: NewsroomEntryExtension = getattr(entry, EXTENSION)
        extension.published = article.published
        extension.byline = byline(article.authors, feed.language)
        extension.photos = tuple(
            (feed.links.image(image), image, feed.links.thumbnail(image)) for image in article.images
        )
    return generator
