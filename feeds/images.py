"""Photos measured from their files: type, size in bytes, width and height."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import imagesize

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})


@dataclass(frozen=True, slots=True)
class Measure:
    media_type: str
    length: int
    width: int
    height: int


def sniff(head: bytes) -> str | None:
    """The media type the file's first bytes announce, if it is a photo format feeds may carry."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def measure(path: Path) -> Measure:
    """Reads only the header; the length is of the very file whose header was read.

    Width and height are as displayed, after any EXIF rotation. Raises ValueError saying
    what is wrong with the file.
    """
    with open(path, "rb") as handle:
        length = os.fstat(handle.fileno()).st_size
        media_type = sniff(handle.read(16))
        if media_type is None:
            raise ValueError(f"{path.name} is not a JPEG, PNG, WebP or GIF image")
        handle.seek(0)
        try:
            info = imagesize.get_info(handle, dpi=False, colors=False, channels=False)
        except (ValueError, OSError) as error:
            raise ValueError(f"{path.name} is not a readable image ({error})") from None
    if info.width <= 0 or info.height <= 0:
        raise ValueError(f"{path.name} is not a readable image (no width and height in its header)")
    return Measure(media_type, length, info.width, info.height)
