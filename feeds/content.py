"""Reads stored page bundles into the model; raw front matter never leaves this module."""

from __future__ import annotations

import errno
import functools
import os
import re
import stat
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import front_matter, markup
from .bounded import BoundedCache
from .dates import parse_date
from .errors import ContentError, PhotoRefused
from .images import MAX_PHOTO_BYTES, MEASURED_KEPT, PHOTO_SUFFIXES, Measure, measure
from .model import Article, Image, Section, Site, Topic
from .slugs import SLUG_PATTERN, slugify

SITE_FILE = "_index.md"
SECTION_FILE = "_index.md"
ARTICLE_FILE = "index.md"
#: Names that would shadow the service's own URLs: never a section, whatever the folder holds.
RESERVED_SECTIONS = frozenset(
    {"feeds", "topics", "static", "archive", "healthz", "metrics", "favicon.ico", "robots.txt", "feeds.opml"}
)

_ARTICLE_KEYS = frozenset({"title", "date", "updated", "authors", "topics", "summary", "images", "draft", "id"})
_IMAGE_KEYS = frozenset({"file", "url", "caption", "credit", "alt", "type", "length", "width", "height"})
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*$")
#: The most an article or settings file may hold: a long article is a hundred kilobytes, and each
#: file is read whole into memory, in a worker process whose share of the indexer's is small.
MAX_TEXT_BYTES = 4_000_000
#: Topic names and bylines kept made (`_topic`, `_byline`), and the longest that is kept.
VOCABULARY_KEPT = 8192
VOCABULARY_NAME_CHARS = 200
#: A first line `---`, then whole lines up to the first other line `---`. Tried line by line, not
#: character by character: the front matter of every article passes through it.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n((?:.*\n)*?)---[ \t]*(?:\r?\n|\Z)")


def read_site(root: Path) -> Site:
    """The site's settings; raises ContentError for a file that cannot be used."""
    name = SITE_FILE
    meta, _ = _read_front_matter(root / name, name)
    _reject_unknown(meta, {"title", "description", "language", "timezone", "base_url"}, name)
    zone = _text(meta, "timezone", name) or "Atlantic/Reykjavik"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ContentError(name, f"unknown timezone {zone!r}") from None
    base_url = (_text(meta, "base_url", name) or "").rstrip("/") or None
    if base_url is not None and not re.match(r"^https?://[^/\s]+", base_url):
        raise ContentError(name, f"base_url {base_url!r} is not an absolute http(s) URL")
    return Site(
        title=_required_text(meta, "title", name),
        description=_text(meta, "description", name),
        language=_text(meta, "language", name) or "is",
        timezone=zone,
        base_url=base_url,
    )


def read_section(root: Path, slug: str) -> Section:
    """A section's title and description; the folder name stands in for a missing title."""
    name = f"{slug}/{SECTION_FILE}"
    check_section_slug(slug)
    if not (root / name).exists():
        return Section(slug=slug, title=slug, description="")
    meta, _ = _read_front_matter(root / name, name)
    _reject_unknown(meta, {"title", "description"}, name)
    return Section(
        slug=slug,
        title=_text(meta, "title", name) or slug,
        description=_text(meta, "description", name),
    )


def check_section_slug(slug: str) -> None:
    """Raises ContentError for a folder name that cannot be a section."""
    if slug in RESERVED_SECTIONS:
        raise ContentError(slug, f"{slug!r} is reserved for the service's own URLs")
    if not SLUG_PATTERN.match(slug):
        raise ContentError(slug, "a section folder's name must be lowercase ASCII words joined by hyphens")


