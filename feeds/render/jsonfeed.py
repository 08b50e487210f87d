"""JSON Feed 1.1 documents, with each photo's caption and credit.

Items are kept once written (render.kept) and set into the document as bytes: the result is byte
for byte what `json.dumps` writes for the whole document at once.
"""

from __future__ import annotations

import json
from typing import Any

from ..description import Feed
from ..model import Article
from .kept import item_cache

JSON_FILE = "feed.json"
JSON_MEDIA_TYPE = "application/feed+json"
#: Where the items go in the document written without them. Outside a string only: within one,
#: JSON escapes every quote.
_ITEMS = b'"items":[]'

_items = item_cache(formats=1)


def render_json(feed: Feed) -> bytes:
    """The feed as JSON Feed 1.1, UTF-8; photos are attachments and, with caption and credit, `_media`.

    There is no feed-level `authors`: readers copy it onto every item, naming the site as an author.
    """
    document: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed.title,
        "home_page_url": feed.page_url,
        # The feed's identity, the same in its archive documents; `next_url` pages back through them.
        "feed_url": feed.current_url(JSON_FILE),
        "description": feed.description or feed.title,
        "language": feed.language,
        "items": [],
    }
    if feed.archive.previous is not None:
        document["next_url"] = feed.archive_url(feed.archive.previous, JSON_FILE)
    if feed.scope.month is not None:
        document["_archive"] = _archive(feed)
    if feed.hubs:
        document["hubs"] = [{"type": "WebSub", "url": hub} for hub in feed.hubs]
    head = _dumps(document)
    cut = head.index(_ITEMS) + len(_ITEMS) - 1
    # Held here, not looked up again: keeping an item may push out another of this document.
    items = [_written_item(feed, article) for article in feed.articles]
    return b"".join((head[:cut], b",".join(items), head[cut:]))


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _written_item(feed: Feed, article: Article) -> bytes:
    # Everything an item's bytes depend on.
    key = (article, feed.links.base_url, feed.authority, feed.section_titles.get(article.section, article.section))
    item = _items.get(key)
    if item is None:
        item = _dumps(_item(feed, article))
    # Kept again when found too, as RSS and Atom items are: the items of feeds still asked for are
    # the last to be forgotten.
    _items.put(key, item)
    return item


def _archive(feed: Feed) -> dict[str, Any]:
    """RFC 5005's archive links, which JSON Feed lacks, as an extension of an archive document."""
    archive: dict[str, Any] = {
        "about": "https://www.rfc-editor.org/rfc/rfc5005",
        "self": feed.self_url(JSON_FILE),
        "complete": feed.archive.complete,
    }
    if feed.archive.previous is not None:
        archive["prev_archive"] = feed.archive_url(feed.archive.previous, JSON_FILE)
    if feed.archive.following is not None:
        archive["next_archive"] = feed.archive_url(feed.archive.following, JSON_FILE)
    return archive


def _item(feed: Feed, article: Article) -> dict[str, Any]:
    section = feed.section_titles.get(article.section, article.section)
    item: dict[str, Any] = {
        "id": feed.guid(article),
        "url": feed.links.article(article),
        "title": article.title,
        "content_html": feed.links.body(article),
        "summary": article.summary,
        "date_published": article.published.isoformat(),
        "date_modified": article.updated.isoformat(),
        "tags": [section, *(topic.name for topic in article.topics)],
    }
    if article.authors:
        item["authors"] = [{"name": author} for author in article.authors]
    if article.images:
        item["image"] = feed.links.image(article.images[0])
        item["attachments"] = [
            {
                "url": feed.links.image(image),
                "mime_type": image.media_type,
                "title": image.credited_caption,
                "size_in_bytes": image.length,
            }
            for image in article.images
        ]
        item["_media"] = {
            "about": "https://www.rssboard.org/media-rss",
            "images": [
                {
                    "url": feed.links.image(image),
                    "width": image.width,
                    "height": image.height,
                    "caption": image.caption,
                    "credit": image.credit,
                    "alt": image.alt,
                    "thumbnail": dict(zip(("url", "width", "height"), feed.links.thumbnail(image), strict=True)),
                }
                for image in article.images
            ],
        }
    return item
