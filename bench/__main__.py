"""`python -m bench [--quick]`: corpora, servers and wrk, side by side, into a table and BENCHMARKS.md."""

# ruff: noqa: S108, S311, S607 - a harness: fixed tools, /tmp by default, seeded pauses
from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from . import corpus, export, inprocess, lastmile, load, photos, report, scale, servers
from .report import GUNICORN_SERVICE, GZIP, NAIVE, NGINX, NOT_MODIFIED, PLAIN, SERVICE, Measurement, Results, Row

FEED = "/feeds/rss.xml"
GZIP_HEADERS = {"Accept-Encoding": "gzip"}
SIZES = {"1k": 1_000, "100k": 100_000}
#: Bounds of the edit test: one edit, and all of them together.
EDIT_TIMEOUT_S, EDIT_BUDGET_S = 20.0, 150.0
#: How long a freshly started server may stay busy (e.g. rescanning) before load starts anyway.
IDLE_TIMEOUT_S = 120.0
_started = time.monotonic()


def main(argv: list[str] | None = None) -> int:
    options = _options(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    _ensure_tools()
    servers.compile_service()
    work: Path = options.dir
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    results = Results(mode="quick" if options.quick else "full", wrk_seconds=options.seconds)
    code = _code_state()
    results.notes.append(f"service code: {code[0]}")
    try:
        for label in ["1k"] if options.quick else list(SIZES):
            results.corpora.append(label)
            _bench_corpus(label, work, run, options, results)
        if not options.quick:
            # Save → subscriber and save → visible through Varnish, on the largest corpus.
            results.sections.append(lastmile.run(work, label="100k", edits=20, seconds=options.seconds).markdown())
            # The static export against Hugo's cold build, and nginx serving it, on the same corpus.
            results.sections.append(export.run(work, SIZES["100k"], seconds=options.seconds).markdown())
            # The first build with photos of their own, as a real archive has them, against hard-linked ones.
            results.sections.append(photos.run(work).markdown())
            # The whole archive on one machine: 100k over 25 years, or as many as --scale-articles says.
            measured = scale.run(work, options.scale_articles, idle_seconds=300, edits=20, wrk_seconds=options.seconds)
            results.sections.append(measured.markdown())
    finally:
        servers.stop_all()
    results.elapsed_s = time.monotonic() - _started
    if _code_state()[1] != code[1]:
        results.notes.append("**the service's code changed during this run: its rows are not comparable; run again**")
    print(report.summary(results))
    output: Path = options.output or (
        servers.REPO / "bench" / "out" / "BENCHMARKS-quick.md" if options.quick else servers.REPO / "BENCHMARKS.md"
    )
    report.write_markdown(output, results)
    _say(f"wrote {output}; whole run {results.elapsed_s / 60:.1f} min")
    return 0


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the 1k corpus only, 2 s wrk runs")
    parser.add_argument(
        "--scale-articles", type=int, default=int(os.environ.get("FEEDS_BENCH_SCALE", "100000")),
        help="articles in the whole-archive run (default: $FEEDS_BENCH_SCALE or 100,000; 1000000 for 1M)",
    )  # fmt: skip
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("FEEDS_BENCH_DIR", "/tmp/feeds-bench")),
        help="corpora, caches and logs (default: $FEEDS_BENCH_DIR or /tmp/feeds-bench)",
    )
    parser.add_argument("--output", type=Path, help="default: BENCHMARKS.md, or bench/out/BENCHMARKS-quick.md")
    parser.add_argument("--seconds", type=int, help="length of each wrk run (default: 5, or 2 with --quick)")
    parser.add_argument("--edits", type=int, help="edits per variant (default: 5, or 3 with --quick)")
    options = parser.parse_args(argv)
    options.dir = options.dir.resolve()
    options.seconds = options.seconds or (2 if options.quick else 5)
    options.edits = options.edits or (3 if options.quick else 5)
    return options