def read_article(root: Path, section: str, slug: str, site: Site) -> Article | None:
    """The article in `root/section/slug/`, or None for a draft.

    Raises ContentError naming the file and the reason when it cannot be published.
    """
    bundle = f"{section}/{slug}"
    name = f"{bundle}/{ARTICLE_FILE}"
    if not SLUG_PATTERN.match(slug):
        raise ContentError(bundle, "an article folder's name must be lowercase ASCII words joined by hyphens")
    meta, body = _read_front_matter(f"{root}/{name}", name, root)  # a Path costs more than the parsing of a date
    _reject_unknown(meta, _ARTICLE_KEYS, name)
    draft = meta.get("draft", False)
    if not isinstance(draft, bool):
        raise ContentError(name, "draft must be true or false")
    if draft:
        return None

    title = _one_line(_required_text(meta, "title", name))
    if not title:
        raise ContentError(name, "title is empty")
    zone = ZoneInfo(site.timezone)
    published = _date(meta, "date", name, zone)
    if published is None:
        raise ContentError(name, "date is missing")
    updated = max(_date(meta, "updated", name, zone) or published, published)
    article_id = _text(meta, "id", name) or bundle
    if not _ID_PATTERN.match(article_id.replace("/", "-")):
        raise ContentError(name, f"id {article_id!r} may hold only letters, digits and . _ ~ -")

    page_path = f"/{bundle}/"
    found: list[Image] = []
    refused: list[PhotoRefused] = []
    for number, entry in enumerate(_list(meta, "images", name, allow_mappings=True), start=1):
        try:
            found.append(_image(root, bundle, entry, number, name))
        except PhotoRefused as error:
            # The article goes out without it; check and /healthz name it.
            refused.append(error)
    images = tuple(found)
    summary = _one_line(_text(meta, "summary", name))
    try:
        rendered = markup.render_body(
            body, page_path, images, frozenset(_file_of(error) for error in refused), lede=not summary
        )
    except (markup.UnknownPhoto, markup.BodyRefused) as error:
        raise ContentError(name, str(error)) from None
    topics: dict[str, Topic] = {}
    for topic_name in _list(meta, "topics", name):
        topic = _topic(topic_name)
        if not topic.slug:
            raise ContentError(name, f"topic {topic_name!r} has no letters or digits to name its URL")
        topics.setdefault(topic.slug, topic)

    return Article(
        id=article_id,
        section=section,
        slug=slug,
        title=title,
        published=published,
        updated=updated,
        tag_date=published.astimezone(zone).date().isoformat(),
        authors=tuple(map(_byline, _list(meta, "authors", name))),
        topics=tuple(topics.values()),
        summary=summary or rendered.first_paragraph,
        body_html=rendered.html,
        images=images,
        left_out=tuple(str(error) for error in refused),
    )


def _topic(name: str) -> Topic:
    """The topic a name in the front matter stands for."""
    return _known_topic(name) if len(name) <= VOCABULARY_NAME_CHARS else _topic_of(name)


def _byline(author: str) -> str:
    return _known_byline(author) if len(author) <= VOCABULARY_NAME_CHARS else markup.one_line(author)


def _topic_of(name: str) -> Topic:
    return Topic(name=markup.one_line(name), slug=slugify(name))


# Topics and bylines are a newsroom's vocabulary: a few thousand names, each met in thousands of
# articles. Made once (slugs were the largest part), and with the article file's path a string,
# reading an article took 8% fewer instructions.
_known_topic = functools.lru_cache(maxsize=VOCABULARY_KEPT)(_topic_of)
_known_byline = functools.lru_cache(maxsize=VOCABULARY_KEPT)(markup.one_line)


def _file_of(error: PhotoRefused) -> str:
    return error.path.rpartition("/")[2]


def _read_front_matter(path: str | Path, name: str, root: Path | None = None) -> tuple[Mapping[str, Any], str]:
    """The front matter and the body of the file; with `root`, a link out of it is refused."""
    try:
        raw = _read_inside(str(path), root)
    except _LeadsOutside:
        raise ContentError(name, "article file leads outside the content directory") from None
    except _NotRegular:
        raise ContentError(name, "is not a regular file") from None
    except _TooLarge as error:
        raise ContentError(name, str(error)) from None
    except FileNotFoundError:
        raise ContentError(name, "file is missing") from None
    except OSError as error:
        raise ContentError(name, f"cannot be read ({error.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ContentError(name, f"is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})") from None
    match = _FRONT_MATTER.match(text)
    if match is None:
        reason = (
            "front matter is not closed by a line '---'"
            if text.startswith("---")
            else "does not start with a front matter block ('---' on the first line)"
        )
        raise ContentError(name, reason)
    try:
        meta = front_matter.load(match[1])
    except front_matter.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 2}" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ContentError(name, f"broken YAML front matter{line}: {problem}") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ContentError(name, "front matter must be a mapping of keys to values")
    return meta, text[match.end() :]


