"""One chaos run: a newsroom written, the service started on it, readers, a writer and faults, then the checks."""

# ruff: noqa: S311, S603, S607 - random choices; git, a fixed tool
from __future__ import annotations

import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .answers import get
from .corpus import (
    SECTIONS,
    TOPIC_SLUGS,
    TOPICS,
    Article,
    age,
    check_breakages,
    initial_articles,
    photo_bytes,
    read_disk,
    slugify,
    write_bundle,
    write_site,
)
from .faults import FAULTS, Context, Fault, NotInjected
from .pollers import Plan, Pollers, Seen, answer_of
from .report import EXAMPLES, FAILURES, RECOVERY_S, Delays, FaultResult, FinalCheck, Report
from .service import BIN, REPO, Service, Tree, choose_run_as, free_port, tmpfs
from .truth import Checker, Scope, Timeline, scope_of
from .visibility import Visibility
from .writer import Writer

#: The service's settle time (FEEDS_SETTLE_SECONDS), and the visibility delay an answer is allowed.
SETTLE_S = 2.0
ALLOWANCE_S = SETTLE_S + 1.0
FEED_SIZE = 50
READERS = 8
FORMATS = ("rss.xml", "atom.xml", "feed.json")
SEED = 20261129
#: Failures that a fault must not cause (stale answers are reported, not held against it).
FATAL = tuple(category for category in FAILURES if category != "stale")
#: How long a restarted service may take to answer before its cache folder is emptied and it starts afresh.
RESTART_S = 15.0


@dataclass(frozen=True, slots=True)
class Mode:
    name: str
    articles: int
    #: Seconds of changes before the first fault, and between two faults.
    churn_s: float
    gap_s: float
    #: How long the lasting faults (permissions, disk full) last.
    hold_s: float
    polled_topics: int
    #: Mean pause between two requests of one reader.
    reader_pause_s: float
    writer_pause_s: tuple[float, float]
    #: Topics checked after each fault besides the polled ones; None for every topic.
    topics_after_fault: int | None
    tmpfs_mb: int


SHORT = Mode("short", 1500, 10.0, 1.0, 3.0, 8, 0.1, (0.15, 0.35), 12, 96)
LONG = Mode("long", 4000, 90.0, 8.0, 5.0, 16, 0.1, (0.2, 0.5), None, 128)


@dataclass(frozen=True, slots=True)
class Judged:
    seen: Seen
    #: None when the answer is right.
    category: str | None
    detail: str


def judge(checker: Checker, seen: Seen) -> Judged:
    """The category of one answer: a failure, an allowed 503, no answer, or right (None)."""
    if seen.status == 0:
        return Judged(seen, "no answer", seen.note)
    if seen.status == 503 and seen.retry_after:
        return Judged(seen, "unavailable", "")
    if seen.status >= 500:
        return Judged(seen, "5xx", f"status {seen.status}" + ("" if seen.retry_after else ", no Retry-After"))
    if seen.note.startswith("malformed"):
        return Judged(seen, "malformed", seen.note)
    if seen.items is None:
        return Judged(seen, "other status", seen.note)
    verdict = checker.check(scope_of(seen.path), seen.t0, seen.t1, seen.items)
    return Judged(seen, verdict.category, verdict.detail) if verdict else Judged(seen, None, "")


@dataclass
class _FaultWindow:
    result: FaultResult
    start: float
    checked: float
    injected: bool


