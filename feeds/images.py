"""Photos measured from their files (type, size in bytes, width and height) and checked to be whole."""

from __future__ import annotations

import hashlib
import io
import re
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


#: Photos measured and checked by this process that are kept, by digest, so that the same bytes
#: (an agency photo in several articles, a bundle read again after its text changed) are checked
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
    _check_whole(data, file_name, media_type)
    measured = Measure(media_type, len(data), info.width, info.height, version)
    _measured.put(version, measured)
    return measured


def digest(data: bytes) -> str:
    """A photo's version: a hash of its bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _check_whole(data: bytes, name: str, media_type: str) -> None:
    """Raises PhotoRefused unless the photo's file is whole and its decoder would take it.

    - A JPEG's markers are followed from its start to its end marker, over each segment by its
      length and over each scan's coded data; then its segments alone, without the coded data, are
      decoded (at an eighth of its size, in grey), so that a table the decoder cannot use is seen.
    - A PNG's chunks are read up to the last, each checked against its checksum.
    - A GIF or WebP is decoded whole.

    Decoding every JPEG and PNG whole (a JPEG at an eighth of its size) was the largest part of a
    first build with photos of a news photo's size: 3.1 ms a JPEG of 136 KB, 11 ms a PNG of 225 KB,
    against 0.4 ms and 0.1 ms for these checks. Of a thousand JPEGs damaged in their segments and
    nine hundred damaged in their coded data, every one the whole decode refused is refused here too
    (tests/test_images.py holds them to it); most damaged in their coded data still decode, garbled,
    and are shown, as before.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise PhotoRefused(name, f"refused: {image.width} × {image.height} pixels is too many")
                if media_type == "image/png":
                    image.verify()
                elif media_type != "image/jpeg":
                    image.load()
            if media_type == "image/jpeg":
                with PIL.Image.open(io.BytesIO(_jpeg_segments(data))) as segments:
                    segments.draft("L", (1, 1))
                    segments.load()
    except PhotoRefused:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, PIL.Image.DecompressionBombError,
            PIL.Image.DecompressionBombWarning) as error:  # fmt: skip
        raise PhotoRefused(name, f"refused: the photo's data is corrupt ({error})") from None


#: In a JPEG scan's coded data, 0xFF is followed by 0x00 (a stuffed byte) or by a restart marker;
#: anything else is the marker after the scan.
_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_JPEG_STOPS = "the data stops before the image's end"


def _jpeg_segments(data: bytes) -> bytes:
    """The JPEG file's segments from its start to its end marker, without the scans' coded data.

    Raises ValueError unless the file is whole: its markers are followed over each segment by its
    length and over each scan's coded data to the marker after it. What follows the end marker (a
    phone's motion photo, say) is the file's affair.
    """
    kept = [data[:2]]
    position, size = 2, len(data)
    while True:
        if position + 2 > size:
            raise ValueError(_JPEG_STOPS)
        if data[position] != 0xFF:
            raise ValueError(f"no marker at byte {position:,}")
        marker = data[position + 1]
        if marker == 0xD9:  # end of image
            kept.append(b"\xff\xd9")
            return b"".join(kept)
        if marker == 0xFF:  # a fill byte before a marker
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a segment
            position += 2
            continue
        if position + 4 > size:
            raise ValueError(_JPEG_STOPS)
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if length < 2:
            raise ValueError(f"a segment of {length} bytes at byte {position:,}")
        if position + 2 + length > size:
            raise ValueError(_JPEG_STOPS)
        kept.append(data[position : position + 2 + length])
        position += 2 + length
        if marker == 0xDA:  # start of scan: its coded data runs to the next marker
            after = _AFTER_SCAN.search(data, position)
            if after is None:
                raise ValueError(_JPEG_STOPS)
            position = after.start()
