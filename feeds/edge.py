"""What shared caches and WebSub hubs read from an answer: Cache-Control, surrogate keys and Link headers.

Every key is a kind and a path from the site root: `feed:` for a feed document, `page:` for an
HTML page, `article:` for an article (its page, its photos, and every feed and page that holds
it). A response names itself and every article in it, so purging one key reaches every cached
copy that shows what the key names. Varnish's xkey vmod and Fastly read the same space-separated
list, from `xkey` and `Surrogate-Key`.
"""

from __future__ import annotations

from collections.abc import Iterable

from .config import Settings
from .description import Feed, Scope
from .model import Article
from .render_cache import Headers

KEY_HEADERS = ("xkey", "Surrogate-Key")


def cache_control(settings: Settings, max_age: int | None = None) -> str:
    """Short for readers, long for shared caches (which are purged on change), stale on trouble.

    `max_age` is for what changes seldom (complete archive months, photo renditions); shared
    caches keep those at least as long.
    """
    reader = settings.max_age if max_age is None else max_age
    shared = settings.shared_max_age if max_age is None else max(max_age, settings.shared_max_age)
    return (
        f"public, max-age={reader}, s-maxage={shared}, "
        f"stale-while-revalidate={settings.stale_while_revalidate}, stale-if-error={settings.stale_if_error}"
    )


def feed_key(scope: Scope, file_name: str) -> str:
    return f"feed:{scope.document_path(file_name)}"


def page_key(path: str) -> str:
    """The key of an HTML page, by its path: "/" is the front page, the site scope's page."""
    return f"page:{path}"


def article_key(article: Article | str) -> str:
    """The key of an article, by the article or its path ("/innlent/gos/")."""
    return f"article:{article if isinstance(article, str) else article.path}"


def key_headers(keys: Iterable[str]) -> Headers:
    value = " ".join(dict.fromkeys(keys))
    return [(name, value) for name in KEY_HEADERS]


def feed_headers(feed: Feed, file_name: str) -> Headers:
    """What a feed document's 200 adds: its keys and, with hubs, its WebSub links (RFC 8288)."""
    headers = key_headers([feed_key(feed.scope, file_name), *(article_key(article) for article in feed.articles)])
    if feed.hubs:
        links = [f'<{hub}>; rel="hub"' for hub in feed.hubs] + [f'<{feed.self_url(file_name)}>; rel="self"']
        headers.append(("Link", ", ".join(links)))
    return headers
