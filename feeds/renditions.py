"""Smaller copies of photos, made with Pillow once per photo version and kept in the cache directory.

A rendition is the photo turned upright (EXIF orientation), scaled to one of the widths of
`model.RENDITION_WIDTHS` narrower than the original, and written without the original's metadata
(EXIF, XMP, comments), in the original's format. Its URL carries the photo's digest, so it never
changes and may be cached for a long time; the files are never in `content/`.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import PIL.Image
import PIL.ImageOps

from .errors import NotFound, Unavailable
from .images import digest
from .model import RENDITION_VERSION_LENGTH, Image

log = logging.getLogger(__name__)

#: A rendition's folder in its URL: its width and the start of the photo's digest, "320w-1a2b3c4d5e6f".
RENDITION_FOLDER = re.compile(rf"^(?P<width>[1-9][0-9]{{1,4}})w-(?P<digest>[0-9a-f]{{{RENDITION_VERSION_LENGTH}}})$")
#: A rendition's URL names its version, so it never changes: caches may keep it for a year.
IMMUTABLE = "public, max-age=31536000, immutable"
#: Qualities tried in turn until a rendition is smaller than its original, in bytes too.
_QUALITIES = {"image/jpeg": (82, 70, 55, 40), "image/webp": (80, 65, 50, 35)}
_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


def rendition(cache_dir: Path, image: Image, original: Path, width: int) -> Path:
    """The file of the photo's rendition `width` wide, made now if it was not made before.

    Raises NotFound for a width the photo has no rendition at, and Unavailable when it cannot be
    made now (a full disk; a file changed since it was indexed, which the indexer will read again).
    """
    sizes = dict(image.renditions)
    if width not in sizes:
        raise NotFound("photo", image.rendition_src(width))
    path = _folder(cache_dir, image.digest) / f"{width}{original.suffix.lower()}"
    if path.exists():
        return path
    try:
        data = original.read_bytes()
        # Only the very bytes that were indexed (and checked there for bombs) are scaled.
        if digest(data) != image.digest:
            raise ValueError("the photo changed since it was indexed")
        data = _scaled(data, image, (width, sizes[width]))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Whole or not at all: two workers may make the same one at once, and either's is right.
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".", delete=False) as handle:
            try:
                handle.write(data)
                handle.close()
                os.replace(handle.name, path)
            except OSError:
                os.unlink(handle.name)
                raise
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:
        raise Unavailable(f"{image.src}: the rendition {width} wide could not be made: {error}") from error
    return path


def discard(cache_dir: Path, digests: Iterable[str]) -> int:
    """Removes the renditions of the photos named by digest (those no stored article has any
    more); returns how many photos had some."""
    removed = 0
    for photo in digests:
        folder = _folder(cache_dir, photo)
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed the renditions of %d photos no article has any more", removed)
    return removed


def discard_unused(cache_dir: Path, in_use: Callable[[str], bool]) -> int:
    """Removes the renditions of every photo that `in_use` says no stored article has; returns
    how many photos had some. Lists every photo that has renditions: for after a rebuild, whose
    new index does not know what the old one dropped."""
    try:
        shards = [entry.path for entry in os.scandir(_made_in(cache_dir)) if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return 0
    unused: list[str] = []
    for shard in shards:
        with os.scandir(shard) as entries:
            unused += (entry.name for entry in entries if _DIGEST.fullmatch(entry.name) and not in_use(entry.name))
    return discard(cache_dir, unused)


#: A photo's folder of renditions is named by its whole digest (`images.digest`: 16 bytes in hex).
_DIGEST = re.compile(r"[0-9a-f]{32}")


def _made_in(cache_dir: Path) -> Path:
    """Where every rendition is kept: a folder for each photo, in one for the first two hex digits of its digest."""
    return cache_dir / "renditions"


def _folder(cache_dir: Path, photo: str) -> Path:
    """Where the renditions of the photo with this digest are kept."""
    return _made_in(cache_dir) / photo[:2] / photo


def _scaled(data: bytes, image: Image, size: tuple[int, int]) -> bytes:
    with PIL.Image.open(io.BytesIO(data)) as source:
        upright = PIL.ImageOps.exif_transpose(source)
        icc_profile = source.info.get("icc_profile")
        if image.media_type == "image/jpeg" and upright.mode not in ("RGB", "L"):
            upright = upright.convert("RGB")
        elif upright.mode == "P":
            upright = upright.convert("RGBA")
        scaled = upright.resize(size, PIL.Image.Resampling.LANCZOS, reducing_gap=3.0)
    # Nothing of the original's metadata goes along; the colour profile is colour, not metadata.
    scaled.info = {}
    options: dict[str, object] = {"icc_profile": icc_profile} if icc_profile else {}
    attempts = []
    for quality in _QUALITIES.get(image.media_type, (None,)):
        attempts.append(_encode(scaled, image.media_type, {**options, "quality": quality}))
        if len(attempts[-1]) < image.length:
            break
    return min(attempts, key=len)


def _encode(image: PIL.Image.Image, media_type: str, options: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    if media_type == "image/jpeg":
        options = {**options, "optimize": True, "progressive": True}
    elif media_type == "image/png":
        options = {key: value for key, value in options.items() if key != "quality"} | {"optimize": True}
    image.save(buffer, _FORMATS[media_type], **options)
    return buffer.getvalue()
