"""Save → visible: a prober polls the changed article's section RSS until three answers in a row show it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .answers import get

#: Answers in a row (fresh connections, so either worker) that must show a change before it counts as visible.
STREAK = 3
#: A change not visible by then is counted as never visible.
TIMEOUT_S = 15.0
POLL_S = 0.01
#: A bound on the prober's life, far beyond the longest run.
LIFETIME_S = 4 * 3600.0


@dataclass
class _Pending:
    kind: str
    #: What changed, for the report: "chaos000123 v4, slow write".
    what: str
    article_id: str
    section: str
    marker: bytes
    done: float
    streak: int = 0
    first_seen: float = 0.0


@dataclass
class Visibility:
    """Runs in a thread of the harness; the writer tells it what it saved and when the save was complete."""

    port: int
    #: Whether an article is still among the newest of its section (else a change to it may never show there).
    still_listed: Callable[[str], bool]
    delays: dict[str, list[float]] = field(default_factory=lambda: {"edit": [], "new": []})
    #: The slowest changes of each kind, as "what: delay".
    slowest: dict[str, list[tuple[float, str]]] = field(default_factory=lambda: {"edit": [], "new": []})
    missed: dict[str, list[str]] = field(default_factory=lambda: {"edit": [], "new": []})
    _pending: list[_Pending] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def expect(self, kind: str, what: str, article_id: str, section: str, marker: str, done: float) -> None:
        with self._lock:
            self._pending.append(_Pending(kind, what, article_id, section, marker.encode(), done))

    def busy(self) -> set[str]:
        """Articles with a change not yet seen: the writer leaves them alone until it is."""
        with self._lock:
            return {pending.article_id for pending in self._pending}

    def wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.02) + 1):
            if not self.busy() or time.monotonic() > deadline:
                return
            time.sleep(0.02)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-visibility", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT_S + 10)

    def _run(self) -> None:
        deadline = time.monotonic() + LIFETIME_S
        for _ in range(int(LIFETIME_S / POLL_S)):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            with self._lock:
                sections = sorted({pending.section for pending in self._pending})
            if not sections:
                self._stop.wait(0.02)
                continue
            for section in sections:
                answer = get(self.port, f"/feeds/{section}/rss.xml")
                with self._lock:
                    for pending in [pending for pending in self._pending if pending.section == section]:
                        self._update(pending, answer.status == 200 and pending.marker in answer.body, answer.t1)
            self._stop.wait(POLL_S)

    def _update(self, pending: _Pending, shown: bool, answered: float) -> None:
        if shown:
            pending.first_seen = pending.first_seen if pending.streak else answered
            pending.streak += 1
            if pending.streak >= STREAK:
                delay = pending.first_seen - pending.done
                self.delays[pending.kind].append(delay)
                slowest = self.slowest[pending.kind]
                slowest.append((delay, pending.what))
                slowest.sort(reverse=True)
                del slowest[3:]
                self._pending.remove(pending)
            return
        pending.streak = 0
        if answered - pending.done > TIMEOUT_S:
            self._pending.remove(pending)
            if self.still_listed(pending.article_id):
                self.missed[pending.kind].append(f"{pending.what}: not shown {TIMEOUT_S:.0f} s after saving")
