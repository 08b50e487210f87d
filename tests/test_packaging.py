"""The locks hold what pyproject.toml declares, at the same versions, each with its hashes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: list[str]) -> dict[str, str]:
    """Name to version of exact pins (`name==version`), as pyproject.toml writes them."""
    pins = dict(requirement.split("==", 1) for requirement in requirements)
    return {canonical(name): version for name, version in pins.items()}


def locked(lock: str) -> dict[str, str]:
    """Name to version of every package in a lock; each must come with its hashes."""
    pins: dict[str, str] = {}
    # An entry starts at the margin (`name==version ; markers \`); its hashes and notes are indented.
    for entry in re.split(r"\n(?=\S)", (ROOT / lock).read_text(encoding="utf-8")):
        if entry.startswith("#"):
            continue
        name, version = entry.split()[0].split("==")
        assert "--hash=sha256:" in entry, f"{lock}: {name} has no hash"
        pins[canonical(name)] = version
    return pins


def test_the_runtime_lock_holds_every_dependency_at_its_pin() -> None:
    runtime = locked("requirements.txt")
    for name, version in declared(PYPROJECT["project"]["dependencies"]).items():
        assert runtime.get(name) == version, f"{name}: run `make lock`"


def test_the_dev_lock_holds_the_runtime_lock_and_the_dev_group() -> None:
    dev = locked("requirements-dev.txt")
    for name, version in locked("requirements.txt").items():
        assert dev.get(name) == version, f"{name}: run `make lock`"
    for name, version in declared(PYPROJECT["dependency-groups"]["dev"]).items():
        assert dev.get(name) == version, f"{name}: run `make lock`"
