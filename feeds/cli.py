"""Command-line tools for editors: `flask --app app check`."""

from __future__ import annotations

import click
from flask import Flask, current_app

from .publisher import Publisher


@click.command("check")
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


def init_app(app: Flask) -> None:
    app.cli.add_command(check_command)
