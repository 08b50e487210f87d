"""Settings in one place: defaults, then FEEDS_* environment variables, then the caller's mapping."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

PREFIX = "FEEDS_"
INDEXERS = ("watch", "inline")
A_DAY = 86400
_URL_LISTS = ("websub_hubs", "purge_urls")
#: The variable by which prometheus_client learns where processes pool their metrics.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


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
    #: `Cache-Control: max-age` of what changes seldom: complete archive months and photo renditions.
    archive_max_age: int = A_DAY
    #: Who keeps the index current: "watch", a separate `flask --app app index --watch` process
    #: (which `make run` starts), or "inline", a sync before every request (tests, editing).
    indexer: str = "watch"
    #: Seconds between whole passes by the watch process when it cannot watch at all (no inotify).
    rescan_seconds: float = 60.0
    #: Bundles a second the watch process looks at again in turn, to find a change whose notification
    #: was lost (a cycle over 100,000 bundles takes about 33 minutes at 50); 0 turns this off.
    verify_per_second: float = 50.0
    #: A file changed less than this long ago, and not known to be closed, is not read yet.
    settle_seconds: float = 2.0
    #: How long a process that `flask serve` supervises may give no sign of life before it is killed:
    #: the watch process (which gives one at least every second while it works or waits) is started
    #: again, and a web worker (silent once a request has run for half this long) is replaced by
    #: granian; 0 turns this off. A watching export stops its signs (to systemd) once a run has
    #: made no file for this long.
    watchdog_seconds: float = 120.0
    #: Rendered feed documents each worker keeps, in megabytes; the oldest go first (one forgotten is
    #: rendered again from the items each worker keeps written, in about 2 ms).
    render_cache_mb: int = 8
    #: `Cache-Control: s-maxage`: how long a shared cache (Varnish, a CDN) may keep a document, in
    #: seconds. None: a day when `purge_urls` are set (each change purges what it touched), else `max_age`.
    s_maxage: int | None = None
    #: `stale-while-revalidate`: how long past its lifetime a cache may answer while it fetches anew.
    stale_while_revalidate: int = 60
    #: `stale-if-error`: how long past its lifetime a cache may answer while the origin fails.
    stale_if_error: int = 86400
    #: WebSub hubs every feed advertises, and which the indexer tells about every feed whose bytes change.
    websub_hubs: tuple[str, ...] = ()
    #: Cache nodes the indexer purges by surrogate key on every change: `PURGE` with an `xkey-purge` header.
    purge_urls: tuple[str, ...] = ()
    #: Where the service's processes (web workers, indexer) pool their counts for /metrics
    #: (prometheus_client's multiprocess mode); `PROMETHEUS_MULTIPROC_DIR` is read too. None: under
    #: `serve` and gunicorn, `index-<hash>.metrics` beside the index, emptied as they start; otherwise
    #: each app counts alone (tests, `flask run`).
    metrics_dir: Path | None = None

    @property
    def shared_max_age(self) -> int:
        """The s-maxage in force."""
        if self.s_maxage is not None:
            return self.s_maxage
        return A_DAY if self.purge_urls else self.max_age


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then FEEDS_* variables from `environ`, then `overrides` (same names); the last wins.

    Raises ConfigError naming the variable and why its value is unusable.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if environ.get(MULTIPROCESS_VARIABLE):
        # prometheus_client's own name for the same folder, which an operator may already set.
        values["metrics_dir"] = Path(environ[MULTIPROCESS_VARIABLE])
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
    if values.get("websub_hubs") and not values.get("base_url"):
        # A hub fetches a feed by the URL the feed names as its own, and only the setting fixes it.
        raise ConfigError(PREFIX + "WEBSUB_HUBS", f"needs {PREFIX}BASE_URL, the feeds' public address")
    return Settings(**values)


#: Settings that take fractions.
_FRACTIONAL = frozenset({"rescan_seconds", "settle_seconds", "verify_per_second", "watchdog_seconds"})


def _convert(key: str, name: str, raw: Any) -> Any:
    if name == "indexer":
        if raw not in INDEXERS:
            raise ConfigError(key, f"{raw!r} is not one of {', '.join(INDEXERS)}")
        return raw
    if name in ("content_dir", "cache_dir", "metrics_dir"):
        return None if raw in (None, "") and name != "content_dir" else Path(raw)
    if name == "base_url":
        return None if raw in (None, "") else _url(key, str(raw)).rstrip("/")
    if name in _URL_LISTS:
        # A space- or comma-separated list in the environment; any sequence of strings in a mapping.
        if isinstance(raw, str):
            return tuple(_url(key, item) for item in raw.replace(",", " ").split())
        if not isinstance(raw, list | tuple):
            raise ConfigError(key, f"{raw!r} is not a list of URLs")
        return tuple(_url(key, str(item)) for item in raw)
    if name == "s_maxage" and raw in (None, ""):
        return None
    number_type = float if name in _FRACTIONAL else int
    try:
        number = number_type(raw)
    except (TypeError, ValueError):
        raise ConfigError(key, f"{raw!r} is not a number") from None
    if number < 0 or (name in ("feed_size", "ttl_minutes", "render_cache_mb", "rescan_seconds") and number <= 0):
        raise ConfigError(key, f"{raw!r} is out of range")
    return number


def _url(key: str, text: str) -> str:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise ConfigError(key, f"{text!r} is not an absolute http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in text):
        raise ConfigError(key, f"{text!r} is not an absolute http(s) URL")
    return text
