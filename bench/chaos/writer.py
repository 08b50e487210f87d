"""The newsroom at work: adds, edits, renames and deletes bundles, saves drafts, embargoed and broken
articles, writing some files slowly in pieces and some by rename; every change goes into the timeline
once the file operation is complete."""

# ruff: noqa: S311 - random choices, not secrets
from __future__ import annotations

import os
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from .corpus import ARTICLE_FILE, PHOTO, SECTIONS, TOPICS, Article, OnDisk, write_bundle, write_file
from .truth import State, Timeline
from .visibility import Visibility

#: How often each operation is picked.
WEIGHTS = {
    "edit": 30,
    "new": 20,
    "rename": 7,
    "delete": 6,
    "draft": 5,
    "embargo": 7,
    "broken new": 5,
    "broken save": 8,
}
#: Of the articles in its section, how new an article must be for a change to it to be measured (and seen).
MEASURED_RANK = 40
#: Ways to write a file: in one go, slowly in two pieces, or to a temporary file renamed into place.
MODES = ("plain", "slow", "rename")
MODE_WORDS = {"plain": "written in one go", "slow": "written slowly in two pieces", "rename": "renamed into place"}
#: A file in a bundle that is no part of the article.
NOTE = "minnispunktar.txt"


@dataclass
class Entry:
    """An article bundle on disk."""

    #: What its file says now.
    article: Article
    #: What should be published: its last good version (None for drafts and never-valid broken articles).
    good: Article | None
    #: When a broken save over it gets fixed.
    fix_due: float | None = None


def state_of(article: Article) -> State:
    return State.of(article.id, article.path, article.version, article.published, article.topics)


