"""The application factory: settings, index, publisher and views wired together."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from . import cli, http_errors, logs, web
from .config import load_settings
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
    content_dir = settings.content_dir.resolve()
    cache_dir = settings.cache_dir or Path(app.instance_path)
    # One index per content directory, so that two newsrooms never share one.
    name = hashlib.blake2b(os.fsencode(content_dir), digest_size=8).hexdigest()
    store = Store(IndexFiles(cache_dir.resolve(), f"index-{name}"))
    publisher = Publisher(store, content_dir, settings, clock)
    app.extensions["feeds"] = publisher
    app.wsgi_app = FeedResponder(app.wsgi_app, publisher)  # type: ignore[method-assign]
    app.register_blueprint(web.blueprint)
    http_errors.init_app(app)
    cli.init_app(app)
    return app
