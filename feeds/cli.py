"""Command-line tools: `check` for editors; `index [--watch]` and `serve` for operators."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path
from types import FrameType

import click
from flask import Flask, current_app
from flask.cli import ScriptInfo, with_appcontext

from . import logs, watcher
from .announcer import announcer_for
from .export import export_command
from .indexer import IndexerBusy, SeedRefused, indexer_alive
from .publisher import Publisher
from .supervisor import default_workers, serve


def _publisher() -> Publisher:
    publisher: Publisher = current_app.extensions["feeds"]
    return publisher


@click.command("check")
@with_appcontext
def check_command() -> None:
    """Lists every stored file that cannot be published, as `path: reason`; exits 1 if there is one.

    With an indexer running, its index is read as it stands; otherwise the content is indexed first.
    """
    publisher = _publisher()
    if not indexer_alive(publisher.store.files):
        with contextlib.suppress(IndexerBusy):  # one just started: it brings the index up to date
            publisher.sync_now(wait_seconds=0)
    problems = publisher.store.problems()
    for problem in problems:
        click.echo(f"{problem.path}: {problem.reason}")
    if problems:
        raise SystemExit(1)
    click.echo("no problems", err=True)


@click.command("index")
@click.option("--watch", is_flag=True, help="Keep the index current until stopped (what `make run` runs).")
@click.option(
    "--from", "source", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Start from another node's index file (or a copy), then read only what differs here.",
)  # fmt: skip
@with_appcontext
def index_command(watch: bool, source: Path | None) -> None:
    """Brings the index in step with the content directory; with --watch, keeps it so.

    Only one indexer runs per index: a second `--watch` waits for the first to stop, and a
    one-off run while one is running says so and leaves the index to it.
    """
    publisher = _publisher()
    if source is not None:
        _seed(publisher, source)
    if not watch:
        started = time.perf_counter()
        try:
            # A file whose reading crashes the process is left out and named, not the end of the
            # command: small passes too are read in a worker process.
            report = publisher.sync_now(wait_seconds=0, isolated=True)
        except IndexerBusy as error:
            raise click.ClickException(f"{error}; it keeps the index current") from None
        click.echo(
            f"read {report.parsed} bundles, removed {report.removed}, generation {report.version[0]},"
            f" version {report.version[1]}, in {time.perf_counter() - started:.3f} s"
        )
        return
    logs.setup("indexer")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    # With hubs or caches to purge, this process tells them of each change: it alone knows of them.
    announcer = announcer_for(publisher)
    if announcer is not None:
        announcer.start()
    try:
        watcher.watch(
            publisher.indexer(isolated=True),
            publisher.content_dir,
            publisher.settings.rescan_seconds,
            stop,
            on_sync=None if announcer is None else announcer.changed,
            verify_per_second=publisher.settings.verify_per_second,
        )
    finally:
        if announcer is not None:
            announcer.stop()


def _seed(publisher: Publisher, source: Path) -> None:
    indexer = publisher.indexer(isolated=True)
    started = time.perf_counter()
    try:
        indexer.acquire(wait=False)
    except IndexerBusy as error:
        raise click.ClickException(f"{error}; stop it to start from another index") from None
    try:
        report = indexer.seed(source)
    except SeedRefused as error:
        raise click.ClickException(str(error)) from None
    finally:
        indexer.release()
    click.echo(
        f"copied {source}, then read {report.parsed} bundles that differ here and removed {report.removed},"
        f" in {time.perf_counter() - started:.3f} s"
    )


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=default_workers, show_default="one per core", type=int, help="Web worker processes.")
@click.option(
    "--access-log/--no-access-log", default=True, show_default=True,
    help="A line per request on standard output, in the Combined Log Format (off where a proxy in front logs).",
)  # fmt: skip
@click.pass_context
def serve_command(context: click.Context, host: str, port: int, workers: int, access_log: bool) -> None:
    """Serves the app with granian and keeps the index current beside it; restarts either if it dies.

    SIGHUP reloads the web workers one by one without dropping a request; the indexer runs on.
    """
    info = context.ensure_object(ScriptInfo)
    raise SystemExit(serve(info.app_import_path or "app", host, port, workers, access_log))


def init_app(app: Flask) -> None:
    app.cli.add_command(check_command)
    app.cli.add_command(index_command)
    app.cli.add_command(serve_command)
    app.cli.add_command(export_command)
