"""RSS 2.0 and Atom 1.0 documents, written by feedgen with the newsroom extension."""

from __future__ import annotations

from feedgen.feed import FeedGenerator

from ..description import Feed
from .newsroom_extension import NewsroomEntryExtension, NewsroomExtension, Photo

RSS_FILE = "rss.xml"
ATOM_FILE = "atom.xml"
RSS_MEDIA_TYPE = "application/rss+xml"
ATOM_MEDIA_TYPE = "application/atom+xml"
EXTENSION = "newsroom"


def render_rss(feed: Feed) -> bytes:
    """The feed as RSS 2.0, UTF-8."""
    generator = _generator(feed, RSS_FILE, RSS_MEDIA_TYPE)
    result: bytes = generator.rss_str(pretty=False)
    return result


def render_atom(feed: Feed) -> bytes:
    """The feed as Atom 1.0, UTF-8."""
    generator = _generator(feed, ATOM_FILE, ATOM_MEDIA_TYPE)
    result: bytes = generator.atom_str(pretty=False)
    return result


def _generator(feed: Feed, file_name: str, media_type: str) -> FeedGenerator:
    generator = FeedGenerator()
    generator.register_extension(EXTENSION, NewsroomExtension, NewsroomEntryExtension)
    getattr(generator, EXTENSION).last_build = feed.updated if feed.articles else None
    generator.id(feed.feed_id(file_name))
    generator.title(feed.title)
    generator.description(feed.description or feed.title)
    generator.language(feed.language)
    generator.link(href=feed.self_url(file_name), rel="self", type=media_type)
    # Last, because feedgen makes the last link the RSS channel's <link>.
    generator.link(href=feed.page_url, rel="alternate", type="text/html")
    generator.author({"name": feed.publisher})
    generator.updated(feed.updated)
    generator.ttl(feed.ttl_minutes)
    generator.generator(feed.generator)
    generator.docs("https://www.rssboard.org/rss-specification")

    for article in feed.articles:
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
        extension.authors = article.authors
        extension.photos = tuple(
            Photo(
                url=feed.links.image(image),
                media_type=image.media_type,
                length=image.length,
                width=image.width,
                height=image.height,
                caption=image.caption,
                credit=image.credit,
            )
            for image in article.images
        )
    return generator
