"""URL slugs for topics, with Icelandic letters transliterated."""

from __future__ import annotations

import re
import unicodedata

# Letters NFKD cannot take apart into ASCII; the rest (á, é, ö, …) lose their accents below.
_TRANSLITERATION = str.maketrans(
    {"ð": "d", "Ð": "d", "þ": "th", "Þ": "th", "æ": "ae", "Æ": "ae", "ø": "o", "Ø": "o", "ß": "ss"}
)
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def slugify(name: str) -> str:
    """Lowercase ASCII words joined by hyphens: "Norður-Kórea" gives "nordur-korea"."""
    ascii_text = (
        unicodedata.normalize("NFKD", name.translate(_TRANSLITERATION))
        .encode("ascii", "ignore")
        .decode("ascii")
        .lower()
    )
    return _NOT_SLUG.sub("-", ascii_text).strip("-")
