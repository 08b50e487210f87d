"""What a feed may hold at any moment: the writer's timeline, and the check of one answer against it.

An answer received during [t0, t1] is right if it is the newest `limit` articles of its scope as
the files stood at some moment of [t0 - allowance, t1]. Each article is free to be at any of the
states it had in that window (bundles are re-read one by one, so two edits may show in either
order), dated articles are public from their date, and the order is newest first.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from .corpus import ZONE, guid, slugify

INFINITY = float("inf")
#: Worst first: an answer gets the category of its worst problem.
CATEGORIES = ("5xx", "malformed", "torn", "leak", "short", "stale")
Origin = Literal["article", "draft", "broken"]


class ItemSeen(NamedTuple):
    """One item of a feed, as a reader got it."""

    guid: str
    #: The version the title names ("… – útgáfa 4"), if it names one.
    title_version: int | None
    #: The article id and version of the body's end marker, if the body ends with one.
    end_mark: tuple[str, int] | None


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """The whole site, a section or a topic."""

    section: str | None = None
    topic: str | None = None

    def holds(self, state: State) -> bool:
        if self.topic is not None:
            return self.topic in state.topics
        return self.section is None or state.path.startswith(self.section + "/")

    def feed(self, file_name: str) -> str:
        if self.topic is not None:
            return f"/feeds/topics/{self.topic}/{file_name}"
        if self.section is not None:
            return f"/feeds/{self.section}/{file_name}"
        return f"/feeds/{file_name}"

    def __str__(self) -> str:
        return f"topic {self.topic}" if self.topic else f"section {self.section}" if self.section else "site"


def scope_of(path: str) -> Scope:
    """The scope of a feed path such as /feeds/topics/<slug>/rss.xml."""
    parts = path.strip("/").split("/")
    if len(parts) == 4:
        return Scope(topic=parts[2])
    return Scope(section=parts[1]) if len(parts) == 3 else Scope()


@dataclass(frozen=True, slots=True)
class State:
    """An article as the service should publish it, from `published` on."""

    id: str
    path: str
    version: int
    #: Seconds since the epoch.
    published: int
    #: Topic slugs.
    topics: frozenset[str]

    @classmethod
    def of(cls, article_id: str, path: str, version: int, published: int, topics: Iterable[str]) -> State:
        return cls(article_id, path, version, published, frozenset(slugify(name) for name in topics))


@dataclass(frozen=True, slots=True)
class Span:
    """A state, and the change that made it: begun at `start`, complete (closed, renamed, deleted) at `done`."""

    start: float
    done: float
    #: None: nothing to publish (not written yet, or deleted).
    state: State | None


@dataclass(frozen=True, slots=True)
class Verdict:
    category: str
    detail: str


@dataclass
class Timeline:
    """Every article's states in the order the writer made them; safe to share between threads."""

    allowance: float
    spans: dict[str, list[Span]] = field(default_factory=dict)
    origin: dict[str, Origin] = field(default_factory=dict)
    #: (id, version) pairs that were only ever broken files.
    never_valid: set[tuple[str, int]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin(self, article_id: str, state: State | None, origin: Origin = "article") -> None:
        """An article as it stood before the first change the timeline records."""
        with self._lock:
            self.spans[article_id] = [Span(-INFINITY, -INFINITY, state)]
            self.origin[article_id] = origin

    def record(self, article_id: str, start: float, done: float, state: State | None) -> None:
        with self._lock:
            self.spans[article_id].append(Span(start, done, state))

    def mark_never_valid(self, article_id: str, version: int) -> None:
        with self._lock:
            self.never_valid.add((article_id, version))

    def snapshot(self) -> Timeline:
        with self._lock:
            return Timeline(
                self.allowance,
                {key: list(spans) for key, spans in self.spans.items()},
                dict(self.origin),
                set(self.never_valid),
            )


def period_start(published: float, period: Literal["month", "hour"]) -> float:
    """When the month or hour a moment falls in began, in the newsroom's timezone, in seconds since the epoch."""
    local = datetime.fromtimestamp(published, UTC).astimezone(ZONE).replace(minute=0, second=0, microsecond=0)
    return (local.replace(day=1, hour=0) if period == "month" else local).timestamp()


def candidates(spans: list[Span], dones: list[float], since: float, until: float) -> list[State | None]:
    """The states an article may show in [since, until]: each lasts from its change's start to the next one's done."""
    first = bisect.bisect_left(dones, since, lo=1) - 1
    found = []
    for number in range(first, len(spans)):
        if spans[number].start > until:
            break
        found.append(spans[number].state)
    return found


class Checker:
    """Checks answers against a snapshot of the timeline.

    Articles that never change are kept sorted per scope, so that an answer costs about its
    item count plus the articles that changed, whatever the size of the newsroom.
    """

    def __init__(self, timeline: Timeline, limit: int, static_before: float) -> None:
        self.timeline = timeline
        self.limit = limit
        self.allowance = timeline.allowance
        self._dones = {key: [span.done for span in spans] for key, spans in timeline.spans.items()}
        self._static: dict[str, State] = {}
        self._dynamic: list[str] = []
        for key, spans in timeline.spans.items():
            state = spans[0].state
            if len(spans) == 1 and state is not None and state.published < static_before:
                self._static[key] = state
            elif any(span.state is not None for span in spans):
                self._dynamic.append(key)
        self._scopes: dict[Scope, tuple[list[State], list[str]]] = {}

    def check(self, scope: Scope, t0: float, t1: float, items: tuple[ItemSeen, ...]) -> Verdict | None:
        """None if the items are right for an answer received during [t0, t1]; else the worst problem."""
        problems = self._problems(scope, t0, t1, items)
        if not problems:
            return None
        worst = min(problems, key=lambda problem: CATEGORIES.index(problem[0]))
        same = sum(1 for category, _ in problems if category == worst[0])
        more = f" (+{same - 1} more)" if same > 1 else ""
        return Verdict(worst[0], f"{worst[1]}{more}; {len(items)} items")

    def _of_scope(self, scope: Scope) -> tuple[list[State], list[str]]:
        found = self._scopes.get(scope)
        if found is None:
            static = sorted(
                (state for state in self._static.values() if scope.holds(state)),
                key=lambda state: (state.published, state.path),
                reverse=True,
            )
            dynamic = [
                key
                for key in self._dynamic
                if any(span.state is not None and scope.holds(span.state) for span in self.timeline.spans[key])
            ]
            found = self._scopes[scope] = (static, dynamic)
        return found

    def _problems(self, scope: Scope, t0: float, t1: float, items: tuple[ItemSeen, ...]) -> list[tuple[str, str]]:
        since = t0 - self.allowance
        problems: list[tuple[str, str]] = []
        seen: set[str] = set()
        previous = INFINITY
        last_published: float | None = None
        for item in items:
            article_id = item.guid.rpartition(":")[2]
            torn = _torn(item, article_id)
            if torn:
                problems.append(("torn", torn))
            if article_id in seen:
                problems.append(("stale", f"{article_id} twice"))
                continue
            seen.add(article_id)
            published, problem = self._judge_item(scope, item, article_id, since, t0, t1)
            if problem:
                problems.append(problem)
            if published is not None:
                if published > previous:
                    problems.append(("stale", f"{article_id} out of order"))
                previous = last_published = published
        # A subscription feed holds its newest `limit` items and the rest of the archive period the
        # oldest of them is in (RFC 5005: its prev-archive is the period before): a month, or a day
        # or an hour of a busy one. So every article from at least that hour's start on must be
        # there, and none of another month than the `limit`th's.
        cutoff = -INFINITY if len(items) < self.limit else (last_published if last_published is not None else INFINITY)
        if len(items) >= self.limit and last_published is not None:
            cutoff = period_start(last_published, "hour")
            if len(items) > self.limit:
                limit_th = items[self.limit - 1].guid.rpartition(":")[2]
                spans = self.timeline.spans.get(limit_th)
                months = {period_start(span.state.published, "month") for span in spans or () if span.state}
                if months and period_start(last_published, "month") not in months:
                    problems.append(("stale", f"{len(items)} items reach past the month of the {self.limit}th"))
        problems += self._missing(scope, seen, since, t0, t1, cutoff)
        return problems

    def _judge_item(
        self, scope: Scope, item: ItemSeen, article_id: str, since: float, t0: float, t1: float
    ) -> tuple[float | None, tuple[str, str] | None]:
        """The item's date if it is a known version, and what is wrong with it, if anything."""
        spans = self.timeline.spans.get(article_id)
        version = item.title_version
        if spans is None:
            return None, ("leak", f"{item.guid}: no such article")
        origin = self.timeline.origin[article_id]
        if origin != "article":
            return None, ("leak", f"{article_id}: a {origin} article was published")
        if (article_id, version) in self.timeline.never_valid:
            return None, ("leak", f"{article_id} v{version}: a broken save was published")
        window = candidates(spans, self._dones[article_id], since, t1)
        for state in window:
            if state is not None and state.version == version and state.published <= t1 and scope.holds(state):
                if item.guid != guid(article_id, state.published):
                    return state.published, ("stale", f"GUID {item.guid}, expected {guid(article_id, state.published)}")
                return state.published, None
        state = next((span.state for span in spans if span.state and span.state.version == version), None)
        if state is None:
            return None, ("stale", f"{article_id} v{version}: a version never written")
        if state.published > t1:
            return None, (
                "leak",
                f"{article_id}: embargoed until {state.published}, shown {state.published - t1:.1f} s early",
            )
        if not scope.holds(state):
            return state.published, ("stale", f"{article_id}: not in this feed")
        if all(candidate is None for candidate in window):
            gone = max((span.done for span in spans if span.state is None), default=-INFINITY)
            return state.published, ("leak", f"{article_id}: shown {t0 - gone:.1f} s after it was deleted")
        newest = next((candidate for candidate in reversed(window) if candidate is not None), None)
        expected = f"v{newest.version}" if newest is not None else "nothing"
        return state.published, ("stale", f"{article_id}: v{version} shown, {expected} expected")

    def _missing(
        self, scope: Scope, seen: set[str], since: float, t0: float, t1: float, cutoff: float
    ) -> list[tuple[str, str]]:
        """Articles that had to be there: public in the scope, newer than the cutoff, at every moment of the window."""
        static, dynamic = self._of_scope(scope)
        problems: list[tuple[str, str]] = []
        for state in static:
            if state.published <= cutoff or len(problems) >= 20:
                break
            if state.id not in seen:
                problems.append(("short", f"{state.id} missing"))
        for key in dynamic:
            if key not in seen and _always_in(
                candidates(self.timeline.spans[key], self._dones[key], since, t1), scope, t0, cutoff
            ):
                problems.append(("short", f"{key} missing"))
        return problems


def _always_in(window: list[State | None], scope: Scope, t0: float, cutoff: float) -> bool:
    return all(
        state is not None and scope.holds(state) and cutoff < state.published <= t0 for state in window
    ) and bool(window)


def _torn(item: ItemSeen, article_id: str) -> str:
    """What is wrong with an item whose title and end of body do not tell the same version."""
    if item.end_mark is None:
        return f"{article_id}: the body does not end with its end marker"
    if item.end_mark != (article_id, item.title_version):
        return f"{article_id}: title v{item.title_version}, body {item.end_mark[0]} v{item.end_mark[1]}"
    return ""
