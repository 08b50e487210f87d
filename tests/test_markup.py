"""Bodies: Markdown to safe HTML, every listed photo once, as a figure."""

from __future__ import annotations

import pytest
from lxml import html

from feeds.markup import MAX_DEPTH, BodyRefused, UnknownPhoto, absolutize, render_body
from feeds.model import Image

from .conftest import xpath_strings


def photo(name: str) -> Image:
    return Image(
        src=f"/innlent/gos/{name}",
        file=name,
        media_type="image/jpeg",
        length=10,
        width=4,
        height=3,
        caption=f"Texti {name}",
        credit="AFP",
        alt="",
    )


LEAD, SECOND, THIRD = photo("a.jpg"), photo("b.jpg"), photo("c.jpg")


def figures(body: str) -> list[str]:
    return xpath_strings(html.fragment_fromstring(absolutize(body, ""), create_parent="div"), "//figure/img/@src")


def test_a_photo_inside_a_paragraph_follows_that_paragraph() -> None:
    rendered = render_body("Texti fyrir ![mynd](b.jpg) og eftir.\n\nNæsta.", "/innlent/gos/", (LEAD, SECOND))
    tree = html.fragment_fromstring(absolutize(rendered.html, ""), create_parent="div")
    assert [element.tag for element in tree] == ["figure", "p", "figure", "p"]
    assert tree[1].text_content() == "Texti fyrir  og eftir."
    assert figures(rendered.html) == ["/innlent/gos/a.jpg", "/innlent/gos/b.jpg"]


def test_every_photo_appears_once_even_if_placed_twice() -> None:
    rendered = render_body("![](a.jpg)\n\nTexti.\n\n![](a.jpg)\n\n![](c.jpg)", "/innlent/gos/", (LEAD, SECOND, THIRD))
    assert figures(rendered.html) == ["/innlent/gos/a.jpg", "/innlent/gos/c.jpg", "/innlent/gos/b.jpg"]


def test_the_lede_is_the_first_paragraph_with_text() -> None:
    rendered = render_body("## Fyrirsögn\n\n![](a.jpg)\n\nFyrsta *alvöru*\nmálsgreinin.\n\nÖnnur.", "/x/y/", (LEAD,))
    assert rendered.first_paragraph == "Fyrsta alvöru málsgreinin."


def test_a_photo_that_is_not_listed_is_refused() -> None:
    with pytest.raises(UnknownPhoto, match=r"'d\.jpg'"):
        render_body("![](d.jpg)", "/x/y/", (LEAD,))
    with pytest.raises(UnknownPhoto, match=r"'d\.jpg'"):
        render_body("Texti.\n\n![](d.jpg)", "/x/y/", (LEAD,), lede=False)


@pytest.mark.parametrize("markdown", ["Texti [tengill](../z/).\n\nÖnnur.", "Texti.\n\n![](b.jpg)\n\nÖnnur."])
def test_without_a_lede_the_body_is_the_same(markdown: str) -> None:
    """An article with a summary of its own skips looking for a lede, and nothing else changes."""
    with_lede = render_body(markdown, "/x/y/", (LEAD, SECOND))
    without = render_body(markdown, "/x/y/", (LEAD, SECOND), lede=False)
    assert with_lede.first_paragraph.startswith("Texti")
    assert (without.html, without.first_paragraph) == (with_lede.html, "")


@pytest.mark.parametrize(
    ("markdown", "tags"),
    [
        ("## Fyrirsögn ![](b.jpg)\n\nTexti.", ["figure", "h2", "figure", "p"]),
        ("- liður ![](b.jpg)\n- annar\n\nTexti.", ["figure", "ul", "figure", "p"]),
        ("> tilvitnun ![](b.jpg)\n\nTexti.", ["figure", "blockquote", "figure", "p"]),
    ],
)
def test_a_photo_inside_a_heading_list_or_quote_follows_that_block(markdown: str, tags: list[str]) -> None:
    rendered = render_body(markdown, "/x/y/", (LEAD, SECOND))
    tree = html.fragment_fromstring(absolutize(rendered.html, ""), create_parent="div")
    assert [element.tag for element in tree] == tags
    assert tree.xpath("//img/@src") == ["/innlent/gos/a.jpg", "/innlent/gos/b.jpg"]


def test_raw_images_and_unknown_tags_are_dropped() -> None:
    rendered = render_body('<img src="x.jpg"><marquee>Hæ</marquee> <b>feitt</b>', "/x/y/", ())
    assert rendered.html == "<p>Hæ <b>feitt</b></p>\n"


@pytest.mark.parametrize(
    ("markdown", "reason"),
    [
        (">" * 100_000 + " Tilvitnun.", "nests 100,000 elements deep"),
        ("<div>" * 100_000, "nests 100,000 elements deep"),
        ("".join("  " * level + "- liður\n" for level in range(3000)), "nests 3,000 elements deep"),
        ("\n\n".join([">" * MAX_DEPTH + " Tilvitnun."] * 2000), "is 10,[0-9,]+ characters of HTML, more than"),
    ],
)
def test_a_body_the_sanitizer_would_take_minutes_over_is_refused_at_once(markdown: str, reason: str) -> None:
    """The sanitizer's parser takes time with the square of the nesting (100,000 quotes took a
    minute): a body nested deeper than MAX_DEPTH, or grown past MAX_HTML_BYTES, is refused first."""
    with pytest.raises(BodyRefused, match=reason):
        render_body(markdown, "/x/y/", ())


def test_a_long_body_of_many_shallow_elements_is_kept() -> None:
    markdown = "\n\n".join(f"> Tilvitnun {number} með *áherslu* og **meiri**." for number in range(3000))
    quotes = html.fragment_fromstring(render_body(markdown, "/x/y/", ()).html, create_parent="div")
    assert len(quotes.findall("blockquote")) == 3000
    nested = ">" * MAX_DEPTH + " Djúpt en leyft."
    assert "Djúpt en leyft." in render_body(nested * 10, "/x/y/", ()).html
