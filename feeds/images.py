"""Photos measured from their files: type, size in bytes, width and height."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PillowImage
from PIL import UnidentifiedImageError

#: The photo formats feeds may carry, by Pillow's name for them.
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})


@dataclass(frozen=True, slots=True)
class Measure:
    media_type: str
    length: int
    width: int
    height: int


def measure(path: Path) -> Measure:
    """Reads only the header; the length is of the very file whose header was read.

    Raises ValueError saying what is wrong with the file.
    """
    with open(path, "rb") as handle:
        length = os.fstat(handle.fileno()).st_size
        try:
            with PillowImage.open(handle) as picture:
                kind, (width, height) = picture.format, picture.size
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{path.name} is not a readable image ({error})") from None
    media_type = MEDIA_TYPES.get(kind or "")
    if media_type is None:
        raise ValueError(f"{path.name} is {kind}, not JPEG, PNG, WebP or GIF")
    return Measure(media_type, length, width, height)
