"""The baseline: a Flask route that rebuilds the site feed with plain feedgen on every request.

The newest 50 articles are loaded once, at startup, from the service's own index (built by
the harness beforehand), so each request costs only what feedgen costs.
"""

from __future__ import annotations

import sys

from feedgen.feed import FeedGenerator
from flask import Flask, Response

from feeds import create_app
from feeds.description import Links, authority_of
from feeds.model import Article, Site
from feeds.publisher import utc_now

FEED_SIZE = 50


def _load() -> tuple[Site, str, tuple[Article, ...]]:
    publisher = create_app().extensions["feeds"]
    site: Site = publisher.store.site()
    base_url = publisher.settings.base_url or site.base_url or "http://127.0.0.1"
    return site, base_url, publisher.store.latest(utc_now(), FEED_SIZE)


SITE, BASE_URL, ARTICLES = _load()
print(f"naive app: {len(ARTICLES)} articles loaded from the service's index", file=sys.stderr, flush=True)
LINKS = Links(BASE_URL)
AUTHORITY = authority_of(SITE, BASE_URL)

app = Flask(__name__)


@app.get("/feeds/rss.xml")
def rss() -> Response:
    feed = FeedGenerator()
    feed.title(SITE.title)
    feed.link(href=LINKS.to("/"), rel="alternate")
    feed.description(SITE.description or SITE.title)
    feed.language(SITE.language)
    for article in ARTICLES:
        entry = feed.add_entry(order="append")
        entry.title(article.title)
        entry.link(href=LINKS.article(article))
        entry.description(article.summary)
        entry.content(LINKS.body(article), type="CDATA")
        entry.guid(article.guid(AUTHORITY), permalink=False)
        entry.pubDate(article.published)
        if article.images:
            lead = article.images[0]
            entry.enclosure(LINKS.image(lead), str(lead.length), lead.media_type)
    return Response(feed.rss_str(), content_type="application/rss+xml; charset=utf-8")
