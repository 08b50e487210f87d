"""`python -m bench.lastmile [--quick]`: from save to subscriber, through a real hub and a real shared cache.

Measures, on one corpus: save → a WebSub subscriber's callback (flask-websub's hub, bench/websub.py),
and save → the new bytes visible through Varnish (deploy/varnish/default.vcl, s-maxage of a day,
purged by the indexer), p50 and p95 over every edit; the throughput of a cached feed through
Varnish against nginx serving the same bytes as static files; and the requests that reach the
origin per 10,000 polls through Varnish. Writes its rows to bench/out/lastmile.md.
"""

# ruff: noqa: S108, S311, S603, S607 - a harness: fixed tools, /tmp by default, seeded pauses
from __future__ import annotations

import argparse
import gzip
import http.client
import os
import random
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import caches, corpus, load, servers, websub
from .report import Findings

FEED = "/feeds/rss.xml"
SIZES = {"1k": 1_000, "100k": 100_000}
#: Polls in the origin-requests count, and the documents they cycle through.
POLLS = 10_000
POLLED = ("/feeds/rss.xml", "/feeds/atom.xml", "/feeds/feed.json")
#: One edit must show within this, or it counts as never.
EDIT_TIMEOUT_S = 10.0
DAY = 86400


def run(work: Path, label: str = "100k", edits: int = 20, seconds: int = 5) -> Findings:
    """The whole measurement on the `label` corpus under `work` (made if missing, and kept, with its
    index, for the next run); the function `make bench` calls. Stops everything it started."""
    ensure_tools()
    results = Findings(
        f"Last mile: save → subscriber, through a real hub and a real cache ({label} corpus)",
        "`python -m bench.lastmile` (bench/lastmile.py); one run, on this machine.",
        label,
    )
    content, reused = corpus.ensure(work / f"corpus-{label}", SIZES[label])
    print(f"corpus {label}: {'reused' if reused else 'generated'} ({content})", flush=True)
    run_dir = work / f"lastmile-{label}"
    shutil.rmtree(run_dir / "run", ignore_errors=True)
    try:
        stack = _start(content, run_dir)
        _edits(stack, content, edits, results)
        _origin_requests(stack, content, results)
        _throughput(stack, run_dir / "run", seconds, results)
    finally:
        servers.stop_all()
    return results


@dataclass
class _Stack:
    origin: servers.Server
    varnish: servers.Server
    hub: servers.Server
    subscriber: websub.Subscriber
    varnish_work: Path
    origin_log: Path
    #: The feeds the subscriber follows: the site's and the edited article's section's.
    topics: list[str]

    def origin_requests(self) -> int:
        return caches.varnish_counters(self.varnish_work)["MAIN.backend_req"]


def _start(content: Path, run_dir: Path) -> _Stack:
    work = run_dir / "run"
    origin_port, varnish_port = servers.free_port(), servers.free_port()
    public = f"http://{servers.HOST}:{varnish_port}"
    hub = websub.start_hub(work / "hub")
    websub.wait_for_hub(hub)
    env = {
        **servers.service_env(content, run_dir / "cache"),
        "FEEDS_BASE_URL": public,
        "FEEDS_WEBSUB_HUBS": websub.hub_url(hub),
        "FEEDS_PURGE_URLS": f"{public}/",
        "FEEDS_S_MAXAGE": str(DAY),
    }
    log = work / "service.log"
    started = time.monotonic()
    origin = servers.start("service", origin_port, servers.server_command(origin_port), env, log)
    print("service: starting (a first index build of 100k articles takes minutes)", flush=True)
    origin.wait_ready(FEED, 1800)
    _wait_for_line(origin, log, "announcing every change from version", 1800)
    print(f"service: announcing after {time.monotonic() - started:.0f} s", flush=True)
    origin.wait_idle(120)
    # Room for every document the hub fetches (a month of the site's archive is megabytes), so
    # that nothing polled is pushed out and fetched again.
    varnish = caches.start_varnish(origin_port, work / "varnish", port=varnish_port, memory_mb=512)
    varnish.wait_ready(FEED, 60)
    subscriber = websub.Subscriber().start()
    section = corpus.newest_bundle(content).parent.name
    topics = [f"{public}{FEED}", f"{public}/feeds/{section}/rss.xml"]
    for topic in topics:
        status = subscriber.subscribe(websub.hub_url(hub), topic)
        if status != 202:
            raise RuntimeError(f"the hub answered {status} to a subscription")
    if not subscriber.wait(lambda: set(topics) <= set(subscriber.verified), 30):
        raise RuntimeError(f"the hub never verified the subscriptions:\n{hub.log_tail()}")
    return _Stack(origin, varnish, hub, subscriber, work / "varnish", log, topics)


def _wait_for_line(server: servers.Server, log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the service exited:\n{server.log_tail()}")
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"no {text!r} in the service's log after {timeout:.0f} s")


