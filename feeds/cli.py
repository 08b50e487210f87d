"""Command-line tools: `flask --app app check` for editors, `flask --app app index` for operators."""

from __future__ import annotations

import time

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from .publisher import Publisher


@click.command("check")
@with_appcontext
def check_command() -> None:
    """Lists every stored file that cannot be published, as `path: reason`; exits 1 if there is one."""
    publisher: Publisher = current_app.extensions["feeds"]
    publisher.index.sync()
    problems = publisher.index.problems()
    for problem in problems:
        click.echo(f"{problem.path}: {problem.reason}")
    if problems:
        raise SystemExit(1)
    click.echo("no problems", err=True)


@click.command("index")
@with_appcontext
def index_command() -> None:
    """Brings the index in step with the content directory and says what it did."""
    publisher: Publisher = current_app.extensions["feeds"]
    started = time.perf_counter()
    report = publisher.index.sync()
    elapsed = time.perf_counter() - started
    click.echo(
        f"parsed {report.parsed} bundles, removed {report.removed}, version {report.version}, in {elapsed:.3f} s"
    )


def init_app(app: Flask) -> None:
    app.cli.add_command(check_command)
    app.cli.add_command(index_command)
