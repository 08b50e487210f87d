"""OPML 2.0 subscription lists: every feed of the site, for readers that import many at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from .newsroom_extension import rfc822

OPML_FILE = "feeds.opml"
OPML_MEDIA_TYPE = "text/x-opml"


@dataclass(frozen=True, slots=True)
class Subscription:
    """One feed as a reader subscribes to it."""

    title: str
    #: The feed document's absolute URL.
    xml_url: str
    #: The HTML page of the same articles.
    html_url: str


@dataclass(frozen=True, slots=True)
class Directory:
    """Every feed of the site, in groups a reader may keep as folders."""

    title: str
    language: str
    #: The newest article's date (a new section or topic comes with one): the same on every node.
    modified: datetime
    #: The whole site's feed first, outside any group.
    site: Subscription
    #: (group title, its feeds), e.g. ("Efnisflokkar", sections).
    groups: Sequence[tuple[str, Sequence[Subscription]]]


def render_opml(directory: Directory) -> bytes:
    """The directory as OPML 2.0, UTF-8: one `type="rss"` outline per feed, the spec's type for any feed."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = directory.title
    etree.SubElement(head, "dateModified").text = rfc822(directory.modified)
    etree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = etree.SubElement(root, "body")
    _outline(body, directory.site, directory.language)
    for title, subscriptions in directory.groups:
        if subscriptions:
            group = etree.SubElement(body, "outline", text=title, title=title)
            for subscription in subscriptions:
                _outline(group, subscription, directory.language)
    return etree.tostring(root, encoding="utf-8", xml_declaration=True, pretty_print=True)


def _outline(parent: etree._Element, subscription: Subscription, language: str) -> None:
    etree.SubElement(
        parent,
        "outline",
        type="rss",
        text=subscription.title,
        title=subscription.title,
        xmlUrl=subscription.xml_url,
        htmlUrl=subscription.html_url,
        language=language,
    )