def _edits(stack: _Stack, content: Path, edits: int, results: Findings) -> None:
    """Rewrites the newest article's title `edits` times; for each, when the subscriber of the site's
    feed got the new feed, and when Varnish first answered with it."""
    path = corpus.newest_bundle(content) / "index.md"
    original = path.read_bytes()
    pause = random.Random(corpus.SEED)
    to_subscriber: list[float | None] = []
    through_cache: list[float | None] = []
    try:
        for number in range(edits):
            # Apart by more than the notifier's window, as separate saves are: none is coalesced.
            time.sleep(pause.uniform(0.6, 1.0))
            token = f"{number}-{secrets.token_hex(4)}"
            edited = re.sub(rb"^title: .*$", f'title: "Breytt fyrirsögn {token}"'.encode(), original, count=1,
                            flags=re.MULTILINE)  # fmt: skip
            temporary = path.with_name(f".{path.name}.lastmile-tmp")
            temporary.write_bytes(edited)
            saved = time.perf_counter()
            os.replace(temporary, path)
            through_cache.append(_visible(stack.varnish.url(FEED), token.encode(), saved))
            topic = stack.topics[0]

            def delivered(token: str = token, topic: str = topic) -> bool:
                return any(d.topic == topic and token.encode() in d.body for d in stack.subscriber.deliveries)

            if stack.subscriber.wait(delivered, EDIT_TIMEOUT_S):
                arrived = next(
                    d.at for d in stack.subscriber.deliveries if d.topic == topic and token.encode() in d.body
                )
                to_subscriber.append((arrived - saved) * 1e3)
            else:
                to_subscriber.append(None)
    finally:
        temporary = path.with_name(f".{path.name}.lastmile-tmp")
        temporary.write_bytes(original)
        os.replace(temporary, path)
        time.sleep(1.0)
    results.add("save → WebSub subscriber's callback, p50", _ms(_percentile(to_subscriber, 50)), _each(to_subscriber))
    results.add("save → WebSub subscriber's callback, p95", _ms(_percentile(to_subscriber, 95)),
                f"{len(to_subscriber)} edits; target ≤ 1 s")  # fmt: skip
    results.add("save → new bytes through Varnish (s-maxage 1 day), p50", _ms(_percentile(through_cache, 50)),
                _each(through_cache))  # fmt: skip
    results.add("save → new bytes through Varnish (s-maxage 1 day), p95", _ms(_percentile(through_cache, 95)),
                f"{len(through_cache)} edits; target ≤ 1 s")  # fmt: skip
    signed = all(d.signed for d in stack.subscriber.deliveries)
    results.notes.append(
        f"{len(stack.subscriber.deliveries)} deliveries to the subscriber, "
        f"{'every one' if signed else 'not every one'} with a valid X-Hub-Signature"
    )


def _visible(url: str, token: bytes, saved: float) -> float | None:
    """Milliseconds from the save until a poll (fresh connection) answers with `token`."""
    while time.perf_counter() - saved < EDIT_TIMEOUT_S:
        try:
            if token in load.probe(url, timeout=EDIT_TIMEOUT_S).body:
                return (time.perf_counter() - saved) * 1e3
        except OSError:
            pass
        time.sleep(0.005)
    return None


