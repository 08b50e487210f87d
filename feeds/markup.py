"""Markdown bodies to safe HTML, with photos as captioned figures."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

import nh3
import pyromark

from .model import Image

#: What a body may contain once sanitized: text structure, links and figures; never scripts or styles.
#: Photos are not among them: a body shows only listed photos, as figures this module writes.
ALLOWED_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "cite",
        "code",
        "del",
        "em",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "ins",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "small",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
    }
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})

# Characters XML 1.0 forbids, plus C1 controls and DEL that readers show as garbage.
_FORBIDDEN_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_HREF = re.compile(r'(\shref=)"([^"]*)"')
#: Stands for the site's base URL in stored bodies, before every site-rooted href and src, so
#: that making a body absolute is one str.replace; U+FFFF is removed from the source, so never collides.
SITE_ROOT_MARK = "\uffff"
# Stands for a figure while the body is sanitized; U+FFFE is removed from the source, so never collides.
_FIGURE_MARK = "\ufffe"

_MARKDOWN_OPTIONS = pyromark.Options.ENABLE_TABLES | pyromark.Options.ENABLE_STRIKETHROUGH
_FIGURE_PARAGRAPH = re.compile(f"<p>{_FIGURE_MARK}(\\d+){_FIGURE_MARK}</p>\n?")
#: The end of a block element directly followed by a tag: a client that strips tags would glue the
#: texts on either side together ("…Skjáskot/RÚVHeimildarmyndin…"), so a newline goes between.
_GLUED_BLOCK = re.compile(r"(</(?:p|figure|h[1-6]|ul|ol|li|blockquote|pre|table|thead|tbody|tr)>|<hr>)(?=<)")


class UnknownPhoto(ValueError):
    """The body shows a photo that is not listed under `images`."""


class BodyRefused(ValueError):
    """The body's HTML is larger than MAX_HTML_BYTES, or nests its elements deeper than MAX_DEPTH."""


#: How large a body's HTML may be: Markdown can multiply its size (a line of 200 `>` is 200
#: quotes), and the HTML is stored, and sent in every feed that holds the article.
MAX_HTML_BYTES = 4_000_000


