"""Settings in one place: defaults, then FEEDS_* environment variables, then the caller's mapping."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

PREFIX = "FEEDS_"
INDEXERS = ("watch", "inline")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the service; each is read from FEEDS_<NAME> (e.g. FEEDS_CONTENT_DIR)."""

    #: Where the stored articles are.
    content_dir: Path = Path("content")
    #: Where the index and other derived files go; None means the Flask instance folder.
    cache_dir: Path | None = None
    #: Absolute prefix of every URL inside a feed; None means the one the request came in on.
    base_url: str | None = None
    #: Items per feed.
    feed_size: int = 50
    #: RSS `ttl`: minutes a reader may wait before polling again.
    ttl_minutes: int = 15
    #: `Cache-Control: max-age` of feeds and pages, in seconds.
    max_age: int = 60
    #: Who keeps the index current: "watch", a separate `flask --app app index --watch` process
    #: (which `make run` starts), or "inline", a sync before every request (tests, editing).
    indexer: str = "watch"
    #: Seconds between full rescans by the watch process, which otherwise follows file notifications.
    rescan_seconds: float = 60.0
    #: A file changed less than this long ago, and not known to be closed, is not read yet.
    settle_seconds: float = 2.0
    #: Rendered feed documents each worker keeps, in megabytes; the oldest go first.
    render_cache_mb: int = 16


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then FEEDS_* variables from `environ`, then `overrides` (same names); the last wins.

    Raises ConfigError naming the variable and why its value is unusable.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    names = {field.name.upper(): field for field in fields(Settings)}
    sources: list[Mapping[str, Any]] = [environ, overrides or {}]
    for source in sources:
        for key, raw in source.items():
            name = key[len(PREFIX) :] if key.startswith(PREFIX) else key
            if name not in names:
                if source is not environ:
                    raise ConfigError(key, "no such setting")
                continue
            values[names[name].name] = _convert(PREFIX + name, names[name].name, raw)
    return Settings(**values)


def _convert(key: str, name: str, raw: Any) -> Any:
    if name == "indexer":
        if raw not in INDEXERS:
            raise ConfigError(key, f"{raw!r} is not one of {', '.join(INDEXERS)}")
        return raw
    if name in ("content_dir", "cache_dir"):
        return None if raw in (None, "") and name == "cache_dir" else Path(raw)
    if name == "base_url":
        if raw in (None, ""):
            return None
        text = str(raw).rstrip("/")
        if not text.startswith(("http://", "https://")) or "://" not in text or len(text.split("/")) < 3:
            raise ConfigError(key, f"{raw!r} is not an absolute http(s) URL")
        return text
    number_type = float if name in ("rescan_seconds", "settle_seconds") else int
    try:
        number = number_type(raw)
    except (TypeError, ValueError):
        raise ConfigError(key, f"{raw!r} is not a number") from None
    if number < 0 or (name in ("feed_size", "ttl_minutes", "render_cache_mb", "rescan_seconds") and number <= 0):
        raise ConfigError(key, f"{raw!r} is out of range")
    return number
