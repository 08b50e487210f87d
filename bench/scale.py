"""`python -m bench.scale [--articles N]`: the whole archive on one machine.

On a corpus whose dates spread over 25 years (10 sections, 200 topics, 1–3 photos an article, as
a national newsroom's archive): the first index build; a warm start; the service's idle CPU with
no edits; save → visible for a new article, for the newest article and for one 20 years old,
with the verification at its usual pace and at a hundred times it; a cached feed's median
latency against the same on a 1k corpus; and the memory of each web worker and of the indexer.
Writes bench/out/scale-<N>.md; `python -m bench` puts the same section in BENCHMARKS.md.
"""

# ruff: noqa: S108, S311 - a harness: fixed tools, /tmp by default, seeded pauses
from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

from . import corpus, inprocess, load, servers
from .report import Findings

FEED = "/feeds/rss.xml"
YEARS = 25.0
#: One edit must show within this, or it counts as never.
EDIT_TIMEOUT_S = 10.0


def run(work: Path, articles: int, idle_seconds: float, edits: int, wrk_seconds: int) -> Findings:
    label = f"{articles:,}"
    scale = Findings(
        f"The whole archive on one machine ({label} articles over {YEARS:.0f} years)",
        "From `python -m bench.scale`; every row from this one run. Idle CPU is of the whole service\n"
        "(supervisor, web workers and indexer) over a quiet window after its start-up pass.",
        label,
        targets=True,
    )
    started = time.monotonic()
    content, reused = corpus.ensure(work / f"corpus-{articles}-{YEARS:.0f}y", articles, years=YEARS)
    print(f"corpus {label}: {'reused' if reused else f'made in {time.monotonic() - started:.0f} s'}", flush=True)
    run_dir = work / "run-scale"
    shutil.rmtree(run_dir, ignore_errors=True)
    cache = run_dir / "cache"
    try:
        built = inprocess.time_index(content, cache, timeout=3600, cold=True)
        target = "≤ 30 s" if articles <= 100_000 else "≤ 5 min" if articles <= 1_000_000 else ""
        memory = "page cache emptied first: the corpus read from disk" if built.cold else "page cache as it was"
        scale.add(f"first build ({memory})", f"{built.wall_s:.1f} s", f"`{built.output}`", target=target)
        if articles <= 100_000:  # a million take minutes more
            shutil.rmtree(cache)
            warm = inprocess.time_index(content, cache, timeout=3600)
            again = "first build again, fresh cache dir, the corpus in memory"
            scale.add(again, f"{warm.wall_s:.1f} s", f"`{warm.output}`")
        server = servers.start_service(content, cache, run_dir / "service.log")
        scale.add("warm start: start → first 200", f"{server.wait_ready(FEED, 600):.2f} s", target="≤ 2 s")
        busy = server.wait_idle(1800, interval=1.0, share=0.05)
        scale.add("start-up pass (busy ≥ 5% of a core)", "never quiet" if busy is None else f"{busy:.1f} s")
        before, window_started = server.cpu_seconds(), time.monotonic()
        time.sleep(idle_seconds)
        share = (server.cpu_seconds() - before) / (time.monotonic() - window_started)
        scale.add(f"idle CPU over {idle_seconds:.0f} s, no edits", f"{share:.2%} of a core", target="≤ 1%")
        _visibility(scale, server, content, edits, "")
        _memory(scale, server, content)
        cached, cached_bytes = _cached_feed(server, wrk_seconds)
        server.stop()
        # The same verification at a hundred times its pace: edits must not wait for its slices.
        fast = servers.start(
            "service", server.port, servers.server_command(server.port),
            {**servers.service_env(content, cache), "FEEDS_VERIFY_PER_SECOND": "10000"}, run_dir / "service-fast.log",
        )  # fmt: skip
        fast.wait_ready(FEED, 600)
        # Its start-up pass (half a minute at 1M) holds edits back until it is done: wait it out
        # by its log line, since at this pace the service is never idle, by design.
        fast_log = run_dir / "service-fast.log"
        deadline = time.monotonic() + 1800
        while b"full pass:" not in fast_log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.5)
        _visibility(scale, fast, content, edits, " (verification at 10,000 bundles/s)")
        fast.stop()
        small, small_bytes = _small_corpus_feed(work, run_dir, wrk_seconds)
        ratio = cached.p50 / small.p50 if small.p50 else float("nan")
        # The feed's size says whether the two answers are alike: it holds a period, not a count.
        detail = (
            f"{cached.p50:.2f} ms vs {small.p50:.2f} ms, for {cached_bytes / 1000:,.0f} KB vs"
            f" {small_bytes / 1000:,.0f} KB; {cached.requests_per_second:,.0f} req/s at {label}"
        )
        scale.add(f"cached feed p50 at {label} ÷ p50 at 1k", f"{ratio:.2f}", detail, target="≤ 1.2")
    finally:
        servers.stop_all()
    output = servers.REPO / "bench" / "out" / f"scale-{articles}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(scale.markdown(), encoding="utf-8")
    return scale