class Writer:
    """Runs in the harness's main thread, between faults; never during one."""

    def __init__(
        self,
        content: Path,
        timeline: Timeline,
        visibility: Visibility,
        articles: list[Article],
        photo: bytes,
        hot_topics: list[str],
        seed: int,
        pause_s: tuple[float, float],
    ) -> None:
        self.content = content
        self.timeline = timeline
        self.visibility = visibility
        self.photo = photo
        self.hot_topics = hot_topics
        self.rng = random.Random(seed)
        self.pause_s = pause_s
        self.entries = {article.id: Entry(article, article) for article in articles}
        self.dates = {article.published for article in articles}
        self.number = len(articles)
        self.ops: Counter[str] = Counter()
        for article in articles:
            timeline.begin(article.id, state_of(article))

    # -- driving -----------------------------------------------------------------

    def churn(self, seconds: float, embargoes: bool = True) -> None:
        """Changes, one after the other with short pauses, for `seconds`."""
        end = time.time() + seconds
        weights = {op: weight for op, weight in WEIGHTS.items() if embargoes or op != "embargo"}
        for _ in range(int(seconds * 50) + 1):
            if time.time() >= end:
                break
            self.fix_broken(time.time())
            self.step(self.rng.choices(list(weights), list(weights.values()))[0])
            time.sleep(min(self.rng.uniform(*self.pause_s), max(end - time.time(), 0)))

    def step(self, op: str) -> None:
        if op in ("new", "draft", "embargo", "broken new"):
            self._add(op)
            return
        entry = self._target()
        if entry is None:
            return
        if op == "edit":
            self._edit(entry, self._mode(), measure=True)
        elif op == "rename":
            self._rename(entry)
        elif op == "delete":
            self._delete(entry)
        else:
            broken = entry.article.edited("broken")
            self.timeline.mark_never_valid(broken.id, broken.version)
            self._write_index(broken, self._mode())
            entry.article, entry.fix_due = broken, time.time() + self.rng.uniform(1.0, 3.0)
        self.ops[op] += 1

    def fix_broken(self, now: float = float("inf")) -> None:
        """Fixes (or, one time in four, deletes) the broken saves that are due."""
        for entry in [entry for entry in self.entries.values() if entry.fix_due is not None and entry.fix_due <= now]:
            if self.rng.random() < 0.25:
                self._delete(entry)
                self.ops["fix by deleting"] += 1
            else:
                self._edit(entry, self._mode(), measure=False)
                self.ops["fix"] += 1

    def edit_newest(self) -> tuple[str, str]:
        """An edit to one of the newest articles, written by rename: returns its section and end marker."""
        entry = self._target(newest=10)
        if entry is None:
            raise RuntimeError("no article left to edit")
        article = self._edit(entry, "rename", measure=False)
        return article.section, article.marker

    def note(self, section: str) -> str:
        """A file that is no part of the article (the service ignores it) written into the newest bundle of
        `section`: the service looks at the bundle, and must find it as it was."""
        entry = self._target(newest=1, section=section)
        if entry is None:
            return f"no article in {section} to write a note into"
        path = self.content / entry.article.path / NOTE
        try:
            write_file(path, "Minnispunktar ritstjórnar: ekki birta.\n".encode())
        except OSError as error:
            return f"could not write {path}: {error.strerror}"
        return f"wrote {entry.article.path}/{NOTE}"

    # -- the model ---------------------------------------------------------------

    def listed(self, article_id: str, rank: int = MEASURED_RANK) -> bool:
        """Whether the article is among the `rank` newest public ones of its section now."""
        entry = self.entries.get(article_id)
        if entry is None or entry.good is None:
            return False
        now = time.time()
        section = entry.good.section
        newer = sum(
            1
            for other in list(self.entries.values())
            if other.good is not None
            and other.good.section == section
            and entry.good.published < other.good.published <= now
        )
        return newer < rank and entry.good.published <= now

    def on_disk(self) -> dict[str, OnDisk]:
        """What the files should say, in the form `corpus.read_disk` reads them."""
        found = {}
        for entry in self.entries.values():
            article = entry.article
            if article.kind == "broken":
                key = f"broken:{article.path}"
                found[key] = OnDisk(key, article.path, 0, 0, (), "broken")
            else:
                found[article.id] = OnDisk(
                    article.id, article.path, article.version, article.published, article.topics, article.kind
                )
        return found

    # -- operations --------------------------------------------------------------

    def _add(self, op: str) -> None:
        section = self.rng.choice(SECTIONS)[0]
        now = int(time.time())
        published = self._date(now + self.rng.randint(5, 20) if op == "embargo" else now - self.rng.randint(1, 240))
        topics = self.rng.sample(TOPICS, self.rng.randint(1, 3))
        if self.rng.random() < 0.5:
            topics[0] = self.rng.choice(self.hot_topics)
        kind = {"draft": "draft", "broken new": "broken"}.get(op, "public")
        prefix = {"draft": "drog", "broken new": "bilud", "embargo": "bann"}.get(op, "ny")
        self.number += 1
        article = Article(
            f"chaos{self.number:06d}",
            section,
            f"{prefix}-{self.number:05d}",
            1,
            published,
            tuple(dict.fromkeys(topics)),
            self.rng.random() < 0.25,
            "draft" if kind == "draft" else "broken" if kind == "broken" else "public",
        )
        self.timeline.begin(
            article.id, None, "draft" if kind == "draft" else "broken" if kind == "broken" else "article"
        )
        if kind == "broken":
            self.timeline.mark_never_valid(article.id, 1)
        mode = self._mode()
        start = time.time()
        self._write_bundle(article, mode)
        done = time.time()
        good = article if kind == "public" else None
        self.entries[article.id] = Entry(article, good)
        if good is not None:
            self.timeline.record(article.id, start, done, state_of(article))
            if op == "new":
                what = f"{article.path}, {MODE_WORDS[mode]}"
                self.visibility.expect("new", what, article.id, section, article.marker, done)
        self.ops[op] += 1

    def _edit(self, entry: Entry, mode: str, measure: bool) -> Article:
        article = entry.article.edited()
        start = time.time()
        self._write_index(article, mode)
        done = time.time()
        self.timeline.record(article.id, start, done, state_of(article))
        entry.article = entry.good = article
        entry.fix_due = None
        if measure and self.listed(article.id):
            what = f"{article.id} v{article.version}, {MODE_WORDS[mode]}"
            self.visibility.expect("edit", what, article.id, article.section, article.marker, done)
        return article

    def _rename(self, entry: Entry) -> None:
        old = entry.article
        self.number += 1
        new = replace(old, slug=f"{old.slug.split('-n')[0]}-n{self.number}")
        start = time.time()
        os.rename(self.content / old.path, self.content / new.path)
        done = time.time()
        self.timeline.record(new.id, start, done, state_of(new))
        entry.article = entry.good = new

    def _delete(self, entry: Entry) -> None:
        article = entry.article
        start = time.time()
        shutil.rmtree(self.content / article.path)
        done = time.time()
        self.timeline.record(article.id, start, done, None)
        del self.entries[article.id]

    def _target(self, newest: int = 30, section: str | None = None) -> Entry | None:
        """A public article, not embargoed, not being watched, not broken: mostly among the newest of a
        section, else one with a polled topic."""
        now = time.time()
        busy = self.visibility.busy()
        live = [
            entry
            for entry in self.entries.values()
            if entry.good is not None
            and entry.fix_due is None
            and entry.article.kind == "public"
            and entry.good.published <= now - 2
            and entry.good.id not in busy
        ]
        if not live:
            return None
        if section is not None or newest <= 10 or self.rng.random() < 0.6:
            section = section or self.rng.choice(SECTIONS)[0]
            pool = sorted(
                (entry for entry in live if entry.article.section == section), key=lambda e: -e.article.published
            )
            return self.rng.choice(pool[:newest]) if pool else None
        hot = set(self.hot_topics)
        pool = [entry for entry in live if hot.intersection(entry.article.topics)]
        return self.rng.choice(pool) if pool else None

    def _date(self, wanted: int) -> int:
        """A publication second no other article has, so that the newest-first order is never a tie."""
        for _ in range(len(self.dates) + 1):
            if wanted not in self.dates:
                break
            wanted -= 1
        self.dates.add(wanted)
        return wanted

    def _mode(self) -> str:
        return self.rng.choice(MODES)

    def _write_index(self, article: Article, mode: str) -> None:
        path = self.content / article.path / ARTICLE_FILE
        data = article.render()
        if mode == "rename":
            temporary = path.with_name(f".{ARTICLE_FILE}.chaos")
            write_file(temporary, data)
            os.replace(temporary, path)
        elif mode == "slow":
            with open(path, "wb") as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
                time.sleep(self.rng.uniform(0.2, 0.5))
                handle.write(data[len(data) // 2 :])
        else:
            write_file(path, data)

    def _write_bundle(self, article: Article, mode: str) -> None:
        folder = self.content / article.path
        if mode == "rename":
            staged = folder.with_name(f".{article.slug}.chaos")
            write_bundle(staged, article, self.photo)
            os.rename(staged, folder)
            return
        folder.mkdir()
        if article.photo:
            write_file(folder / PHOTO, self.photo)
        self._write_index(article, mode)
