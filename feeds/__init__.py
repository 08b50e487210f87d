"""A news feed publisher: stored articles in, RSS, Atom and JSON Feed out."""

from .application import create_app

__all__ = ["create_app"]