def _bench_corpus(label: str, work: Path, run: Path, options: argparse.Namespace, results: Results) -> None:
    started = time.monotonic()
    content, reused = corpus.ensure(work / f"corpus-{label}", SIZES[label])
    _say(f"corpus {label}: {'reused' if reused else f'generated in {time.monotonic() - started:.1f} s'} ({content})")
    cache = run / f"cache-{label}"

    def measure(key: str, what: str, value: float | None, unit: str, detail: str = "") -> None:
        results.measurements.append(Measurement(label, key, what, value, unit, detail))

    def attempt(step: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as error:  # one broken step must not hide the others
            results.notes.append(f"{label}, {step}: failed: {str(error).strip()[:500]}")
            _say(f"{label}, {step}: FAILED: {error}")
        finally:
            servers.stop_all()

    feed_bytes: list[bytes] = []

    def service() -> None:
        _say(f"{label}: first index build")
        built = inprocess.time_index(content, cache, timeout=600, cold=True)
        said = f"; the command says {built.reported_s:.2f} s" if built.reported_s is not None else ""
        said += "; page cache emptied first" if built.cold else "; page cache as it was"
        measure("index_build_s", "first index build (fresh cache dir)", built.wall_s, "s", f"`{built.output}`{said}")
        again = inprocess.time_index(content, cache, timeout=600)
        measure("index_again_s", "index command again, nothing changed", again.wall_s, "s", f"`{again.output}`")
        server = servers.start_service(content, cache, run / f"service-{label}.log")
        measure("warm_start_s", "warm start: server start → first 200", server.wait_ready(FEED, 300), "s")
        busy = server.wait_idle(IDLE_TIMEOUT_S)
        measure("settle_s", "then busy (≥ 10% of a core) for", busy, "s", "load starts once it is idle")
        plain = load.probe(server.url(FEED))
        feed_bytes.append(plain.body)
        validator = (
            {"If-None-Match": plain.headers["etag"]}
            if "etag" in plain.headers
            else {"If-Modified-Since": plain.headers["last-modified"]}
            if "last-modified" in plain.headers
            else {}
        )
        if "etag" not in plain.headers:
            sent = ", ".join(f"{name}: {value}" for name, value in validator.items()) or "no validator"
            results.notes.append(f"{label}: the service sent no ETag; its 304 row sends {sent}")
        runs = [(PLAIN, {}), (GZIP, GZIP_HEADERS), (NOT_MODIFIED, validator)]
        measured = [(request, *_load(server, headers, options.seconds)) for request, headers in runs]
        _say(f"{label}: edit to visible")
        for variant, times in _edit_to_visible(server, content, options.edits).items():
            each = "each: " + ", ".join("—" if m is None else f"{m:.0f}" for m in times) + " ms"
            measure(f"edit_ms {variant}", f"edit to visible ({variant}), median", _median(times), "ms", each)
        _rows(results, label, SERVICE, server, measured)
        started = time.perf_counter()
        asked = _ask_for_every_feed(server)
        peak = max(server.peak_rss_bytes(), default=0) / 2**20
        each = ", ".join(f"{size / 2**20:.0f}" for size in server.peak_rss_bytes())
        detail = f"{asked} requests in {time.perf_counter() - started:.0f} s, plain and gzip; each worker: {each} MB"
        measure("rss_all_feeds_mb", "peak RSS per worker after every feed was asked for", peak, "MB", detail)

    def nginx() -> None:
        if not feed_bytes:
            raise RuntimeError("no feed from the service to serve")
        docroot = run / f"nginx-{label}" / "www"
        (docroot / "feeds").mkdir(parents=True)
        (docroot / "feeds" / "rss.xml").write_bytes(feed_bytes[0])
        (docroot / "feeds" / "rss.xml.gz").write_bytes(gzip.compress(feed_bytes[0], 9))
        server = servers.start_nginx(docroot, run / f"nginx-{label}" / "prefix")
        server.wait_ready(FEED, 30)
        plain = load.probe(server.url(FEED))
        validator = {"If-None-Match": plain.headers["etag"], "If-Modified-Since": plain.headers["last-modified"]}
        runs = [(PLAIN, {}), (GZIP, GZIP_HEADERS), (NOT_MODIFIED, validator)]
        _rows(results, label, NGINX, server, [(request, *_load(server, h, options.seconds)) for request, h in runs])

    def naive() -> None:
        server = servers.start_naive(content, cache, run / f"naive-{label}.log")
        server.wait_ready(FEED, 120)
        if b"<item>" not in load.probe(server.url(FEED)).body:
            results.notes.append(f"{label}: the naive feed has no items; is the service's index empty?")
        _rows(results, label, NAIVE, server, [(PLAIN, *_load(server, {}, options.seconds))])

    def render() -> None:
        timing = inprocess.time_render(content, cache, runs=200)
        detail = f"{timing.items} items, {timing.feed_bytes:,} B; p90 {timing.render_p90_ms:.1f} ms"
        measure(
            "render_ms", "render on a miss (one article changed): RSS, median of 200", timing.render_ms, "ms", detail
        )
        measure(
            "cold_render_ms", "render with no item kept (first after a start): RSS, median", timing.cold_render_ms, "ms"
        )
        measure("describe_ms", "describing that feed (index query), median of 200", timing.describe_ms, "ms")

    def other_server() -> None:
        """The server choice: the same service under gunicorn (threads, keep-alive), side by side."""
        server = servers.start_service(content, cache, run / f"gunicorn-{label}.log", servers.GUNICORN)
        server.wait_ready(FEED, 120)
        server.wait_idle(IDLE_TIMEOUT_S)
        plain = load.probe(server.url(FEED))
        runs = [(PLAIN, {}), (NOT_MODIFIED, {"If-None-Match": plain.headers.get("etag", "")})]
        _rows(
            results,
            label,
            GUNICORN_SERVICE,
            server,
            [(request, *_load(server, h, options.seconds)) for request, h in runs],
        )

    steps: list[tuple[str, Callable[[], None]]] = [
        ("service", service),
        ("nginx", nginx),
        ("naive", naive),
        ("render", render),
    ]
    if label == "1k":
        steps.insert(1, ("gunicorn", other_server))
    for step, action in steps:
        _say(f"{label}: {step}")
        attempt(step, action)
    shutil.rmtree(cache, ignore_errors=True)


def _ask_for_every_feed(server: servers.Server) -> int:
    """Every section's and topic's feed in every format, plain and gzip, as aggregators ask: the
    worst case for the workers' caches. Returns how many requests were made."""
    home = load.probe(server.url("/")).body.decode()
    scopes = [*sorted(set(re.findall(r"/feeds/(?:topics/)?[a-z0-9-]+/(?=rss\.xml)", home))), "/feeds/"]
    count = 0
    for scope in scopes:
        for name in ("rss.xml", "atom.xml", "feed.json"):
            for headers in ({}, GZIP_HEADERS):
                load.probe(server.url(scope + name), headers)
                count += 1
    return count


def _load(server: servers.Server, headers: dict[str, str], seconds: int) -> tuple[load.Probe, load.WrkResult]:
    """A 1 s warm-up (fills per-worker caches), a probe of what the answer is, then the measured run."""
    url = server.url(FEED)
    load.wrk(url, 1, headers)
    answer = load.probe(url, headers)
    return answer, load.wrk(url, seconds, headers)


def _rows(
    results: Results,
    label: str,
    name: str,
    server: servers.Server,
    measured: list[tuple[str, load.Probe, load.WrkResult]],
) -> None:
    peak = server.peak_rss_bytes()
    for request, answer, result in measured:
        results.rows.append(Row(label, name, request, answer.describe(), answer.status, result, peak))
        _say(f"  {name} {request}: {result.requests_per_second:,.1f} req/s, p50 {result.p50:.2f} ms")


def _edit_to_visible(server: servers.Server, content: Path, edits: int) -> dict[str, list[float | None]]:
    """Rewrites the newest article's title, each way `edits` times; milliseconds until the feed shows it."""
    path = corpus.newest_bundle(content) / "index.md"
    original = path.read_bytes()
    pause = random.Random(corpus.SEED)
    latencies: dict[str, list[float | None]] = {"os.replace": [], "in-place write": []}
    deadline = time.monotonic() + EDIT_BUDGET_S
    try:
        for number in range(edits):
            if time.monotonic() > deadline:
                break
            variants = list(latencies.items())
            for variant, found in variants if number % 2 == 0 else reversed(variants):
                time.sleep(pause.uniform(0.1, 0.6))  # so that edits do not fall in step with a rescan timer
                token = f"{number}-{secrets.token_hex(4)}"
                title = f'title: "Breytt fyrirsögn {token}"'.encode()
                edited = re.sub(rb"^title: .*$", title, original, count=1, flags=re.MULTILINE)
                started = time.perf_counter()
                _write(path, edited, replace=variant == "os.replace")
                found.append(_visible(server, token.encode(), started, timeout=EDIT_TIMEOUT_S))
    finally:
        _write(path, original, replace=True)
    return latencies


def _write(path: Path, data: bytes, replace: bool) -> None:
    if replace:
        temporary = path.with_name(f".{path.name}.bench-tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)
    else:
        with open(path, "wb") as handle:
            handle.write(data)


def _visible(server: servers.Server, token: bytes, started: float, timeout: float) -> float | None:
    """Milliseconds from `started` until three polls in a row (fresh connections) show `token`."""
    streak, first_seen = 0, 0.0
    while time.perf_counter() - started < timeout:
        try:
            seen = token in load.probe(server.url(FEED), timeout=timeout).body
        except OSError:
            seen = False
        answered = time.perf_counter()  # when a reader would have it
        streak, first_seen = (streak + 1, first_seen if streak else answered) if seen else (0, 0.0)
        if streak == 3:
            return (first_seen - started) * 1e3
        time.sleep(0.005)
    return None


def _median(values: list[float | None]) -> float | None:
    """The median, an edit that never showed counting as slowest; None if that is the median."""
    middle = statistics.median(float("inf") if value is None else value for value in values) if values else None
    return None if middle is None or middle == float("inf") else middle


def _ensure_tools() -> None:
    missing = [
        name
        for name, path in (("wrk", load.wrk_binary()), ("nginx", servers.nginx_binary()))
        if not Path(path).exists()
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"missing {', '.join(missing)}: run `apt-get install -y wrk nginx` as root")
    _say("installing wrk and nginx")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "wrk", "nginx"], check=True, env=env, timeout=600)


def _code_state() -> tuple[str, str]:
    """The commit the service runs from, and a digest of its code as it is on disk now."""
    digest = hashlib.sha256()
    for path in sorted([*(servers.REPO / "feeds").rglob("*"), servers.REPO / "app.py"]):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path).encode() + b"\0" + path.read_bytes())
    commit = servers.run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip() or "unknown"
    dirty = servers.run(["git", "status", "--porcelain", "--", "feeds", "app.py"]).stdout.strip()
    return f"commit {commit}{' with uncommitted changes in feeds/' if dirty else ''}", digest.hexdigest()


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`, which stops the servers


def _say(message: str) -> None:
    print(f"[bench {time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
