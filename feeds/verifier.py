"""Rolling verification: every bundle looked at again in turn, a few at a time, at a fixed pace.

Notifications can be lost without the kernel saying so: a folder created before its watch was in
place, a change made on another machine over a network file system, more folders than inotify
watches. Instead of a whole pass every minute, whose cost grows with the archive (seconds of CPU
at 100,000 articles, and edits held back meanwhile), the watch loop asks for a small slice now and
then. The cost is `per_second` stat-sized looks, whatever the size of the archive; a whole cycle
takes the archive's size over `per_second` seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .scanner import folders

#: The longest pause between two slices; the pace is kept by the slice's size up to MAX_SLICE.
TICK_SECONDS = 0.5
#: The most bundles one slice looks at (a few milliseconds' work), so that a notified change
#: never waits long behind one: a faster pace makes slices more frequent, not longer.
MAX_SLICE = 100


@dataclass(frozen=True, slots=True)
class Slice:
    """The next bundles to look at: those whose folder is there, and stored ones whose folder is not."""

    present: list[str]
    absent: list[str]
    #: Whether this slice ends a cycle over every section.
    cycle_done: bool


class Verifier:
    """Hands out every bundle folder and every stored bundle, section by section, `per_second` a second."""

    def __init__(self, content_dir: str, per_second: float, stored_in: Callable[[str], list[str]]) -> None:
        self.content_dir = content_dir
        self.per_second = per_second
        #: Every bundle the index holds under a section folder, in order.
        self.stored_in = stored_in
        self.size = max(1, min(MAX_SLICE, round(per_second * TICK_SECONDS)))
        self.tick = self.size / per_second if per_second > 0 else TICK_SECONDS
        self._due = time.monotonic() + self.tick
        self._walk: Iterator[tuple[str, bool]] | None = None
        self.cycles = 0
        self.cycle_started = time.monotonic()

    @property
    def enabled(self) -> bool:
        return self.per_second > 0

    def due_at(self) -> float:
        """When the next slice is due (monotonic); far away when verification is off."""
        return self._due if self.enabled else float("inf")

    def next_slice(self) -> Slice:
        """The next bundles in turn; starts the walk again after the last section."""
        self._due = time.monotonic() + self.tick
        if self._walk is None:
            self._walk = self._bundles()
        present: list[str] = []
        absent: list[str] = []
        cycle_done = False
        for path, there in self._walk:
            (present if there else absent).append(path)
            if len(present) + len(absent) >= self.size:
                break
        else:
            cycle_done = True
            self._walk = None
            self.cycles += 1
            self.cycle_started = time.monotonic()
        return Slice(present, absent, cycle_done)

    def _bundles(self) -> Iterator[tuple[str, bool]]:
        """(path, whether its folder is there) for the union of the folders and the index, by section.

        A section's folder is listed when the walk reaches it, so that what is listed is fresh; a
        folder that cannot be listed is skipped this cycle (unreadable is never taken for deleted).
        """
        for section in folders(self.content_dir) or ():
            listed = folders(os.path.join(self.content_dir, section))
            if listed is None:
                continue
            there = set(listed)
            for path in sorted({f"{section}/{slug}" for slug in listed}.union(self.stored_in(section))):
                yield path, path.partition("/")[2] in there
