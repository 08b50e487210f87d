"""gunicorn's settings, read from the project's root: its master process owns the watch process.

So a bare `gunicorn app:app` keeps the index current, as `make run` does: the master starts
`flask --app app index --watch` before the workers, restarts it if it dies or hangs, and stops it
on exit.
The workers and the indexer pool their metrics in one folder, which the master empties first.
"""

from __future__ import annotations

import threading
from typing import Any

from feeds import application, metrics, supervisor
from feeds.config import load_settings

_stop = threading.Event()
_threads: list[threading.Thread] = []


def on_starting(server: Any) -> None:
    settings = load_settings()
    pool = application.metrics_pool(settings)
    metrics.start_pool(pool)
    app_import = str(server.cfg.wsgi_app or "app:app").partition(":")[0]
    indexer = supervisor.indexer_child(app_import, settings.watchdog_seconds)
    thread = threading.Thread(
        target=supervisor.supervise, args=([indexer], _stop, metrics.Restarts(pool)), name="feeds-indexer"
    )
    thread.start()
    _threads.append(thread)


def child_exit(server: Any, worker: Any) -> None:
    metrics.process_gone(worker.pid, application.metrics_pool(load_settings()))


def on_exit(server: Any) -> None:
    _stop.set()
    for thread in _threads:
        thread.join(timeout=supervisor.STOP_SECONDS + 5)
