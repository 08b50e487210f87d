"""Markdown bodies to safe HTML, with photos as captioned figures."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

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
_SITE_ROOTED_URL = re.compile(r'(\s(?:href|src)=")/(?!/)')
# Stands for a figure while the body is sanitized; U+FFFE is removed from the source, so never collides.
_FIGURE_MARK = "\ufffe"
_FIGURE_SLOT = re.compile(f"{_FIGURE_MARK}(\\d+){_FIGURE_MARK}")

_markdown = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")


class UnknownPhoto(ValueError):
    """The body shows a photo that is not listed under `images`."""


@dataclass(frozen=True, slots=True)
class RenderedBody:
    """A body as HTML, and the lede taken from its first paragraph."""

    html: str
    first_paragraph: str


def clean_text(text: str) -> str:
    """Text with characters XML cannot carry removed."""
    return _FORBIDDEN_CHARACTERS.sub("", text)


def one_line(text: str) -> str:
    """Clean text with runs of white space folded into single spaces."""
    return " ".join(clean_text(text).split())


def figure_html(image: Image, alt: str = "") -> str:
    """The one way a photo is shown: image, then caption and credit."""
    return (
        f'<figure><img src="{html.escape(image.src)}" width="{image.width}" height="{image.height}"'
        f' alt="{html.escape(image.alt or alt or image.caption)}">'
        f"<figcaption>{html.escape(image.caption)} <small>{html.escape(image.credit)}</small>"
        "</figcaption></figure>"
    )


def render_body(markdown: str, page_path: str, images: tuple[Image, ...]) -> RenderedBody:
    """Sanitized HTML where every photo appears once, as a figure.

    Photos the body places with `![…](file)` stand where they are placed; an unplaced lead
    photo opens the body and other unplaced photos close it. Relative links are resolved
    against `page_path`, so every link is written from the site root or is absolute.
    Raises UnknownPhoto for a placed photo that is not listed.
    """
    by_reference: Mapping[str, Image] = {
        reference: image for image in images for reference in (image.file, image.src) if reference is not None
    }
    tokens = _markdown.parse(clean_text(markdown))
    placed: set[str] = set()
    figures: list[str] = []
    output: list[Token] = []
    first_paragraph = ""
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type == "paragraph_open" and tokens[index + 1].type == "inline":
            inline, close = tokens[index + 1], tokens[index + 2]
            taken = _take_figures(inline, by_reference, placed)
            if _has_text(inline):
                output.extend((token, inline, close))
                if not first_paragraph:
                    first_paragraph = one_line(_plain_text(inline))
            for figure in taken:
                output.append(_html_block(f"{_FIGURE_MARK}{len(figures)}{_FIGURE_MARK}"))
                figures.append(figure)
            index += 3
            continue
        if token.type == "inline":
            _take_figures(token, by_reference, placed, inline_only=True)
        output.append(token)
        index += 1

    body = sanitize(_markdown.renderer.render(output, _markdown.options, {}))
    body = _FIGURE_SLOT.sub(lambda match: figures[int(match[1])], _resolve_links(body, page_path))
    unplaced = [image for image in images if image.src not in placed]
    opening = "".join(figure_html(image) for image in unplaced[:1] if image is images[0])
    closing = "".join(figure_html(image) for image in unplaced if image is not images[0])
    return RenderedBody(html=opening + body + closing, first_paragraph=first_paragraph)


def sanitize(fragment: str) -> str:
    """HTML reduced to the allowlist: no scripts, handlers, styles or foreign URL schemes."""
    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
    )


def absolutize(fragment: str, base_url: str) -> str:
    """Sanitized HTML with every site-rooted href and src prefixed by `base_url`."""
    return _SITE_ROOTED_URL.sub(lambda match: f"{match[1]}{base_url}/", fragment)


def _take_figures(
    inline: Token,
    by_reference: Mapping[str, Image],
    placed: set[str],
    inline_only: bool = False,
) -> list[str]:
    """Removes image tokens from an inline run and returns their figures."""
    figures: list[str] = []
    kept: list[Token] = []
    for child in inline.children or []:
        if child.type != "image":
            kept.append(child)
            continue
        reference = str(child.attrs.get("src", ""))
        image = by_reference.get(reference)
        if image is None:
            raise UnknownPhoto(f"the body shows {reference!r}, which is not listed under images")
        if image.src not in placed:
            placed.add(image.src)
            figures.append(figure_html(image, alt=child.content))
    if not inline_only:
        inline.children = kept
    elif figures:
        raise UnknownPhoto("a photo can be placed in a paragraph or on a line of its own only")
    return figures


def _has_text(inline: Token) -> bool:
    return any(
        child.type not in ("softbreak", "hardbreak") and (child.type != "text" or child.content.strip())
        for child in inline.children or []
    )


def _plain_text(inline: Token) -> str:
    return "".join(
        child.content if child.type in ("text", "code_inline") else " "
        for child in inline.children or []
        if child.type in ("text", "code_inline", "softbreak", "hardbreak")
    )


def _html_block(content: str) -> Token:
    token = Token("html_block", "", 0)
    token.content = content
    token.block = True
    return token


def _resolve_links(fragment: str, page_path: str) -> str:
    """Relative hrefs resolved against the page; scheme-relative ones made https."""

    def resolve(match: re.Match[str]) -> str:
        url = html.unescape(match[2])
        if url.startswith("//"):
            url = "https:" + url
        elif not urlsplit(url).scheme and not url.startswith("#"):
            url = urljoin(page_path, url)
        return f'{match[1]}"{html.escape(url)}"'

    return re.sub(r'(\shref=)"([^"]*)"', resolve, fragment)
