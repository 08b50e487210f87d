"""The one table of feed formats: file name, media type and renderer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .description import Feed
from .errors import NotFound
from .render.jsonfeed import JSON_FILE, JSON_MEDIA_TYPE, render_json
from .render.syndication import ATOM_FILE, ATOM_MEDIA_TYPE, RSS_FILE, RSS_MEDIA_TYPE, render_atom, render_rss


@dataclass(frozen=True, slots=True)
class Format:
    """One way of writing a feed."""

    #: The file name in every feed folder, e.g. "rss.xml".
    file_name: str
    #: Human name, for HTML pages and autodiscovery titles.
    name: str
    media_type: str
    render: Callable[[Feed], bytes]

    @property
    def content_type(self) -> str:
        return f"{self.media_type}; charset=utf-8"


FORMATS: tuple[Format, ...] = (
    Format(RSS_FILE, "RSS", RSS_MEDIA_TYPE, render_rss),
    Format(ATOM_FILE, "Atom", ATOM_MEDIA_TYPE, render_atom),
    Format(JSON_FILE, "JSON Feed", JSON_MEDIA_TYPE, render_json),
)
_BY_FILE_NAME = {format_.file_name: format_ for format_ in FORMATS}


def format_for(file_name: str) -> Format:
    """Raises NotFound for a file name no format answers to."""
    try:
        return _BY_FILE_NAME[file_name]
    except KeyError:
        raise NotFound("format", file_name) from None
