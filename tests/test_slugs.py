"""Topic slugs: lowercase ASCII with Icelandic letters transliterated."""

from __future__ import annotations

import pytest

from feeds.slugs import SLUG_PATTERN, slugify


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