def _reject_unknown(meta: Mapping[str, Any], known: frozenset[str] | set[str], name: str) -> None:
    if meta.keys() <= known:
        return
    unknown = sorted(str(key) for key in meta if key not in known)
    if unknown:
        raise ContentError(name, f"unknown front matter key {unknown[0]!r} (known: {', '.join(sorted(known))})")


def _text(meta: Mapping[str, Any], key: str, name: str) -> str:
    value = meta.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ContentError(name, f"{key} must be text")
    return markup.clean_text(str(value)).strip()


def _one_line(text: str) -> str:
    """`markup.one_line` of text that `_text` has already cleaned."""
    return " ".join(text.split())


def _required_text(meta: Mapping[str, Any], key: str, name: str) -> str:
    value = _text(meta, key, name)
    if not value:
        raise ContentError(name, f"{key} is missing")
    return value


def _list(meta: Mapping[str, Any], key: str, name: str, allow_mappings: bool = False) -> list[Any]:
    value = meta.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ContentError(name, f"{key} must be a list")
    for item in value:
        wanted = dict if allow_mappings else str
        if not isinstance(item, wanted) or (isinstance(item, str) and not item.strip()):
            kind = "a mapping" if allow_mappings else "non-empty text"
            raise ContentError(name, f"each entry of {key} must be {kind}")
    return value


def _date(meta: Mapping[str, Any], key: str, name: str, zone: ZoneInfo) -> datetime | None:
    text = _text(meta, key, name)
    if not text:
        return None
    try:
        return parse_date(text, zone)
    except ValueError as error:
        raise ContentError(name, f"{key}: {error}") from None


def _image(root: Path, bundle: str, entry: Mapping[str, Any], number: int, name: str) -> Image:
    where = f"images[{number}]"
    _reject_unknown(entry, _IMAGE_KEYS, f"{name}: {where}")
    caption = _one_line(_text(entry, "caption", name))
    credit = _one_line(_text(entry, "credit", name))
    if not caption or not credit:
        raise ContentError(name, f"{where} needs both a caption and a credit")
    alt = _one_line(_text(entry, "alt", name))
    file_name, url = _text(entry, "file", name), _text(entry, "url", name)
    if bool(file_name) == bool(url):
        raise ContentError(name, f"{where} needs either file or url")
    if url:
        return _remote_image(entry, url, caption, credit, alt, where, name)

    if "/" in file_name or "\\" in file_name or file_name.startswith("."):
        raise ContentError(name, f"{where}: {file_name!r} must be a file name inside the bundle")
    if "." + file_name.rpartition(".")[2].lower() not in PHOTO_SUFFIXES:
        raise ContentError(name, f"{where}: {file_name!r} is not a .jpg, .png, .webp or .gif file")
    try:
        size = _measure_photo(f"{root}/{bundle}/{file_name}", root, file_name)
    except _LeadsOutside:
        raise ContentError(f"{bundle}/{file_name}", "photo leads outside the content directory") from None
    except _NotRegular:
        raise ContentError(f"{bundle}/{file_name}", "listed photo is not a regular file") from None
    except _TooLarge as error:
        # As a photo of too many pixels: the article goes out without it.
        raise PhotoRefused(f"{bundle}/{file_name}", f"refused: {error}") from None
    except (FileNotFoundError, IsADirectoryError):
        raise ContentError(f"{bundle}/{file_name}", "listed photo is missing") from None
    except PhotoRefused as error:
        raise PhotoRefused(f"{bundle}/{file_name}", error.reason) from None
    except (OSError, ValueError) as error:
        raise ContentError(f"{bundle}/{file_name}", str(error)) from None
    return Image(
        # A URL, not a file name: a photo named "Þingvellir í sól.jpg" is "%C3%9Eingvellir%20%C3%AD%20s%C3%B3l.jpg".
        src=f"/{bundle}/{quote(file_name)}",
        file=file_name,
        media_type=size.media_type,
        length=size.length,
        width=size.width,
        height=size.height,
        caption=caption,
        credit=credit,
        alt=alt,
        digest=size.digest,
    )


