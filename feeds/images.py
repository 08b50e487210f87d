"""Photos measured from their files (type, size in bytes, width and height) and checked to decode."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import imagesize
import PIL.Image

from .bounded import BoundedCache
from .errors import PhotoRefused

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})


#: The most pixels a photo may have; more are refused rather than decoded.
MAX_PIXELS = 60_000_000
#: The most a photo file may hold: read whole into memory to be hashed and checked, and about what
#: MAX_PIXELS take stored without loss (a 60-megapixel PNG of a photo runs to 100–200 MB).
MAX_PHOTO_BYTES = 200_000_000


@dataclass(frozen=True, slots=True)
class Measure:
    media_type: str
    length: int
    width: int
    height: int
    #: A hash of the file's bytes: names the photo's version.
    digest: str


#: Photos measured and decoded by this process that are kept, by digest, so that the same bytes
#: (an agency photo in several articles, a bundle read again after its text changed) are decoded
#: once; the oldest go first.
MEASURED_KEPT = 4096
_measured: BoundedCache[Measure] = BoundedCache(MEASURED_KEPT)


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


def measure(data: bytes, file_name: str) -> Measure:
    """Type, size and digest of a photo file's bytes, and width and height as displayed (after
    any EXIF rotation).

    Raises ValueError saying what is wrong with a file that is no photo, and PhotoRefused for a
    photo that cannot be shown: more than MAX_PIXELS, or data that does not decode.
    """
    media_type = sniff(data[:16])
    if media_type is None:
        raise ValueError(f"{file_name} is not a JPEG, PNG, WebP or GIF image")
    version = digest(data)
    known = _measured.get(version)
    if known is not None:
        return known
    try:
        info = imagesize.get_info(io.BytesIO(data), dpi=False, colors=False, channels=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"{file_name} is not a readable image ({error})") from None
    if info.width <= 0 or info.height <= 0:
        raise ValueError(f"{file_name} is not a readable image (no width and height in its header)")
    if info.width * info.height > MAX_PIXELS:
        raise PhotoRefused(
            file_name,
            f"refused: {info.width} × {info.height} pixels is more than the {MAX_PIXELS // 1_000_000} million"
            " a photo may have",
        )
    _decode(data, file_name)
    measured = Measure(media_type, len(data), info.width, info.height, version)
    _measured.put(version, measured)
    return measured


def digest(data: bytes) -> str:
    """A photo's version: a hash of its bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _decode(data: bytes, name: str) -> None:
    """Raises PhotoRefused unless the whole photo decodes (a JPEG at an eighth of its size, which is
    quick and still reads every byte)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise PhotoRefused(name, f"refused: {image.width} × {image.height} pixels is too many")
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
    except PhotoRefused:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, PIL.Image.DecompressionBombError,
            PIL.Image.DecompressionBombWarning) as error:  # fmt: skip
        raise PhotoRefused(name, f"refused: the photo's data is corrupt ({error})") from None