@dataclass
class ChaosRun:
    mode: Mode
    root: Path
    work: Path
    cache: Path
    tmpfs_mb: int | None
    say: Callable[[str], None]
    report: Report = field(init=False)
    judged: list[Judged] = field(default_factory=list)
    windows: list[_FaultWindow] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.report = Report(mode=self.mode.name, started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
        self.rng = random.Random(SEED)
        self.content = self.work / "content"

    # -- the run -----------------------------------------------------------------

    def run(self) -> Report:
        started = time.monotonic()
        report = self.report
        report.code = code_state(self.root)
        check_breakages()
        run_as = choose_run_as(BIN / "python", self.work)
        if run_as.user is not None:
            os.chown(self.cache, run_as.user, run_as.group if run_as.group is not None else -1)
        articles = self._write_newsroom()
        port = free_port()
        command, label = Service.command_for(self.root, port, Path(tempfile.mkdtemp(dir=self.work)))
        self.service = Service(
            self.root, self.content, self.cache, self.work / "service.log", port, SETTLE_S, run_as, command
        )
        report.service, report.run_as = label, run_as.label
        report.settle_s, report.allowance_s = SETTLE_S, ALLOWANCE_S
        self.context = Context(self.service, self.content, self.cache, run_as, self.tmpfs_mb, self.rng)
        try:
            self.service.start()
            ready = self.service.wait_ready(300)
            self.say(f"service ready {ready:.1f} s after start; {self.service.tree().describe()}")
            report.notes.append(f"first build: the site's feed answered 200 {ready:.1f} s after the start")
            if self.service.health() is None:
                report.notes.append("no /healthz: the index was found as the newest *.sqlite3 in the cache folder")
            self._load(articles)
            self._final_check()
        finally:
            self.service.stop()
        self._tally()
        report.elapsed_s = time.monotonic() - started
        self._dump()
        return report

    def _dump(self) -> None:
        """With FEEDS_CHAOS_DUMP set to a folder, the timeline, every judged answer and the service's log go
        there, for a post-mortem."""
        folder = os.environ.get("FEEDS_CHAOS_DUMP")
        if not folder:
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.service.log, Path(folder, "service.log"))
        timeline = self.timeline.snapshot()
        found = {"spans": timeline.spans, "origin": timeline.origin, "never_valid": timeline.never_valid}
        with open(Path(folder, "chaos-dump.pickle"), "wb") as output:
            pickle.dump({"timeline": found, "judged": self.judged, "load_start": self.load_start}, output)

    def _write_newsroom(self) -> list[Article]:
        self.content.mkdir()
        write_site(self.content)
        newest = int(time.time()) - 600
        articles = initial_articles(self.mode.articles, newest, SEED)
        photo = photo_bytes()
        for article in articles:
            write_bundle(self.content / article.path, article, photo)
        age(self.content, 3600)
        self.static_before = time.time()
        self.report.articles, self.report.sections, self.report.topics = len(articles), len(SECTIONS), len(TOPICS)
        self.say(f"newsroom: {len(articles)} articles in {self.content}")
        return articles

    def _load(self, articles: list[Article]) -> None:
        mode, report = self.mode, self.report
        hot = self.rng.sample(TOPICS, mode.polled_topics // 2)
        others = self.rng.sample([topic for topic in TOPICS if topic not in hot], mode.polled_topics - len(hot))
        self.polled = [
            Scope(),
            *(Scope(section=slug) for slug, _ in SECTIONS),
            *(Scope(topic=slugify(t)) for t in hot + others),
        ]
        paths = tuple(scope.feed(name) for scope in self.polled for name in FORMATS)
        report.polled_feeds, report.pollers = len(paths), READERS
        extra = mode.topics_after_fault
        checked = "every feed" if extra is None else f"the {len(paths)} polled feeds and {extra} other topics' feeds"
        report.notes.append(f"checked one by one after each fault: {checked}; at the end: every feed")
        self.timeline = Timeline(ALLOWANCE_S)
        self.visibility = Visibility(self.service.port, lambda article_id: self.writer.listed(article_id))
        self.writer = Writer(
            self.content, self.timeline, self.visibility, articles, photo_bytes(), hot, SEED, mode.writer_pause_s
        )
        budget = mode.churn_s + len(FAULTS) * (mode.gap_s + mode.hold_s + 3 * RECOVERY_S) + 300
        plan = Plan(self.service.port, paths, READERS, mode.reader_pause_s, budget, self.work / "answers.pickle", SEED)
        pollers = Pollers(plan)
        self.load_start = time.time()
        cpu_before = time.process_time()
        pollers.start()
        self.visibility.start()
        try:
            self.say(f"load: {READERS} readers on {len(paths)} feeds; the writer churns for {mode.churn_s:g} s")
            self.writer.churn(mode.churn_s)
            self._faults()
            self._quiet()
        finally:
            answers = pollers.finish()
            self.visibility.stop()
            report.load_s = time.time() - self.load_start
            report.writer_ops = dict(self.writer.ops)
            report.notes.append(
                f"the harness's own CPU during the load: readers {pollers.cpu_s:.0f} s, writer, prober and checks"
                f" {time.process_time() - cpu_before:.0f} s, in {report.load_s:.0f} s on {os.cpu_count()} cores"
            )
        self.say(f"readers done: {len(answers)} answers")
        checker = Checker(self.timeline.snapshot(), FEED_SIZE, self.static_before)
        self.judged += [judge(checker, seen) for seen in sorted(answers, key=lambda seen: seen.t0)]
        report.edit_delay, report.new_delay = (
            Delays.of(self.visibility.delays[kind], self.visibility.missed[kind], self.visibility.slowest[kind])
            for kind in ("edit", "new")
        )

    def _faults(self) -> None:
        aborted = ""
        for number, fault in enumerate(FAULTS):
            if aborted:
                result = FaultResult(fault.letter, fault.name, note=aborted)
                self.report.faults.append(result)
                continue
            # Each fault meets a settled service: broken saves fixed, every change shown.
            self.writer.fix_broken()
            self.visibility.wait_idle(SETTLE_S + 3)
            self._caught_up()
            try:
                self._fault(fault)
            except RuntimeError as error:  # the service could not be started again
                aborted = f"the service could not be restarted: {str(error)[:300]}"
                self.report.notes.append(aborted)
            last = number == len(FAULTS) - 1
            self.writer.churn(self.mode.gap_s, embargoes=not last)

    def _fault(self, fault: Fault) -> None:
        result = FaultResult(fault.letter, fault.name)
        self.report.faults.append(result)
        reason = fault.cannot_run(self.context)
        if reason:
            result.note = reason
            self.say(f"fault ({fault.letter}) {fault.name}: not run, {reason}")
            return
        result.ran, injected = True, True
        self.context.killed = set()
        before, log_offset = self.service.tree(), self.service.log_size()
        start = time.time()
        try:
            try:
                result.note = fault.inject(self.context)
            except (NotInjected, OSError) as error:
                result.note, injected = f"could not be injected: {error}", False
            if fault.restore is not None:
                time.sleep(self.mode.hold_s / 2)
                result.note += self._provoke(fault)
                time.sleep(self.mode.hold_s / 2)
        finally:
            if fault.restore is not None:
                fault.restore(self.context)
        end = time.time()
        self.say(f"fault ({fault.letter}) {fault.name}: {result.note}")
        result.recovery_s, missing = self._recover(fault, before, end)
        if result.recovery_s is None:
            result.examples.append(f"not recovered within {RECOVERY_S:g} s: {missing}")
            result.examples += [f"service log: {line}" for line in self.service.log_errors(log_offset)]
            result.examples.append(self._restart())
        scopes = self.polled + self._sample_topics(self.mode.topics_after_fault)
        checks = self._check_feeds(scopes)
        result.feeds_checked, result.feeds_wrong = len(checks), sum(1 for j in checks if j.category)
        result.started_s, result.ended_s = start - self.load_start, end - self.load_start
        result.checked_s = time.time() - self.load_start
        self.windows.append(_FaultWindow(result, start, time.time(), injected))
        recovered = "—" if result.recovery_s is None else f"{result.recovery_s:.2f} s"
        self.say(
            f"  recovery {recovered}; {result.feeds_checked - result.feeds_wrong}/{result.feeds_checked} feeds right"
        )

    def _provoke(self, fault: Fault) -> str:
        """Makes the service act during a lasting fault; says what was done."""
        try:
            if fault.provoke == "edit":
                section, marker = self.writer.edit_newest()
                return f"; then an edit ({marker}) in {section}"
            if fault.provoke == "note":
                return f"; then {self.writer.note(self.context.locked_section)}"
        except (OSError, RuntimeError) as error:
            return f"; the change meant to make the service act failed: {error}"
        return ""

    def _recover(self, fault: Fault, before: Tree, end: float) -> tuple[float | None, str]:
        """Seconds from the end of the fault until an edit made then is visible and the service is whole."""
        deadline = end + RECOVERY_S
        try:
            section, marker = self.writer.edit_newest()
        except (OSError, RuntimeError) as error:
            return None, f"the recovery edit failed: {error}"
        visible = False
        missing = "nothing checked"
        for _ in range(int(RECOVERY_S / 0.05) + 50):
            if time.time() > deadline:
                break
            if not visible:
                answer = get(self.service.port, f"/feeds/{section}/rss.xml", timeout=2)
                visible = answer.status == 200 and marker.encode() in answer.body
            problems = [] if visible else [f"the edit ({marker}) is not visible in /feeds/{section}/rss.xml"]
            problems.append(fault.whole_again(self.context, before))
            problems.append(self.service.unhealthy())
            if not self.service.index_is_whole():
                problems.append("no whole index file (missing, empty or not SQLite)")
            missing = "; ".join(problem for problem in problems if problem)
            if not missing:
                return time.time() - end, ""
            time.sleep(0.05)
        return None, missing

    def _restart(self) -> str:
        """Starts the service again so that the next fault meets a working one; empties its cache if it must."""
        self.service.stop()
        self.service.start()
        try:
            self.service.wait_ready(RESTART_S)
            return "the harness restarted the service"
        except RuntimeError as error:
            self.service.stop()
            for entry in self.cache.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            self.service.start()
            self.service.wait_ready(300)
            return (
                f"the harness restarted the service with an emptied cache folder (a restart alone: {str(error)[:200]})"
            )

    def _sample_topics(self, count: int | None) -> list[Scope]:
        polled = set(self.polled)
        topics = [Scope(topic=slug) for slug in TOPIC_SLUGS if Scope(topic=slug) not in polled]
        return topics if count is None else self.rng.sample(topics, min(count, len(topics)))

    def _check_feeds(self, scopes: Iterable[Scope]) -> list[Judged]:
        """Each scope's feeds one after the other, checked at once against the files."""
        checker = Checker(self.timeline.snapshot(), FEED_SIZE, self.static_before)
        found = [judge(checker, self._fetch(scope.feed(name))) for scope in scopes for name in FORMATS]
        self.judged += found
        return found

    def _caught_up(self) -> None:
        """Waits, at most the allowance, until the site's and sections' feeds show every change made so far."""
        deadline = time.time() + ALLOWANCE_S
        for _ in range(int(ALLOWANCE_S / 0.05) + 1):
            if time.time() > deadline:
                return
            timeline = self.timeline.snapshot()
            timeline.allowance = 0.0
            checker = Checker(timeline, FEED_SIZE, self.static_before)
            if all(judge(checker, self._fetch(scope.feed("rss.xml"))).category is None for scope in self.polled[:5]):
                return
            time.sleep(0.05)

    def _fetch(self, path: str) -> Seen:
        answer = get(self.service.port, path)
        items, note = answer_of(path, answer.status, answer.body) if answer.status else (None, answer.error)
        return Seen(-1, path, answer.t0, answer.t1, answer.status, "retry-after" in answer.headers, items, note)

    def _quiet(self) -> None:
        """Broken saves fixed, then no change until every embargo has lifted and the allowance has passed."""
        self.writer.fix_broken()
        self.visibility.wait_idle(SETTLE_S + 5)
        spans = self.timeline.snapshot().spans.values()
        last = max(span.done for history in spans for span in history)
        release = max(
            (s.state.published for h in spans for s in h if s.state and s.state.published < last + 60), default=0
        )
        until = max(last, release) + ALLOWANCE_S + 0.5
        self.say(f"quiet for {max(until - time.time(), 0):.1f} s")
        time.sleep(min(max(until - time.time(), 0), 60))

    def _final_check(self) -> None:
        final = self.report.final = FinalCheck()
        on_disk, expected = read_disk(self.content), self.writer.on_disk()
        differences = [
            f"{key}: disk {on_disk.get(key)}, harness {expected.get(key)}"
            for key in sorted(set(on_disk) | set(expected))
            if on_disk.get(key) != expected.get(key)
        ]
        final.disk_agrees, final.disk_differences = not differences, differences[:20]
        scopes = [Scope(), *(Scope(section=slug) for slug, _ in SECTIONS), *self._sample_topics(None), *self.polled[5:]]
        checks = self._check_feeds(list(dict.fromkeys(scopes)))
        final.feeds, final.wrong = len(checks), sum(1 for judged in checks if judged.category)
        final.examples = [_example(judged, self.load_start) for judged in checks if judged.category][:EXAMPLES]
        self.say(f"final check: {final.feeds - final.wrong} of {final.feeds} feeds right")

    # -- the report ----------------------------------------------------------------

    def _tally(self) -> None:
        report = self.report
        self.judged.sort(key=lambda judged: judged.seen.t0)
        report.requests = len(self.judged)
        report.by_status = dict(sorted(Counter(_status(j.seen) for j in self.judged).items()))
        counts = Counter(j.category for j in self.judged if j.category)
        report.counts = {name: counts[name] for name in (*FAILURES, "unavailable", "no answer", "other status")}
        for category in (*FAILURES, "no answer", "other status"):
            examples = [_example(j, self.load_start) for j in self.judged if j.category == category][:EXAMPLES]
            if examples:
                report.examples[category] = examples
        for window in self.windows:
            during = [j for j in self.judged if j.seen.t1 >= window.start and j.seen.t0 <= window.checked]
            result = window.result
            result.requests = len(during)
            counts = Counter(j.category for j in during if j.category)
            result.counts = {name: counts[name] for name in counts}
            bad = [j for j in during if j.category in FATAL]
            result.examples += [_example(j, self.load_start) for j in bad[:3]]
            result.survived = window.injected and result.recovery_s is not None and result.feeds_wrong == 0 and not bad


def code_state(root: Path) -> str:
    """The commit the service runs from, and whether its code has uncommitted changes."""

    def git(*arguments: str) -> str:
        try:
            done = subprocess.run(["git", *arguments], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "feeds", "app.py")
    return f"commit {commit}" + (" with uncommitted changes in feeds/ or app.py" if dirty else "")


def run(mode: Mode, root: Path = REPO, say: Callable[[str], None] | None = None) -> Report:
    """A whole run in a fresh temporary folder (outside pytest's, which the service may not be able to
    read), with the cache on a tmpfs when root; everything is removed and unmounted on the way out."""
    speak = say or _stderr
    os.umask(0o022)
    work = Path(tempfile.mkdtemp(prefix="feeds-chaos-"))
    work.chmod(0o755)
    cache = work / "cache"
    cache.mkdir()
    try:
        with tmpfs(cache, mode.tmpfs_mb) as mounted:
            if not mounted:
                speak("no tmpfs for the cache folder (needs root): the disk-full fault will not run")
            chaos = ChaosRun(mode, root, work, cache, mode.tmpfs_mb if mounted else None, speak)
            return chaos.run()
    finally:
        _unlock(work)
        shutil.rmtree(work, ignore_errors=True)


def _unlock(work: Path) -> None:
    """Gives every folder its permissions back, so that nothing a fault left behind stops the clean-up."""
    for folder, names, _ in os.walk(work):
        for name in names:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(0o755)


_started = time.monotonic()


def _stderr(message: str) -> None:
    print(f"[chaos {time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


def _status(seen: Seen) -> str:
    return str(seen.status) if seen.status else "no answer"


def _example(judged: Judged, origin: float) -> str:
    seen = judged.seen
    return f"+{seen.t0 - origin:.1f} s {seen.path} ({_status(seen)}): {judged.detail or judged.category}"