def _remote_image(
    entry: Mapping[str, Any], url: str, caption: str, credit: str, alt: str, where: str, name: str
) -> Image:
    if not re.match(r"^https?://[^/\s]+/\S*$", url):
        raise ContentError(name, f"{where}: url {url!r} is not an absolute http(s) URL")
    media_type = _text(entry, "type", name)
    if media_type not in {"image/jpeg", "image/png", "image/webp", "image/gif"}:
        raise ContentError(name, f"{where}: a remote photo needs type image/jpeg, image/png, image/webp or image/gif")
    length, width, height = (_positive(entry, key, where, name) for key in ("length", "width", "height"))
    return Image(url, None, media_type, length, width, height, caption, credit, alt)


def _positive(entry: Mapping[str, Any], key: str, where: str, name: str) -> int:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ContentError(name, f"{where}: a remote photo needs {key} as a positive whole number")
    return value


class _LeadsOutside(Exception):
    """The file is a link that leads out of the content directory."""


class _NotRegular(Exception):
    """The name is not a regular file's: a named pipe, a device, a socket."""


class _TooLarge(Exception):
    """The file is larger than a file of its kind may be."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"is {size:,} bytes, more than the {limit:,} it may have")


#: Never waits to open: a named pipe opened for reading would wait for a writer for ever.
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK


def _read_inside(path: str, root: Path | None, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of the regular file at `path`; raises _LeadsOutside for a link that leads out of
    `root` (with `root` None, links are followed), _NotRegular for anything but a regular file,
    _TooLarge past `limit` bytes (before reading it whole into memory), and OSError as reading does.

    One open, one fstat and the reads; this runs for every file of every article in a first build.
    """
    descriptor = _open_inside(path, root)
    try:
        return _read_whole(descriptor, _regular(descriptor, path, limit), limit)
    finally:
        os.close(descriptor)


def _measure_photo(path: str, root: Path, file_name: str) -> Measure:
    """`measure` of the photo file at `path`, raising as `_read_inside` does. A file this process
    measured before is not read again while its inode, size and times are unchanged: an edit to an
    article's text does not read and hash its photos of many megabytes once more."""
    descriptor = _open_inside(path, root)
    try:
        status = _regular(descriptor, path, MAX_PHOTO_BYTES)
        # The change time too: a rewrite can keep the size and set the modification time back.
        identity = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
        known = _measured_files.get(identity)
        if known is not None:
            return known
        data = _read_whole(descriptor, status, MAX_PHOTO_BYTES)
    finally:
        os.close(descriptor)
    measured = measure(data, file_name)
    _measured_files.put(identity, measured)
    return measured


#: Photo files measured, by identity (`_measure_photo`).
_measured_files: BoundedCache[Measure] = BoundedCache(MEASURED_KEPT)


def _open_inside(path: str, root: Path | None) -> int:
    """A descriptor of the file at `path`, opened without waiting.

    Section and bundle folders are never links (the index skips those), so only the file itself
    can lead elsewhere: it is opened without following a link, and only a link is looked into.
    """
    try:
        return os.open(path, _OPEN_FLAGS | (0 if root is None else os.O_NOFOLLOW))
    except OSError as error:
        if error.errno != errno.ELOOP or root is None:
            raise
        if not inside(path, root):
            raise _LeadsOutside(path) from None
        return os.open(path, _OPEN_FLAGS)


def _regular(descriptor: int, path: str, limit: int) -> os.stat_result:
    """The open file's status; raises _NotRegular or _TooLarge."""
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        raise _NotRegular(path)
    if status.st_size > limit:
        raise _TooLarge(status.st_size, limit)
    return status


def _read_whole(descriptor: int, status: os.stat_result, limit: int) -> bytes:
    parts = []
    wanted, total = status.st_size + 1, 0
    while part := os.read(descriptor, wanted):
        parts.append(part)
        total += len(part)
        if total > limit:  # it grew while being read
            raise _TooLarge(total, limit)
        wanted = 1 << 16
    return b"".join(parts)


def inside(path: str | Path, root: Path) -> bool:
    """Whether `path`, with every link followed, still lies within `root`."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root
