"""Topic slugs: lowercase ASCII with Icelandic letters transliterated."""

from __future__ import annotations

import pytest

from feeds import content
from feeds.model import Topic
from feeds.slugs import SLUG_PATTERN, slugify

from .conftest import Newsroom


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Norður-Kórea", "nordur-korea"),
        ("Þingvellir", "thingvellir"),
        ("Æðarvarp í Ölfusi", "aedarvarp-i-olfusi"),
        ("Eldgos", "eldgos"),
        ("Efnahagsmál", "efnahagsmal"),
        ("ÝMISLEGT  &  fleira", "ymislegt-fleira"),
        ("COVID-19", "covid-19"),
        (" -Úti- ", "uti"),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug
    assert SLUG_PATTERN.match(slug)


def test_names_without_letters_have_no_slug() -> None:
    assert slugify("???") == ""


def test_a_topic_and_a_byline_are_the_same_made_once_or_again(newsroom: Newsroom) -> None:
    """Topics and bylines are made once for a name (a newsroom's vocabulary) and kept; a name too
    long to be vocabulary is made each time, the same way."""
    long_name = "Þingvellir " * 30  # past VOCABULARY_NAME_CHARS
    assert len(long_name) > content.VOCABULARY_NAME_CHARS
    for slug in ("fyrri", "seinni"):
        newsroom.article(
            "innlent", slug, topics=["Norður-Kórea", long_name], authors=["Anna  Jónsdóttir\x07", long_name]
        )
    site = content.read_site(newsroom.root)
    first, second = (content.read_article(newsroom.root, "innlent", slug, site) for slug in ("fyrri", "seinni"))
    assert first is not None and second is not None
    expected = (Topic("Norður-Kórea", "nordur-korea"), Topic(long_name.strip(), "thingvellir-" * 29 + "thingvellir"))
    assert first.topics == second.topics == expected
    assert first.authors == second.authors == ("Anna Jónsdóttir", long_name.strip())