def _visibility(scale: Findings, server: servers.Server, content: Path, edits: int, how: str) -> None:
    """Save → visible, p50 and p95 over `edits` each: a new article, the newest, one 20 years old."""
    kinds: dict[str, list[float | None]] = {
        "a new article": [], "the newest article": [], "an article 20 years old": []
    }  # fmt: skip
    added: list[Path] = []
    try:
        _edit(server, content, edits, kinds, added)
    finally:
        # The corpus is reused by later runs: articles left behind would pile up in its newest
        # hour (two hundred after ten runs, all in the subscription feed, four times its size).
        for bundle in added:
            shutil.rmtree(bundle, ignore_errors=True)
    for kind, times in kinds.items():
        seen = sorted(t for t in times if t is not None)
        missed = len(times) - len(seen)
        p50 = seen[len(seen) // 2] if seen else float("nan")
        p95 = seen[min(len(seen) - 1, round(0.95 * (len(seen) - 1)))] if seen else float("nan")
        never = f"; {missed} never within {EDIT_TIMEOUT_S:.0f} s" if missed else ""
        detail = f"p50 {p50:.0f} ms over {len(times)} edits{never}"
        scale.add(f"save → visible, {kind}{how}", f"p95 {p95:.0f} ms", detail, target="p95 ≤ 200 ms")


def _edit(
    server: servers.Server, content: Path, edits: int, kinds: dict[str, list[float | None]], added: list[Path]
) -> None:
    """`edits` of each kind, each timed until visible; each new bundle is listed in `added` first."""
    newest = corpus.newest_bundle(content)
    old = corpus.bundle_of(content, corpus.number_published_before(content, timedelta(days=365.25 * 20)))
    pause = random.Random(7)
    for number in range(edits):
        for kind, times in kinds.items():
            token = f"merki{secrets.token_hex(4)}"
            if kind == "a new article":
                bundle = newest.parent / f"ny-frett-{token}"
                added.append(bundle)
                # Staged beside content/ (the same file system), then renamed in.
                staged = content.parent / f".staged-{token}"
                shutil.copytree(newest, staged)
                _retitle(staged / "index.md", token, id_too=True)
                os.rename(staged, bundle)  # a whole bundle, renamed into place: the atomic way to publish
                url = FEED
            else:
                bundle = newest if kind == "the newest article" else old
                _retitle(bundle / "index.md", token)
                url = f"/{bundle.parent.name}/{bundle.name}/"
            times.append(_visible(server, url, token.encode(), time.perf_counter()))
            time.sleep(pause.uniform(0.2, 0.7))
        if number == 0:
            print(f"  first edits: {kinds}", flush=True)


def _retitle(index: Path, token: str, id_too: bool = False) -> None:
    text = index.read_text(encoding="utf-8")
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if line.startswith("title: "):
            lines[number] = f'title: "Frétt {token}"'
        elif id_too and line.startswith("id: "):
            lines[number] = f"id: {token}"
    temporary = index.with_name(f".{index.name}.{token}")
    temporary.write_text("\n".join(lines), encoding="utf-8")
    os.replace(temporary, index)  # as editors save: whole, by rename


def _visible(server: servers.Server, url: str, token: bytes, started: float) -> float | None:
    while time.perf_counter() - started < EDIT_TIMEOUT_S:
        if token in load.probe(server.url(url), {"Cache-Control": "no-cache"}).body:
            return (time.perf_counter() - started) * 1000
        time.sleep(0.005)
    return None


def _memory(scale: Findings, server: servers.Server, content: Path) -> None:
    """Peak RSS of each web worker after every subscription feed and section page was asked for, and of the indexer."""
    sections = sorted(path.name for path in content.iterdir() if path.is_dir() and path.name[0] not in "._")
    urls = [FEED, "/feeds/atom.xml", "/feeds/feed.json", "/", "/feeds.opml"]
    urls += [f"/feeds/{section}/{name}" for section in sections for name in ("rss.xml", "atom.xml", "feed.json")]
    urls += [f"/{section}/" for section in sections]
    for _ in range(2):
        for url in urls:
            load.probe(server.url(url))
    family = _descendants(server.process.pid)
    workers = [pid for pid in family if not _is_indexer(pid) and not servers._children(pid)]
    indexer = [pid for pid in family if _is_indexer(pid)]
    sizes = sorted((servers._vm_hwm(pid) / 2**20 for pid in workers), reverse=True)
    each = ", ".join(f"{size:.0f}" for size in sizes)
    detail = f"each: {each} MB, after {2 * len(urls)} requests"
    scale.add("peak RSS per web worker", f"{max(sizes, default=0):.0f} MB", detail, target="≤ 100 MB")
    peak = max((servers._vm_hwm(pid) / 2**20 for pid in indexer), default=0)
    scale.add("peak RSS of the indexer", f"{peak:.0f} MB", "its start-up pass included", target="≤ 300 MB")


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_indexer(pid: int) -> bool:
    return " index " in f"{_command_line(pid)} "


def _descendants(pid: int) -> list[int]:
    found, pending = [], servers._children(pid)
    while pending:
        child = pending.pop()
        found.append(child)
        pending += servers._children(child)
    return found


def _cached_feed(server: servers.Server, seconds: int) -> tuple[load.WrkResult, int]:
    """wrk on the subscription feed once the service is quiet (its start-up pass, or the work of
    edits, done), and the feed's size in bytes: both sides of the p50 ratio are measured so."""
    server.wait_idle(600, interval=1.0, share=0.05)
    return load.wrk(server.url(FEED), seconds), len(load.probe(server.url(FEED)).body)


def _small_corpus_feed(work: Path, run_dir: Path, seconds: int) -> tuple[load.WrkResult, int]:
    """`_cached_feed` of a service over the 1k corpus."""
    content, _ = corpus.ensure(work / f"corpus-1000-{YEARS:.0f}y", 1_000, years=YEARS)
    cache = run_dir / "cache-1k"
    inprocess.time_index(content, cache, timeout=600)
    server = servers.start_service(content, cache, run_dir / "service-1k.log")
    try:
        server.wait_ready(FEED, 120)
        return _cached_feed(server, seconds)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--articles", type=int, default=100_000, help="corpus size (default 100,000; 1,000,000 for 1M)")
    parser.add_argument("--idle-seconds", type=float, default=300.0, help="quiet window for idle CPU (default 300)")
    parser.add_argument("--edits", type=int, default=20, help="edits of each kind (default 20)")
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run (default 5)")
    parser.add_argument(
        "--dir", type=Path, default=Path(os.environ.get("FEEDS_BENCH_DIR", "/tmp/feeds-bench")),
        help="corpora, caches and logs (default: $FEEDS_BENCH_DIR or /tmp/feeds-bench)",
    )  # fmt: skip
    options = parser.parse_args(argv)
    # Killed (a timeout, Ctrl-C): unwind, so that `finally` stops the servers this run started.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))
    servers.compile_service()
    scale = run(options.dir.resolve(), options.articles, options.idle_seconds, options.edits, options.seconds)
    print(scale.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
