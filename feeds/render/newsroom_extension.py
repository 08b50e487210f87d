"""A feedgen extension for what feedgen 1.0 lacks or gets wrong for news photos.

It writes, per item: every photo as its own `media:content` with caption, credit and
thumbnail (never in a `media:group`, where readers show one image); RSS's single
enclosure; Atom's links with their rel, type, length and title; `one `dc:creator` holding every author;
and every date through `email.utils`, because feedgen's date helper switches the
process-wide locale.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from lxml import etree

from ..model import Image

MEDIA_NS = "http://search.yahoo.com/mrss/"
DC_NS = "http://purl.org/dc/elements/1.1/"
ATOM_NS = "http://www.w3.org/2005/Atom"
#: RFC 5005, Feed Paging and Archiving.
FH_NS = "http://purl.org/syndication/history/1.0"


#: A photo as a feed shows it: its absolute URL, the photo, and its thumbnail's URL, width and height.
Photo = tuple[str, Image, tuple[str, int, int]]


def rfc822(moment: datetime) -> str:
    """RFC 822 with a four-digit year, whatever the process locale."""
    return format_datetime(moment, usegmt=moment.utcoffset() is not None and not moment.utcoffset())


class NewsroomExtension(BaseExtension):  # type: ignore[misc]
    """Feed-level part: the namespaces, `lastBuildDate` written locale-free, RSS's WebSub hub and
    archive links, and RFC 5005's `fh:archive` in archive documents."""

    def __init__(self) -> None:
        self.last_build: datetime | None = None
        self.hubs: tuple[str, ...] = ()
        #: RFC 5005 links as (rel, href): current, prev-archive, next-archive.
        self.archive_links: tuple[tuple[str, str], ...] = ()
        #: Whether this is an archive document.
        self.archived = False

    def extend_ns(self) -> dict[str, str]:
        namespaces = {"media": MEDIA_NS, "dc": DC_NS}
        if self.archived:
            namespaces["fh"] = FH_NS
        return namespaces

    def extend_atom(self, feed: etree._Element) -> etree._Element:
        if self.archived:
            etree.SubElement(feed, f"{{{FH_NS}}}archive")
        return feed

    def extend_rss(self, feed: etree._Element) -> etree._Element:
        channel = feed.find("channel")
        links = [("hub", hub) for hub in self.hubs] + list(self.archive_links)
        if channel is not None and links:
            # Beside the self link, as WebSub's discovery asks: `atom:link rel="hub"`, one per hub.
            self_link = channel.find(f"{{{ATOM_NS}}}link[@rel='self']")
            at = len(channel) if self_link is None else channel.index(self_link) + 1
            for offset, (rel, href) in enumerate(links):
                link = etree.Element(f"{{{ATOM_NS}}}link", href=href, rel=rel)
                channel.insert(at + offset, link)
        if channel is not None and self.archived:
            etree.SubElement(channel, f"{{{FH_NS}}}archive")
        element = None if channel is None else channel.find("lastBuildDate")
        if channel is None or element is None:
            return feed
        if self.last_build is None:
            channel.remove(element)
        else:
            element.text = rfc822(self.last_build)
        return feed


class NewsroomEntryExtension(BaseEntryExtension):  # type: ignore[misc]
    """Item-level part; set `published`, `byline` and `photos` before rendering."""

    def __init__(self) -> None:
        self.published: datetime | None = None
        #: Every author's name in one text; empty for an article that names none.
        self.byline = ""
        self.photos: tuple[Photo, ...] = ()

    def extend_rss(self, item: etree._Element) -> etree._Element:
        if self.published is not None:
            etree.SubElement(item, "pubDate").text = rfc822(self.published)
        if self.byline:
            etree.SubElement(item, f"{{{DC_NS}}}creator").text = self.byline
        if self.photos:
            url, lead, _ = self.photos[0]
            etree.SubElement(item, "enclosure", url=url, length=str(lead.length), type=lead.media_type)
        self._add_media(item)
        return item

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        # feedgen builds Atom elements without a namespace and declares Atom as the default on
        # the root, so ours are made the same way. It also writes an entry's links with href
        # alone; the only one it is given is the page.
        for link in entry.findall("link"):
            if link.get("rel") is None:
                link.set("rel", "alternate")
                link.set("type", "text/html")
        if self.published is not None:
            etree.SubElement(entry, "published").text = self.published.isoformat()
        for url, photo, _ in self.photos:
            etree.SubElement(
                entry,
                "link",
                rel="enclosure",
                href=url,
                type=photo.media_type,
                length=str(photo.length),
                title=photo.credited_caption,
            )
        self._add_media(entry)
        return entry

    def _add_media(self, parent: etree._Element) -> None:
        for url, photo, (thumbnail, width, height) in self.photos:
            content = etree.SubElement(
                parent,
                f"{{{MEDIA_NS}}}content",
                url=url,
                medium="image",
                type=photo.media_type,
                width=str(photo.width),
                height=str(photo.height),
                fileSize=str(photo.length),
            )
            etree.SubElement(content, f"{{{MEDIA_NS}}}description", type="plain").text = photo.caption
            etree.SubElement(content, f"{{{MEDIA_NS}}}credit").text = photo.credit
            etree.SubElement(content, f"{{{MEDIA_NS}}}thumbnail", url=thumbnail, width=str(width), height=str(height))