#: How deep a body's elements may nest. The sanitizer's parser takes time that grows with the square
#: of the depth for most block elements (100,000 nested quotes, a 100 KB body, took a minute);
#: an article needs a few levels.
MAX_DEPTH = 200
#: Bodies with at most this many tags are not measured: at that depth the parser still takes
#: milliseconds, and most bodies have a few dozen tags.
_TAGS_UNMEASURED = 1000
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)[^>]*>")
#: Elements that never hold others, and those whose end tag may be left out (the parser closes them
#: itself, in constant time): neither makes the body deeper.
_FLAT = frozenset(
    {
        *("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track"),
        *("wbr", "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "thead", "tbody", "tfoot"),
        *("colgroup", "caption", "rb", "rt", "rtc", "rp"),
    }
)


@dataclass(frozen=True, slots=True)
class RenderedBody:
    """A body as HTML, and the lede taken from its first paragraph."""

    html: str
    first_paragraph: str


def clean_text(text: str) -> str:
    """Text with characters XML cannot carry removed."""
    # Every character removed is a control, a surrogate or a non-character, none of them
    # printable: most text, its line breaks aside, passes the quicker test and is kept whole.
    if text.isprintable() or text.replace("\n", " ").isprintable():
        return text
    return _FORBIDDEN_CHARACTERS.sub("", text)


def one_line(text: str) -> str:
    """Clean text with runs of white space folded into single spaces."""
    return " ".join(clean_text(text).split())


#: How wide a photo in a body is shown: the pages' column, or the whole width of a phone.
SIZES = "(min-width: 46rem) 44rem, 100vw"


def figure_html(image: Image, alt: str = "") -> str:
    """The one way a photo is shown: image (with its renditions to choose from), then caption and credit."""
    return (
        f'<figure><img src="{html.escape(image.src)}"{srcset_attributes(image)} width="{image.width}"'
        f' height="{image.height}" alt="{html.escape(image.alt or alt or image.caption)}">'
        f"<figcaption>{html.escape(image.caption)} <small>{html.escape(image.credit)}</small>"
        "</figcaption></figure>"
    )


def srcset_attributes(image: Image, sizes: str = SIZES) -> str:
    """` srcset="…" sizes="…"` offering the photo's renditions and the original; empty without renditions.

    Site-rooted URLs carry SITE_ROOT_MARK, as every stored link does.
    """
    if not image.renditions:
        return ""
    candidates = [f"{SITE_ROOT_MARK}{image.rendition_src(width)} {width}w" for width, _ in image.renditions]
    candidates.append(f"{SITE_ROOT_MARK}{image.src} {image.width}w")
    return f' srcset="{html.escape(", ".join(candidates))}" sizes="{sizes}"'


def render_body(
    markdown: str,
    page_path: str,
    images: tuple[Image, ...],
    refused: frozenset[str] = frozenset(),
    lede: bool = True,
) -> RenderedBody:
    """Sanitized HTML where every photo appears once, as a figure; see `absolutize` for its links.

    A photo the body places with `![…](file)` stands right after the paragraph (or list,
    quote, table) that places it, and replaces a paragraph that holds nothing else; an
    unplaced lead photo opens the body and other unplaced photos close it. Relative links
    are resolved against `page_path`, so every link is written from the site root or is
    absolute. A placed photo among `refused` is left out. Raises UnknownPhoto for a placed photo
    that is not listed, and BodyRefused for a body too large or nested too deep. With `lede`
    false, `first_paragraph` is left empty (the article has a summary of its own), which spares
    reading the body's structure when it places no photo.
    """
    by_reference: Mapping[str, Image] = {
        reference: image
        for image in images
        for reference in (image.file, image.file and quote(image.file), image.src)
        if reference is not None
    }
    source = clean_text(markdown)
    # Every way Markdown places an image begins with "![".
    layout = _lay_out(source) if lede or "![" in source else _Layout([], "")
    placed: set[str] = set()
    figures: list[str] = []
    edits: list[tuple[int, int, bytes]] = []
    for block_end, block_photos in layout.photos_by_block:
        markers = b""
        for span, reference, alt in block_photos:
            edits.append((span[0], span[1], b""))
            image = by_reference.get(reference)
            if image is None and reference in refused:
                continue
            if image is None:
                raise UnknownPhoto(f"the body shows {reference!r}, which is not listed under images")
            if image.src not in placed:
                placed.add(image.src)
                markers += f"\n\n{_FIGURE_MARK}{len(figures)}{_FIGURE_MARK}".encode()
                figures.append(figure_html(image, alt=alt))
        edits.append((block_end, block_end, markers + b"\n\n"))

    # The source with each placed photo swapped for its figure's marker; the layout's offsets are
    # in bytes, and a body that places no photo is not encoded for nothing.
    marked = source
    if edits:
        data = source.encode()
        for start, end, replacement in sorted(edits, reverse=True):
            data = data[:start] + replacement + data[end:]
        marked = data.decode()
    body = pyromark.html(marked, options=_MARKDOWN_OPTIONS)
    if len(body) > MAX_HTML_BYTES:  # in characters: at least as many bytes
        raise BodyRefused(f"the body is {len(body):,} characters of HTML, more than the {MAX_HTML_BYTES:,} it may have")
    _refuse_deep(body)
    body = sanitize(body)
    body = _resolve_links(body, page_path)
    if figures:
        body = _FIGURE_PARAGRAPH.sub(lambda match: figures[int(match[1])], body)
    unplaced = [image for image in images if image.src not in placed]
    opening = "".join(figure_html(image) for image in unplaced[:1] if image is images[0])
    closing = "".join(figure_html(image) for image in unplaced if image is not images[0])
    body = _GLUED_BLOCK.sub("\\1\n", opening + body + closing)
    return RenderedBody(
        html=_mark_site_rooted(body),
        first_paragraph=layout.first_paragraph if lede else "",
    )


def _refuse_deep(fragment: str) -> None:
    """Raises BodyRefused for HTML whose elements nest deeper than MAX_DEPTH."""
    if fragment.count("<") <= _TAGS_UNMEASURED:
        return
    depth = deepest = 0
    for match in _TAG.finditer(fragment):
        if match[2].lower() in _FLAT:
            continue
        depth = max(depth - 1, 0) if match[1] else depth + 1
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise BodyRefused(f"the body nests {deepest:,} elements deep, more than the {MAX_DEPTH} it may")


@dataclass(slots=True)
class _Layout:
    """Where a body's photos stand, and the text of its first paragraph."""

    #: For each top-level block that places photos: where the block ends (a byte offset),
    #: and each photo's byte span, reference and alt text.
    photos_by_block: list[tuple[int, list[tuple[tuple[int, int], str, str]]]]
    first_paragraph: str


def _lay_out(source: str) -> _Layout:
    photos_by_block: list[tuple[int, list[tuple[tuple[int, int], str, str]]]] = []
    block_photos: list[tuple[tuple[int, int], str, str]] = []
    # Without a photo to place, only the first paragraph is wanted: the walk stops there.
    places_photos = "![" in source
    first_paragraph: list[str] | None = None
    paragraph_text: list[str] | None = None
    image: tuple[tuple[int, int], str, list[str]] | None = None
    depth = 0
    for event, span in pyromark.events_with_range(source, options=_MARKDOWN_OPTIONS):
        kind, value = next(iter(event.items())) if isinstance(event, dict) else (event, None)
        if kind == "Start":
            if depth == 0 and value == "Paragraph" and first_paragraph is None:
                paragraph_text = []
            if isinstance(value, dict) and "Image" in value:
                image = ((span["start"], span["end"]), value["Image"]["dest_url"], [])
            depth += 1
        elif kind == "End":
            depth -= 1
            if value == "Image" and image is not None:
                block_photos.append((image[0], image[1], "".join(image[2])))
                image = None
            if depth == 0:
                if block_photos:
                    photos_by_block.append((span["end"], block_photos))
                    block_photos = []
                if paragraph_text is not None and "".join(paragraph_text).strip():
                    first_paragraph = paragraph_text
                    if not places_photos:
                        break
                paragraph_text = None
        elif kind in ("Text", "Code"):
            target = image[2] if image is not None else paragraph_text
            if target is not None:
                target.append(str(value))
        elif kind in ("SoftBreak", "HardBreak") and paragraph_text is not None and image is None:
            paragraph_text.append(" ")
    return _Layout(photos_by_block, one_line("".join(first_paragraph or ())))


#: Made once: building the allowlist took as long as cleaning a whole body.
_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    url_schemes=set(URL_SCHEMES),
    link_rel="noopener noreferrer",
)


