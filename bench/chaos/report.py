"""The chaos run's findings: a dataclass, a plain-text table, JSON, and the Markdown of RELIABILITY.md."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: Answer categories that are failures, worst first; `unavailable` (503 with Retry-After) is allowed.
FAILURES = ("5xx", "malformed", "torn", "leak", "short", "stale")
OTHER = ("unavailable", "no answer", "other status")
#: Acceptance targets.
EDIT_P95_S = 0.2
NEW_MARGIN_S = 0.2
RECOVERY_S = 10.0
EXAMPLES = 4

MEANING = {
    "5xx": "a 5xx answer, or a 503 without Retry-After",
    "malformed": "a body that is not well-formed XML / JSON Feed, or an item without GUID, title or body",
    "torn": "an item whose title and end-of-body marker disagree: a half-read file",
    "leak": "a draft, an article before its embargo, a broken file, or an article deleted longer ago than allowed",
    "short": "an article missing that the files held at every moment of the window (so also fewer items)",
    "stale": "any other mismatch: an old version past the allowed delay, wrong order, a wrong GUID",
    "unavailable": "503 with Retry-After (allowed)",
    "no answer": "connection refused, reset or timed out",
    "other status": "any other status (3xx, 4xx other than a 404 for an empty topic)",
}


@dataclass
class Delays:
    """Save → visible, in seconds."""

    count: int = 0
    p50: float | None = None
    p95: float | None = None
    max: float | None = None
    #: Changes never seen in time, with what they were.
    missed: list[str] = field(default_factory=list)
    #: The slowest changes, as "what: delay".
    slowest: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, values: list[float], missed: list[str], slowest: list[tuple[float, str]]) -> Delays:
        named = [f"{what}: {_ms(delay)}" for delay, what in slowest]
        if not values:
            return cls(0, None, None, None, missed, named)
        ordered = sorted(values)
        # The nearest-rank 95th percentile: a value that was measured, at or above 95% of the others.
        p95 = ordered[max(0, -(-95 * len(ordered) // 100) - 1)]
        return cls(len(values), statistics.median(ordered), p95, ordered[-1], missed, named)

    def describe(self) -> str:
        if not self.count:
            return f"none measured; {len(self.missed)} never visible" if self.missed else "none measured"
        missed = f", {len(self.missed)} never visible" if self.missed else ""
        return f"p50 {_ms(self.p50)}, p95 {_ms(self.p95)}, max {_ms(self.max)} ({self.count} changes{missed})"


@dataclass
class FaultResult:
    letter: str
    name: str
    ran: bool = False
    survived: bool = False
    #: Why it was not run, or what went wrong.
    note: str = ""
    #: Seconds from the start of the load: injection, end of the fault, end of its checks.
    started_s: float = 0.0
    ended_s: float = 0.0
    checked_s: float = 0.0
    requests: int = 0
    #: Answers by category during the fault and its checks.
    counts: dict[str, int] = field(default_factory=dict)
    #: From the end of the fault until an edit made then was visible, with the service whole again.
    recovery_s: float | None = None
    feeds_checked: int = 0
    feeds_wrong: int = 0
    examples: list[str] = field(default_factory=list)

    def verdict(self) -> str:
        if not self.ran:
            return f"not run ({self.note})"
        return "yes" if self.survived else "**no**"


@dataclass
class FinalCheck:
    feeds: int = 0
    wrong: int = 0
    examples: list[str] = field(default_factory=list)
    #: Whether the files on disk say what the harness believes it wrote.
    disk_agrees: bool = True
    disk_differences: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return self.feeds > 0 and self.wrong == 0 and self.disk_agrees


@dataclass
class Report:
    """Everything one run found; `acceptance` holds it against the targets of the issue."""

    #: "short" or "long".
    mode: str
    started: str = ""
    elapsed_s: float = 0.0
    #: How the service was started ("flask serve"), as whom, and from which commit.
    service: str = ""
    run_as: str = ""
    code: str = ""
    articles: int = 0
    sections: int = 0
    topics: int = 0
    polled_feeds: int = 0
    pollers: int = 0
    settle_s: float = 2.0
    #: The visibility delay an answer is allowed: settle time + 1 s.
    allowance_s: float = 3.0
    #: Seconds of reading, from the first reader's start to the last one's end.
    load_s: float = 0.0
    #: How many times the writer did each thing.
    writer_ops: dict[str, int] = field(default_factory=dict)
    #: Every answer checked: the readers', and those of the checks after faults and at the end.
    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    #: Answers by category (see MEANING), and a few examples of each failure.
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    edit_delay: Delays = field(default_factory=Delays)
    new_delay: Delays = field(default_factory=Delays)
    faults: list[FaultResult] = field(default_factory=list)
    final: FinalCheck = field(default_factory=FinalCheck)
    notes: list[str] = field(default_factory=list)

    # -- acceptance --------------------------------------------------------------

    def acceptance(self) -> list[tuple[str, str, bool]]:
        """(criterion, what was measured, met) for each target of the issue."""
        rows = [
            (f"0 {category}", str(self.counts.get(category, 0)), self.counts.get(category, 0) == 0)
            for category in ("short", "malformed", "torn", "leak", "5xx")
        ]
        ran = [fault for fault in self.faults if fault.ran]
        survived = [fault.letter for fault in ran if fault.survived]
        not_run = [fault.letter for fault in self.faults if not fault.ran]
        said = f"{len(survived)} of {len(ran)} run" + (f"; not run: {', '.join(not_run)}" if not_run else "")
        rows.append(("every fault survived", said, bool(self.faults) and len(survived) == len(ran) == len(self.faults)))
        final = f"{self.final.feeds - self.final.wrong} of {self.final.feeds} feeds equal"
        if not self.final.disk_agrees:
            final += "; the disk disagrees with the harness"
        rows.append(("final item sets equal the files", final, self.final.equal))
        edit = self.edit_delay
        rows.append(
            (
                f"edit → visible p95 ≤ {_ms(EDIT_P95_S)}",
                edit.describe(),
                edit.count > 0 and not edit.missed and edit.p95 is not None and edit.p95 <= EDIT_P95_S,
            )
        )
        new, bound = self.new_delay, self.settle_s + NEW_MARGIN_S
        rows.append(
            (
                f"new bundle → visible, every one ≤ settle + {_ms(NEW_MARGIN_S)} = {_ms(bound)}",
                new.describe(),
                new.count > 0 and not new.missed and new.max is not None and new.max <= bound,
            )
        )
        return rows

    def shortfalls(self) -> list[str]:
        return [f"{criterion}: {measured}" for criterion, measured, met in self.acceptance() if not met]

    @property
    def clean(self) -> bool:
        return not self.shortfalls()

    # -- output ------------------------------------------------------------------

    def table(self) -> str:
        """The whole report as plain text, for a terminal or a failed test."""
        lines = [
            f"chaos run ({self.mode}), {self.started}, {self.elapsed_s:.0f} s; {self.service}, run as {self.run_as}; "
            f"{self.code}",
            f"{self.articles} articles, {self.sections} sections, {self.topics} topics; {self.pollers} readers on "
            f"{self.polled_feeds} feeds for {self.load_s:.0f} s; settle {self.settle_s:g} s, allowance "
            f"{self.allowance_s:g} s",
            f"writer: {_pairs(self.writer_ops)}",
            f"requests: {self.requests}; by status: {_pairs(self.by_status)}",
            "answers: " + ", ".join(f"{name} {self.counts.get(name, 0)}" for name in (*FAILURES, *OTHER)),
        ]
        for category, examples in self.examples.items():
            lines += [f"  {category}: {example}" for example in examples]
        lines += [
            f"edits → visible: {self.edit_delay.describe()}",
            f"new bundles → visible: {self.new_delay.describe()}",
        ]
        lines += [
            f"  never visible: {missed}" for missed in (self.edit_delay.missed + self.new_delay.missed)[:EXAMPLES]
        ]
        header = f"{'fault':<44} {'survived':<10} {'5xx':>4} {'short':>5} {'other':>5} {'recovery':>9}  feeds"
        lines += ["", header]
        for fault in self.faults:
            others = sum(fault.counts.get(name, 0) for name in ("malformed", "torn", "leak", "stale"))
            lines.append(
                f"({fault.letter}) {fault.name:<40} {fault.verdict():<10} {fault.counts.get('5xx', 0):>4} "
                f"{fault.counts.get('short', 0):>5} {others:>5} {_seconds(fault.recovery_s):>9}  "
                f"{fault.feeds_checked - fault.feeds_wrong}/{fault.feeds_checked} right"
            )
            lines += [f"      {note}" for note in ([fault.note] if fault.ran and fault.note else []) + fault.examples]
        lines += [
            "",
            f"final check: {self.final.feeds - self.final.wrong} of {self.final.feeds} feeds equal the files"
            + ("" if self.final.disk_agrees else "; the disk disagrees with the harness"),
        ]
        lines += [f"  {example}" for example in self.final.examples + self.final.disk_differences[:EXAMPLES]]
        lines += ["", "acceptance:"]
        lines += [
            f"  [{'x' if met else ' '}] {criterion}: {measured}" for criterion, measured, met in self.acceptance()
        ]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def markdown(self) -> str:
        """RELIABILITY.md: what was run, the acceptance targets, and every figure behind them."""
        met = sum(1 for *_, ok in self.acceptance() if ok)
        out = [
            "# Reliability",
            "",
            "Written by `python -m bench.chaos"
            + (" --long" if self.mode == "long" else " --short")
            + "`: the service as deployed, over a synthetic newsroom, read by feed readers while a writer"
            " changes the files and faults are injected; every answer is checked against what the files said"
            " at that moment. Do not edit by hand: run it again.",
            "",
            f"- Run: {self.started}, {self.elapsed_s / 60:.1f} min, {self.mode} mode; {self.code}.",
            f"- Service: {self.service}, settle time {self.settle_s:g} s; run as {self.run_as}.",
            f"- Newsroom: {self.articles} articles in {self.sections} sections, {self.topics} topics.",
            f"- Load: {self.pollers} readers for {self.load_s:.0f} s on {self.polled_feeds} feeds (site, sections,"
            " a sample of topics including those being edited; RSS, Atom and JSON Feed), half of them conditional.",
            f"- Writer: {_pairs(self.writer_ops)}.",
            f"- An answer received during [t0, t1] is right if it holds the newest items of its feed as the files stood"
            f" at some moment of [t0 − {self.allowance_s:g} s, t1] (settle time + 1 s); a 304 stands for the reader's"
            " last 200; embargoed articles are public from their date, not before.",
            "",
            f"## Acceptance: {met} of {len(self.acceptance())} met",
            "",
            "| target | measured | met |",
            "|---|---|---|",
        ]
        out += [
            f"| {criterion} | {measured} | {'yes' if ok else '**no**'} |"
            for criterion, measured, ok in self.acceptance()
        ]
        out += ["", "## Answers", "", f"{self.requests} requests; by status: {_pairs(self.by_status)}.", ""]
        out += ["| category | count | meaning |", "|---|---|---|"]
        out += [f"| {name} | {self.counts.get(name, 0)} | {MEANING[name]} |" for name in (*FAILURES, *OTHER)]
        for category, examples in self.examples.items():
            out += ["", f"Examples, {category}:", ""] + [f"- {_code(example)}" for example in examples]
        out += [
            "",
            "## Save → visible",
            "",
            "Measured from the end of the save (close or rename) to the first of three answers in a row, on fresh"
            " connections, showing the change in the section's RSS.",
            "",
            f"- Edits: {self.edit_delay.describe()}.",
            f"- New bundles: {self.new_delay.describe()}.",
        ]
        out += [f"- Never visible: {_code(missed)}" for missed in (self.edit_delay.missed + self.new_delay.missed)[:8]]
        out += [f"- Slowest: {_code(slow)}" for slow in self.edit_delay.slowest + self.new_delay.slowest]
        out += [
            "",
            "## Faults",
            "",
            "Each injected while the readers go on; the writer pauses. Recovery: from the end of the fault until"
            f" an edit made then is visible and the service is whole (at most {RECOVERY_S:g} s); then feeds are"
            " checked one by one. Counts are of the readers' answers during the fault and its checks.",
            "",
            "| fault | survived | requests | 5xx | short | malformed, torn, leak | stale | 503 + Retry-After "
            "| no answer | recovery | feeds right |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for fault in self.faults:
            counts = fault.counts
            bad = sum(counts.get(name, 0) for name in ("malformed", "torn", "leak"))
            out.append(
                f"| ({fault.letter}) {fault.name} | {fault.verdict()} | {fault.requests} | {counts.get('5xx', 0)} | "
                f"{counts.get('short', 0)} | {bad} | {counts.get('stale', 0)} | {counts.get('unavailable', 0)} | "
                f"{counts.get('no answer', 0)} | {_seconds(fault.recovery_s)} | "
                f"{fault.feeds_checked - fault.feeds_wrong} of {fault.feeds_checked} |"
            )
        for fault in self.faults:
            details = ([fault.note] if fault.ran and fault.note else []) + fault.examples
            if details:
                out += ["", f"({fault.letter}) {fault.name}:", ""] + [f"- {_code(detail)}" for detail in details]
        out += [
            "",
            "## Final check",
            "",
            "After a quiet period, every feed (site, sections, topics; three formats) against the files as they are,"
            " read back from the disk.",
            "",
            f"- {self.final.feeds - self.final.wrong} of {self.final.feeds} feeds equal what the files say.",
        ]
        out += [f"- {_code(example)}" for example in self.final.examples]
        if not self.final.disk_agrees:
            out += [f"- The disk disagrees with the harness: {_code(d)}" for d in self.final.disk_differences[:8]]
        if self.notes:
            out += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        return "\n".join(out) + "\n"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Report:
        data: dict[str, Any] = json.loads(text)
        data["edit_delay"] = Delays(**data["edit_delay"])
        data["new_delay"] = Delays(**data["new_delay"])
        data["faults"] = [FaultResult(**fault) for fault in data["faults"]]
        data["final"] = FinalCheck(**data["final"])
        return cls(**{key: value for key, value in data.items() if key in {f.name for f in fields(cls)}})


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.0f} ms"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items()) or "none"


def _code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "/") + "`"
