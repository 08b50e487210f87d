"""Measurements inside the service's own code, each run in a fresh subprocess with the server's environment.

`python -m bench.inprocess render RUNS` prints, as JSON, the median time to describe the site
feed (index query) and to render it as RSS, each over RUNS fresh Feed objects.
`python -m bench.inprocess index` syncs the index, for a service without `flask index`.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .servers import BASE_URL, BIN, run, service_env


@dataclass(frozen=True, slots=True)
class RenderTiming:
    items: int
    feed_bytes: int
    describe_ms: float
    render_ms: float
    render_p90_ms: float
    cold_render_ms: float


@dataclass(frozen=True, slots=True)
class IndexTiming:
    #: Wall time of the whole command, interpreter start included.
    wall_s: float
    #: The time the command itself reports, if it says one.
    reported_s: float | None
    #: The last line it printed.
    output: str
    #: Whether the page cache was emptied just before (`time_index`'s `cold`).
    cold: bool = False


def time_render(content_dir: Path, cache_dir: Path, runs: int) -> RenderTiming:
    done = _run([str(BIN / "python"), "-m", "bench.inprocess", "render", str(runs)], content_dir, cache_dir, 600)
    return RenderTiming(**json.loads(done.stdout.strip().splitlines()[-1]))


def time_index(content_dir: Path, cache_dir: Path, timeout: float, cold: bool = False) -> IndexTiming:
    """Runs `flask --app app index` (or a plain sync if the command does not exist yet) and times it.

    With `cold`, the kernel's page cache is emptied first (see `drop_page_cache`), so that the corpus
    is read from disk, as on a new node; `IndexTiming.cold` says whether that could be done.
    """
    flask = [str(BIN / "flask"), "--app", "app"]
    has_command = " index " in _run([*flask, "--help"], content_dir, cache_dir, 60).stdout
    command = [*flask, "index"] if has_command else [str(BIN / "python"), "-m", "bench.inprocess", "index"]
    dropped = drop_page_cache() if cold else False
    started = time.perf_counter()
    done = _run(command, content_dir, cache_dir, timeout)
    wall = time.perf_counter() - started
    output = (done.stdout.strip() or done.stderr.strip() or "(no output)").splitlines()[-1]  # its summary line
    said = re.search(r"in (\d+(?:\.\d+)?) ?s\b", output)
    return IndexTiming(wall, float(said[1]) if said else None, output, dropped)


def drop_page_cache() -> bool:
    """Writes out and drops the kernel's page cache, dentries and inodes; False where this process
    may not (it takes root). A first build's time depends on it: the same corpus and command took
    49 s just after other benchmarks had pushed the corpus out of memory, and 37 s with it in memory."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n", encoding="ascii")
    except OSError:
        return False
    return True


def _run(command: list[str], content_dir: Path, cache_dir: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    done = run(command, service_env(content_dir, cache_dir), timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def _render(runs: int) -> RenderTiming:
    """A miss as it happens: one article changed (so one item is new), the other items kept;
    and, apart, a cold render with no item kept at all (the first render after a start)."""
    import dataclasses

    from feeds import create_app
    from feeds.bounded import BoundedCache
    from feeds.description import Scope
    from feeds.formats import format_for
    from feeds.render import syndication

    publisher = create_app().extensions["feeds"]
    if not publisher.feed(Scope(), BASE_URL).articles:
        publisher.sync_now(wait_seconds=60)
    render = format_for("rss.xml").render
    describe_times: list[float] = []
    render_times: list[float] = []
    cold_times: list[float] = []
    for attempt in range(runs + 5):
        started = time.perf_counter()
        feed = publisher.feed(Scope(), BASE_URL)  # a fresh description each time: no cache keyed on it can hit
        described = time.perf_counter()
        newest, *rest = feed.articles
        edited = dataclasses.replace(newest, title=f"{newest.title} ({attempt})")
        feed = dataclasses.replace(feed, articles=(edited, *rest))
        began = time.perf_counter()
        document = render(feed)
        rendered = time.perf_counter()
        if attempt >= 5:
            describe_times.append((described - started) * 1e3)
            render_times.append((rendered - began) * 1e3)
        if attempt % 5 == 0:
            syndication._items = BoundedCache(syndication.ITEM_CACHE_SIZE)
            began = time.perf_counter()
            render(feed)
            cold_times.append((time.perf_counter() - began) * 1e3)
    return RenderTiming(
        items=len(feed.articles),
        feed_bytes=len(document),
        describe_ms=statistics.median(describe_times),
        render_ms=statistics.median(render_times),
        render_p90_ms=statistics.quantiles(render_times, n=10)[-1],
        cold_render_ms=statistics.median(cold_times),
    )


def main(argv: list[str]) -> None:
    if argv[:1] == ["render"]:
        timing = _render(int(argv[1]) if len(argv) > 1 else 200)
        print(json.dumps(asdict(timing)))
    elif argv[:1] == ["index"]:
        from feeds import create_app

        started = time.perf_counter()
        report = create_app().extensions["feeds"].sync_now(wait_seconds=60)
        print(f"parsed {report.parsed} bundles in {time.perf_counter() - started:.3f} s")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
