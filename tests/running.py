"""The service as deployed, and the things in front of it, started by tests as real processes on loopback."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import servers

from .conftest import Newsroom


def need(binary: str | None, name: str) -> str:
    """The binary's path; without it a test is skipped, except in CI (`CI` set), where it fails."""
    if binary is not None:
        return binary
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed: .ci/run installs it", pytrace=False)
    pytest.skip(f"{name} is not installed")


def settle(newsroom: Newsroom) -> None:
    """Content that was there before the service started: whole, with nothing to wait for."""
    an_hour_ago = time.time() - 3600
    for path in newsroom.root.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))


def start_origin(newsroom: Newsroom, work: Path, port: int, **settings: str) -> servers.Server:
    """`flask --app app serve` (granian with two workers, and the indexer) with FEEDS_* `settings`."""
    env = {
        **os.environ,
        "FEEDS_CONTENT_DIR": str(newsroom.root),
        "FEEDS_CACHE_DIR": str(work / "cache"),
        **{f"FEEDS_{name}": value for name, value in settings.items()},
    }
    server = servers.start("service", port, servers.server_command(port), env, work / "service.log")
    server.wait_ready("/feeds/rss.xml", 60)
    return server


def wait_announcing(work: Path, timeout: float = 20) -> None:
    """Until the service's announcer has taken the feeds as they are: every change after is announced."""
    wait_for(lambda: any((work / "cache").glob("*.announced.json")), "the announcer never started", timeout)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10) -> float:
    """Polls `condition`; returns the seconds it took, fails with `what` after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, what
        time.sleep(0.01)
    return time.monotonic() - started
