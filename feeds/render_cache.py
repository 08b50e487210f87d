"""Rendered feeds kept per content version, with their validators and a gzip copy made once."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

#: zlib's default trade-off; the copy is made once per content version, not per request.
GZIP_LEVEL = 6


@dataclass(slots=True)
class Rendered:
    """One feed document as served, until the content changes or an embargo lifts."""

    body: bytes
    content_type: str
    #: The newest item's date, as seconds since the epoch.
    last_modified: int
    #: The content version it was rendered from.
    version: int
    #: When an embargoed article becomes public and this document stale (seconds since the epoch).
    expires: float | None
    #: Strong, derived from the bytes alone: the same in every worker and after a restart.
    etag: str = field(init=False)
    _gzipped: bytes | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.etag = '"' + hashlib.blake2b(self.body, digest_size=16).hexdigest() + '"'

    @property
    def gzip_etag(self) -> str:
        """The compressed copy is another representation, so it has its own strong ETag."""
        return self.etag[:-1] + '-gzip"'

    def gzipped(self) -> bytes:
        """The body compressed, byte for byte the same every time (no timestamp in the header)."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, GZIP_LEVEL, mtime=0)
        return self._gzipped


class RenderCache:
    """A bounded least-recently-used map; safe to share between threads."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Rendered | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, entry: Rendered) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
