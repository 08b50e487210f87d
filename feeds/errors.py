"""The one error hierarchy of the publisher."""

from __future__ import annotations


class FeedsError(Exception):
    """Root of every error the publisher raises on purpose."""


class ContentError(FeedsError, ValueError):
    """A stored file cannot be published; names the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        #: The file or bundle at fault, relative to the content directory.
        self.path = path
        #: Why it cannot be published, in one line.
        self.reason = reason


class PhotoRefused(ContentError):
    """A photo that is not shown: its data is corrupt, or it has more pixels than may be decoded
    (a decompression bomb can be a few kilobytes). Its article is published without it."""


class ConfigError(FeedsError, ValueError):
    """A setting has a value the publisher cannot use."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class NotFound(FeedsError, LookupError):
    """Nothing public answers to this name."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"no such {kind}: {name}")
        #: What was looked for: "section", "topic", "article", "photo", "format".
        self.kind = kind
        self.name = name


class Unavailable(FeedsError):
    """The service cannot answer right now, e.g. while the first index build runs; ask again soon."""


class IndexUnavailable(Unavailable):
    """The index cannot be read: not built yet, damaged, deleted, or being rebuilt."""


class IncompleteRender(FeedsError):
    """A renderer wrote fewer items than its feed holds; such a document is never served."""


class NotifyError(FeedsError):
    """A hub or a cache node did not take a notification; names where it went and why."""

    def __init__(self, destination: str, reason: str) -> None:
        super().__init__(f"{destination}: {reason}")
        self.destination = destination
        self.reason = reason
