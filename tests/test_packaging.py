"""The locks hold what pyproject.toml declares, at the same versions, each with its hashes; the
systemd units in deploy/ are ones systemd accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from .running import need

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


@pytest.mark.parametrize("unit", sorted(path.name for path in (ROOT / "deploy" / "systemd").glob("*.service")))
def test_a_systemd_unit_is_accepted_by_systemd_without_a_word(unit: str, tmp_path: Path) -> None:
    """`systemd-analyze verify`, with the checkout (and its .venv) where the unit expects it: an
    unknown or misspelt key is only a warning to systemd, so any output fails the test."""
    binary = need(shutil.which("systemd-analyze"), "systemd-analyze (Debian: systemd)")
    text = (ROOT / "deploy" / "systemd" / unit).read_text(encoding="utf-8")
    assert "/srv/feeds/app/.venv/bin/flask" in text
    (tmp_path / unit).write_text(text.replace("/srv/feeds/app", str(ROOT)), encoding="utf-8")
    done = subprocess.run([binary, "verify", f"./{unit}"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, ""), done.stdout + done.stderr
