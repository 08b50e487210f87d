"""The README's Deployment section stays true: its table of settings is made from `Settings` itself.

`python -m tests.test_readme` prints the table to paste between the README's markers.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from feeds.config import PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- settings: made from feeds/config.py by `python -m tests.test_readme` -->"
END = "<!-- end of settings -->"


def settings_table() -> str:
    """A row per setting: its variable, its default, and the `#:` comment above it in `Settings`."""
    source = (ROOT / "feeds" / "config.py").read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    settings = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings")
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)}
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for statement in settings.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        name = statement.target.id
        comment: list[str] = []
        above = statement.lineno - 2
        while above >= 0 and lines[above].strip().startswith("#:"):
            comment.insert(0, lines[above].strip().removeprefix("#:").strip())
            above -= 1
        meaning = " ".join(comment).replace("|", "\\|")
        rows.append(f"| `{PREFIX}{name.upper()}` | {_default(defaults[name])} | {meaning} |")
    return "\n".join(rows)


def _default(value: object) -> str:
    if value is None or value == ():
        return "unset"
    if isinstance(value, float):
        return format(value, "g")
    return str(value) if isinstance(value, int) else f"`{value}`"


def test_the_table_of_settings_is_made_from_the_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert BEGIN in readme and END in readme
    found = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert found == settings_table(), "README's table of settings is out of date: `python -m tests.test_readme`"


if __name__ == "__main__":
    print(settings_table())