def sanitize(fragment: str) -> str:
    """HTML reduced to the allowlist: no scripts, handlers, styles or foreign URL schemes."""
    return _CLEANER.clean(fragment)


def _mark_site_rooted(fragment: str) -> str:
    """Every site-rooted href and src (`="/…"`, not `="//…"`) with SITE_ROOT_MARK before it.

    The sanitizer and `figure_html` write one space before each attribute; plain replacing is
    several times quicker than a pattern that must be tried at every space of the text.
    """
    for attribute in (' href="/', ' src="/'):
        fragment = fragment.replace(attribute, f"{attribute[:-1]}{SITE_ROOT_MARK}/")
    # The source holds no SITE_ROOT_MARK (it is removed), so every one here was put in above.
    return fragment.replace(f"{SITE_ROOT_MARK}//", "//")


def absolutize(fragment: str, base_url: str) -> str:
    """A stored body with every site-rooted href and src prefixed by `base_url`."""
    return fragment.replace(SITE_ROOT_MARK, base_url)


def _resolve_links(fragment: str, page_path: str) -> str:
    """Relative hrefs resolved against the page; scheme-relative ones made https."""

    def resolve(match: re.Match[str]) -> str:
        url = html.unescape(match[2])
        if url.startswith("//"):
            url = "https:" + url
        elif not urlsplit(url).scheme and not url.startswith("#"):
            url = urljoin(page_path, url)
        return f'{match[1]}"{html.escape(url)}"'

    if "href=" not in fragment:
        return fragment
    return _HREF.sub(resolve, fragment)
