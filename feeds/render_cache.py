"""Rendered feeds kept per content version, with their validators, headers and a gzip copy made once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from email.utils import formatdate

from zlib_ng import zlib_ng

from .bounded import BoundedCache

#: zlib's default trade-off; the copy is made once per content version, not per request.
GZIP_LEVEL = 6
#: zlib's window, with a gzip header and trailer.
_GZIP_WBITS = 31
#: Names the compressor in the gzip copy's ETag: another zlib-ng or another level may write other
#: bytes for the same body, and a strong ETag must never name two sets of bytes (a cache that
#: joins ranges, or revalidates, would take one for the other).
GZIP_TAG = f"gzip{GZIP_LEVEL}-zng{zlib_ng.ZLIBNG_VERSION}"

Headers = list[tuple[str, str]]


@dataclass(slots=True)
class Rendered:
    """One feed document as served, until the content changes or an embargo lifts.

    Everything a response needs is worked out once here, so that answering costs no formatting.
    """

    body: bytes
    content_type: str
    #: The newest item's date, as seconds since the epoch.
    last_modified: int
    #: The content version it was rendered from: the index's generation, and the version in it.
    version: tuple[int, int]
    #: When an embargoed article becomes public and this document stale (seconds since the epoch).
    expires: float | None
    cache_control: str
    #: Added to a 200 only: what shared caches and hubs read (surrogate keys, WebSub links). A 304
    #: leaves them out: it confirms bytes a cache already has, so their keys and links stand.
    extra_headers: Headers = field(default_factory=list)
    #: Strong, derived from the bytes alone: the same in every worker and after a restart.
    etag: str = field(init=False)
    #: The compressed copy is another representation, so it has its own strong ETag, which names
    #: the compressor too.
    gzip_etag: str = field(init=False)
    _gzipped: bytes | None = field(default=None, init=False)
    _headers: dict[tuple[bool, bool], Headers] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        digest = body_digest(self.body)
        self.etag, self.gzip_etag = f'"{digest}"', f'"{digest}-{GZIP_TAG}"'

    def gzipped(self) -> bytes:
        """The body compressed, byte for byte the same every time (no timestamp in the header)."""
        if self._gzipped is None:
            self._gzipped = gzip_body(self.body)
        return self._gzipped

    def headers(self, gzipped: bool, not_modified: bool) -> Headers:
        """The response headers for a 200 (or a 304), plain or compressed."""
        key = (gzipped, not_modified)
        found = self._headers.get(key)
        if found is None:
            found = [
                ("Cache-Control", self.cache_control),
                ("ETag", self.gzip_etag if gzipped else self.etag),
                ("Last-Modified", formatdate(self.last_modified, usegmt=True)),
                ("Vary", "Accept-Encoding"),
            ]
            if not not_modified:
                body = self.gzipped() if gzipped else self.body
                found += [("Content-Type", self.content_type), ("Content-Length", str(len(body)))]
                if gzipped:
                    found.append(("Content-Encoding", "gzip"))
                found += self.extra_headers
            self._headers[key] = found
        return found


def gzip_body(body: bytes) -> bytes:
    """The body as gzip, the same bytes for the same body on every node that runs the locked
    zlib-ng (no name and no time in the header); a strong ETag of the copy rests on that.

    zlib-ng, not the standard library's zlib: the same ratio at the same level in about half the
    time, and bytes that do not change with the system's libz. Lets go of the GIL while it works.
    """
    return zlib_ng.compress(body, GZIP_LEVEL, wbits=_GZIP_WBITS)


def body_digest(body: bytes) -> str:
    """What names a document's bytes: its ETag, and what the indexer compares to see that a feed changed."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def render_cache(capacity_bytes: int) -> BoundedCache[Rendered]:
    """Rendered documents up to a size in bytes; one forgotten is rendered again, cheaply, from kept items."""
    return BoundedCache(capacity_bytes, _weight)


def _weight(entry: Rendered) -> int:
    """The body, and room for its gzip copy (about an eighth of a feed) made on first demand."""
    return len(entry.body) + len(entry.body) // 8
