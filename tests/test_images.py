"""A photo file is whole or refused: the checks that take the place of decoding every JPEG and PNG.

The feed-level behaviour of a refused photo (its article published without it, `check` naming it)
is in test_renditions.py; these are the checks themselves, over the ways real files are made.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

import pytest
from PIL import Image, ImageFilter

from feeds import images
from feeds.errors import PhotoRefused


def photo(kind: str, size: tuple[int, int] = (640, 427), **options: object) -> bytes:
    """A photo-like picture: detail that compresses as a photo does, in `kind`."""
    picture = Image.effect_noise(size, 60).filter(ImageFilter.GaussianBlur(1)).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, kind, **options)
    return buffer.getvalue()


def with_thumbnail() -> bytes:
    """A JPEG whose EXIF holds a JPEG thumbnail, with its own start and end markers, as cameras write."""
    thumbnail = photo("JPEG", (160, 120))
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    raw = bytearray(exif.tobytes())
    # Appended to the EXIF block: the segment's length covers it, so a reader must skip it whole.
    segment = bytes(raw) + thumbnail
    picture = Image.effect_noise((640, 427), 60).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", exif=segment)
    return buffer.getvalue()


#: What a phone writes after a JPEG's end (a motion photo's video): not part of the image.
AFTER_THE_END = b"\x00\x00ftypmp42" + bytes(range(256))

WHOLE: dict[str, Callable[[], bytes]] = {
    "baseline JPEG": lambda: photo("JPEG", quality=85),
    "progressive JPEG": lambda: photo("JPEG", quality=85, progressive=True),
    "JPEG with restart markers": lambda: photo("JPEG", quality=85, restart_marker_blocks=4),
    # The thumbnail's own end marker comes first: the end a check looks for is the image's.
    "JPEG with a thumbnail in its EXIF": with_thumbnail,
    "JPEG with more after its end": lambda: photo("JPEG", quality=85) + AFTER_THE_END,
    "PNG": lambda: photo("PNG"),
    "GIF": lambda: photo("GIF"),
    "WebP": lambda: photo("WEBP", quality=80),
}


@pytest.mark.parametrize("make", WHOLE.values(), ids=WHOLE.keys())
def test_a_whole_photo_is_measured(make: Callable[[], bytes]) -> None:
    data = make()
    measured = images.measure(data, "mynd.jpg")
    assert (measured.width, measured.height) == (640, 427)
    assert measured.length == len(data)


#: The bytes a file may lose at its end with every pixel still in it, and still be shown: a PNG's
#: last chunk's checksum (the chunk holds nothing), a GIF's trailer and last block's terminator,
#: and what follows a JPEG's end.
HARMLESS_TAIL = dict.fromkeys(WHOLE, 0) | {"PNG": 4, "GIF": 2, "JPEG with more after its end": len(AFTER_THE_END)}


@pytest.mark.parametrize("kind", HARMLESS_TAIL)
def test_a_photo_cut_short_anywhere_is_refused(kind: str) -> None:
    """An upload or copy cut short: at any length past the header, the photo is refused, never shown
    half grey."""
    data = WHOLE[kind]()
    whole = len(data) - HARMLESS_TAIL[kind]
    rng = random.Random(kind)
    for cut in sorted({*rng.sample(range(200, whole), 40), whole - 2, whole - 1}):
        with pytest.raises((PhotoRefused, ValueError)):
            images.measure(data[:cut], "mynd")
    for cut in range(whole, len(data)):
        assert images.measure(data[:cut], "mynd").width == 640


def test_a_png_with_a_byte_changed_anywhere_is_refused() -> None:
    """Every chunk of a PNG carries a checksum: a byte changed in storage or transfer is seen."""
    data = photo("PNG")
    rng = random.Random(7)
    for position in rng.sample(range(40, len(data)), 40):
        damaged = bytearray(data)
        damaged[position] ^= 0x5A
        with pytest.raises((PhotoRefused, ValueError)):
            images.measure(bytes(damaged), "mynd.png")


def test_a_jpeg_with_a_broken_segment_is_refused_with_its_reason() -> None:
    damaged = bytearray(photo("JPEG", quality=85))
    second = 4 + int.from_bytes(damaged[4:6], "big")  # the marker after the first segment
    damaged[second] = 0x12
    with pytest.raises(PhotoRefused, match=f"no marker at byte {second}"):
        images.measure(bytes(damaged), "mynd.jpg")
    data = photo("JPEG", quality=85)
    with pytest.raises(PhotoRefused, match="the data stops before the image's end"):
        images.measure(data[: len(data) // 2], "mynd.jpg")


def decodes(data: bytes) -> bool:
    """Whether Pillow decodes the whole JPEG (at an eighth of its size), as the indexer once checked."""
    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.draft("RGB", (picture.width // 8, picture.height // 8))
            picture.load()
    except (OSError, SyntaxError, ValueError):
        return False
    return True


@pytest.mark.parametrize("where", ["coded data", "segments"])
def test_a_damaged_jpeg_that_does_not_decode_is_refused(where: str) -> None:
    """Bytes changed inside a JPEG: in its coded data most still decode (garbled) and are shown, as
    before; in its segments (tables, frame, scan headers) many cannot be decoded at all. Every one
    the whole decode refuses, the checks refuse too: none becomes a photo whose renditions cannot
    be made."""
    data = photo("JPEG", quality=85)
    scan = data.index(b"\xff\xda")
    span = (len(data) // 3, len(data) - 10) if where == "coded data" else (2, scan + 12)
    rng = random.Random(where)
    refused_by_decoding = refused = 0
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 50) if where == "coded data" else rng.randint(1, 3)):
            damaged[rng.randrange(*span)] = rng.randrange(256)
        try:
            images.measure(bytes(damaged), "mynd.jpg")
        except (PhotoRefused, ValueError):
            refused += 1
        else:
            assert decodes(bytes(damaged)), "a JPEG the decoder refuses was accepted"
        refused_by_decoding += not decodes(bytes(damaged))
    assert 0 < refused_by_decoding <= refused < 300