def _origin_requests(stack: _Stack, content: Path, results: Findings) -> None:
    """POLLS polls through Varnish over three documents, plain and gzip in turn, with two edits among
    them; how many requests reached the origin, against how many document versions the indexer
    announced meanwhile (each is fetched at most once per representation: by the hub's fetch after
    its ping, or by the first poll after the purge)."""
    path = corpus.newest_bundle(content) / "index.md"
    original = path.read_bytes()
    for document in POLLED:  # every copy polled below is in the cache before counting starts
        for headers in ({}, {"Accept-Encoding": "gzip"}):
            load.probe(stack.varnish.url(document), headers)
    # The hub's fetches after the last edit (big archive months among them) are over first.
    before, deadline = -1, time.monotonic() + 60
    while (count := stack.origin_requests()) != before and time.monotonic() < deadline:
        before = count
        time.sleep(2.0)
    log = stack.origin_log
    offset = log.stat().st_size
    connection = http.client.HTTPConnection(servers.HOST, stack.varnish.port, timeout=30)
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    try:
        for number in range(POLLS):
            if number in (POLLS // 3, 2 * POLLS // 3):
                token = secrets.token_hex(4)
                edited = re.sub(rb"^title: .*$", f'title: "Talning {token}"'.encode(), original, count=1,
                                flags=re.MULTILINE)  # fmt: skip
                path.write_bytes(edited)
                _visible(stack.varnish.url(FEED), token.encode(), time.perf_counter())
            headers = {"Accept-Encoding": "gzip"} if number % 2 else {}
            try:
                connection.request("GET", POLLED[number % len(POLLED)], headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()  # a new connection for the next poll; this one counts as failed
                status = 0
            statuses[status] = statuses.get(status, 0) + 1
        took = time.perf_counter() - started
        time.sleep(1.0)  # the hub's last fetches
        reached = stack.origin_requests() - before
        with open(log, "rb") as text:
            text.seek(offset)
            found = re.findall(rb"version (\(\d+, \d+\)): (\d+) (?:feed|archive) documents changed bytes", text.read())
    finally:
        connection.close()
        path.write_bytes(original)
    versions = sum(int(count) for _, count in found)
    edits = len({version for version, _ in found})
    results.add(f"requests that reached the origin per {POLLS:,} polls through Varnish", str(reached),
                f"{edits} edits among the polls made {versions} new document versions, feeds and archive "
                f"months (the hub fetches each one it is told of, gzip; the polls ask for 3 of them plain "
                f"too): at most one request per document version and representation = {versions + 3 * edits}; "
                f"statuses {statuses}; {took:.1f} s")  # fmt: skip


def _throughput(stack: _Stack, work: Path, seconds: int, results: Findings) -> None:
    """wrk against the cached feed through Varnish, and against nginx serving the same bytes as files:
    alternated, each twice, each time once the origin is idle (its indexer rescans a 100k newsroom
    every minute, for many seconds, on the same two cores); the better run of each counts."""
    url = stack.varnish.url(FEED)
    plain = load.probe(url)
    squeezed = load.probe(url, {"Accept-Encoding": "gzip"})
    docroot = work / "nginx-static" / "www"
    (docroot / "feeds").mkdir(parents=True, exist_ok=True)
    (docroot / "feeds" / "rss.xml").write_bytes(plain.body)
    (docroot / "feeds" / "rss.xml.gz").write_bytes(gzip.compress(plain.body, 9))
    static = servers.start_nginx(docroot, work / "nginx-static" / "prefix")
    static.wait_ready(FEED, 30)
    for request, headers, size in (
        ("plain", {}, len(plain.body)),
        ("gzip", {"Accept-Encoding": "gzip"}, len(squeezed.body)),
    ):
        best: dict[str, load.WrkResult] = {}
        for _ in range(2):
            for name, server_url in (("Varnish", url), ("nginx static", static.url(FEED))):
                stack.origin.wait_idle(90)
                load.wrk(server_url, 1, headers)  # warm-up
                result = load.wrk(server_url, seconds, headers)
                if name not in best or result.requests_per_second > best[name].requests_per_second:
                    best[name] = result
        varnish, nginx = best["Varnish"], best["nginx static"]
        ratio = varnish.requests_per_second / nginx.requests_per_second if nginx.requests_per_second else 0.0
        results.add(f"cached feed through Varnish vs nginx static ({request})", f"{ratio:.2f}×",
                    f"{varnish.requests_per_second:,.0f} vs {nginx.requests_per_second:,.0f} req/s (better of two "
                    f"{seconds} s runs each); p50 {varnish.p50:.2f} vs {nginx.p50:.2f} ms; {size:,} B; "
                    f"target ≥ 0.9×")  # fmt: skip
    static.stop()


def _percentile(values: list[float | None], share: int) -> float | None:
    """Nearest-rank percentile; an edit that never showed counts as slowest (None if it is the answer)."""
    if not values:
        return None
    ordered = sorted(float("inf") if value is None else value for value in values)
    found = ordered[max(0, -(-share * len(ordered) // 100) - 1)]
    return None if found == float("inf") else found


def _ms(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f} ms"


def _each(values: list[float | None]) -> str:
    return "each: " + ", ".join("—" if value is None else f"{value:.0f}" for value in values) + " ms"


def ensure_tools() -> None:
    """varnishd (with xkey), nginx and wrk; installed with apt-get when missing and run as root."""
    have = {
        "varnish": caches.varnishd_binary() is not None,
        "varnish-modules": any(Path("/usr/lib").glob("*/varnish/vmods/libvmod_xkey.so")),
        "nginx": Path(servers.nginx_binary()).exists(),
        "wrk": Path(load.wrk_binary()).exists(),
    }
    missing = [name for name, there in have.items() if not there]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"missing {', '.join(missing)}: run `apt-get install -y {' '.join(missing)}` as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, timeout=600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lastmile", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the 1k corpus, 20 edits, 2 s wrk runs")
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("FEEDS_BENCH_DIR", "/tmp/feeds-bench")))
    parser.add_argument("--output", type=Path, default=servers.REPO / "bench" / "out" / "lastmile.md")
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--seconds", type=int, help="each wrk run (default 5, or 2 with --quick)")
    options = parser.parse_args(argv)
    servers.compile_service()
    results = run(options.dir.resolve(), "1k" if options.quick else "100k", options.edits,
                  options.seconds or (2 if options.quick else 5))  # fmt: skip
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(results.markdown())
    print(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
