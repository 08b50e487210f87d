"""Written items kept across documents and renders: one bounded cache per renderer.

An article's item is the same bytes in every feed that holds it (the site's, its section's, its
topics') and in every render until the article changes, so a renderer keeps the items it wrote and
writes only those it does not have. A renderer holds the items of the document it writes until it
has written it: one pushed out of the cache meanwhile is never lost from that document.
"""

from __future__ import annotations

from ..bounded import BoundedCache

#: Articles whose items each format keeps by default: the newest five hundred, about 5 MB a format.
ARTICLES_KEPT = 512

_caches: list[tuple[BoundedCache[bytes], int]] = []


def item_cache(formats: int) -> BoundedCache[bytes]:
    """A cache for the items of `formats` formats, with room for ARTICLES_KEPT articles in each."""
    cache: BoundedCache[bytes] = BoundedCache(ARTICLES_KEPT * formats)
    _caches.append((cache, formats))
    return cache


def keep_items(articles: int) -> None:
    """From now on, keeps the items of at least `articles` articles in every format: a static export
    writes every article into several documents (its month of the site, of its section and of each
    topic)."""
    for cache, formats in _caches:
        cache.capacity = max(cache.capacity, articles * formats)
