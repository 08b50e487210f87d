"""Eight feed readers in a process of their own, so that their parsing never delays the writer's clock.

Each reader cycles through every polled feed; half of them send If-None-Match with the ETag of
their last 200 for that feed, some ask for gzip. What they saw goes back to the harness at the
end, to be checked against the writer's timeline.
"""

# ruff: noqa: S301, S311 - our own pickle file; random pauses, not secrets
from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import random
import threading
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import NamedTuple

from .answers import Malformed, get, read_feed
from .truth import ItemSeen


class Seen(NamedTuple):
    """One answer a reader got, reduced to what the check needs."""

    poller: int
    path: str
    t0: float
    t1: float
    #: 0 when no answer came.
    status: int
    retry_after: bool
    #: The items the answer stands for (a 304's are those of the last 200, a 404's none); None if unreadable.
    items: tuple[ItemSeen, ...] | None
    note: str


@dataclass(frozen=True, slots=True)
class Plan:
    port: int
    paths: tuple[str, ...]
    pollers: int
    #: Mean pause between two requests of one reader.
    pause_s: float
    #: A bound: the readers stop by then even if nobody tells them.
    seconds: float
    output: Path
    seed: int


def answer_of(path: str, status: int, body: bytes) -> tuple[tuple[ItemSeen, ...] | None, str]:
    """The items an answer stands for (a 404's: none), and a note for anything but a readable feed."""
    if status == 404:
        return (), "404"
    if status != 200:
        return None, f"status {status}"
    try:
        return read_feed(path, body), ""
    except Malformed as error:
        return None, f"malformed: {error}"


def poll(plan: Plan, stop: Event) -> None:
    """The readers' process: runs them until `stop` is set or time runs out, then writes what they saw."""
    interned: dict[tuple[ItemSeen, ...], tuple[ItemSeen, ...]] = {}
    seen: list[list[Seen]] = [[] for _ in range(plan.pollers)]
    readers = [
        threading.Thread(target=_reader, args=(plan, number, stop, seen[number], interned), daemon=True)
        for number in range(plan.pollers)
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=plan.seconds + 60)
    partial = plan.output.with_name(plan.output.name + ".partial")
    with open(partial, "wb") as output:
        pickle.dump([answer for answers in seen for answer in answers], output, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, plan.output)


def _reader(
    plan: Plan,
    number: int,
    stop: Event,
    seen: list[Seen],
    interned: dict[tuple[ItemSeen, ...], tuple[ItemSeen, ...]],
) -> None:
    rng = random.Random(plan.seed * 1000 + number)
    conditional, gzipped = number % 2 == 0, number in (1, 2)
    paths = list(plan.paths)
    rng.shuffle(paths)
    last: dict[str, tuple[str, tuple[ItemSeen, ...]]] = {}
    deadline = time.time() + plan.seconds
    for count in range(int(plan.seconds * 1000)):
        if stop.is_set() or time.time() > deadline:
            break
        path = paths[count % len(paths)]
        headers = {"Accept-Encoding": "gzip"} if gzipped else {}
        if conditional and path in last:
            headers["If-None-Match"] = last[path][0]
        response = get(plan.port, path, headers)
        note = response.error
        items: tuple[ItemSeen, ...] | None = None
        if response.status == 304:
            items, note = (last[path][1], "304") if path in last else (None, "304 without an earlier 200")
        elif response.status:
            items, note = answer_of(path, response.status, response.body)
            if items is not None:
                items = interned.setdefault(items, items)  # one copy of each distinct list of items
                if response.status == 200 and "etag" in response.headers:
                    last[path] = (response.headers["etag"], items)
        retry_after = "retry-after" in response.headers
        seen.append(Seen(number, path, response.t0, response.t1, response.status, retry_after, items, note))
        stop.wait(rng.uniform(0, 2 * plan.pause_s))


class Pollers:
    """The readers' process, started and stopped by the harness."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._process = context.Process(target=poll, args=(plan, self._stop), name="chaos-pollers", daemon=True)
        #: CPU seconds the readers' process used, known once they are done.
        self.cpu_s = 0.0

    def start(self) -> None:
        self._process.start()

    def finish(self, timeout: float = 60) -> list[Seen]:
        """Stops the readers and returns every answer they got, in no particular order."""
        self.cpu_s = _cpu_seconds(self._process.pid) if self._process.pid else 0.0
        self._stop.set()
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
            return []
        with contextlib.suppress(FileNotFoundError), open(self.plan.output, "rb") as found:
            answers: list[Seen] = pickle.load(found)
            return answers
        return []


def _cpu_seconds(pid: int) -> float:
    """User and system time of a process and its threads so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
