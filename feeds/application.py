"""The application factory: settings, index, publisher and views wired together."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from jinja2 import FileSystemBytecodeCache
from jinja2.bccache import Bucket

from . import cli, http_errors, liveness, logs, web
from .config import Settings, load_settings
from .metrics import Metrics, Observed
from .publisher import Clock, Publisher, utc_now
from .serving import FeedResponder
from .store import IndexFiles, Store


def create_app(config: Mapping[str, Any] | None = None, *, clock: Clock = utc_now) -> Flask:
    """A ready app; `config` takes the same names as the FEEDS_* variables and wins over them.

    Nothing is read from the content directory, and nothing is started: the index is kept current
    by `flask --app app index --watch` (or, with the inline indexer, before each request).
    """
    app = Flask(__name__, instance_relative_config=True)
    settings = load_settings(config)
    logs.init_app()
    metrics = Metrics(settings.metrics_dir)
    store = Store(index_files(settings, app.instance_path))
    publisher = Publisher(store, settings.content_dir.resolve(), settings, clock, metrics=metrics)
    app.extensions["feeds"] = publisher
    responder = Observed(FeedResponder(app.wsgi_app, publisher), metrics)
    # Under `flask serve`, a worker whose request runs for half the watchdog's time is replaced.
    app.wsgi_app = liveness.watch_requests(responder, settings.watchdog_seconds / 2)  # type: ignore[method-assign,assignment]
    app.jinja_env.bytecode_cache = TemplateCodeCache(store.files.cache_dir / "templates")
    app.register_blueprint(web.blueprint)
    http_errors.init_app(app)
    cli.init_app(app)
    return app


class TemplateCodeCache(FileSystemBytecodeCache):
    """Compiled templates, kept beside the index: a process that starts (a web worker, an export)
    loads them instead of compiling them again (a tenth of a second). Only ever a shortcut: one that
    cannot be read or written (a full disk) is compiled as if there were no cache."""

    def __init__(self, directory: Path) -> None:
        with contextlib.suppress(OSError):
            directory.mkdir(parents=True, exist_ok=True)
        super().__init__(str(directory))

    def load_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().load_bytecode(bucket)

    def dump_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def index_files(settings: Settings, instance_path: str) -> IndexFiles:
    """Where the index of the settings' content directory lives: in the cache directory, else the
    Flask instance folder; one per content directory, so that two newsrooms never share one."""
    cache_dir = settings.cache_dir or Path(instance_path)
    name = hashlib.blake2b(os.fsencode(settings.content_dir.resolve()), digest_size=8).hexdigest()
    return IndexFiles(cache_dir.resolve(), f"index-{name}")


def metrics_pool(settings: Settings) -> Path:
    """Where the processes serving the settings' content pool their metrics (for a process that starts
    them): FEEDS_METRICS_DIR or PROMETHEUS_MULTIPROC_DIR, else a folder beside the index."""
    if settings.metrics_dir is not None:
        return settings.metrics_dir
    files = index_files(settings, Flask(__name__).instance_path)
    return files.cache_dir / f"{files.name}.metrics"
