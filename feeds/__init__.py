"""A news feed publisher: stored articles in, RSS, Atom and JSON Feed out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .application import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # The app is imported on first use, not with the package: granian's main process loads one small
    # module of it (access_log), and the workers it forks must import the app afresh on a reload.
    if name == "create_app":
        from .application import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
