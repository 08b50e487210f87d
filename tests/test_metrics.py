"""/metrics and the log: counts that move as requests, renders and syncs happen, summed across processes."""

from __future__ import annotations

import http.client
import http.server
import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import html
from prometheus_client.parser import text_string_to_metric_families

from feeds import create_app, logs, metrics
from feeds.announcer import announcer_for
from feeds.web import ROUTE_KINDS

from .conftest import Clock, Newsroom, RunningIndexer, get_ok, status, xpath_strings
from .test_server import free_port, get

ROOT = Path(__file__).resolve().parent.parent
FLASK = Path(sys.executable).parent / "flask"
#: Each sample of a scrape: its name and labels, and its value.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """The exposition as Prometheus reads it."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse(response.get_data(as_text=True))


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a series not there yet (as a counter that has not counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: Samples, route: str, code: str, cache: str = "") -> float:
    return value(samples, "feeds_http_requests_total", route=route, status=code, cache=cache)


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.fixture
def photographed(newsroom: Newsroom) -> Newsroom:
    newsroom.photo("innlent", "gos", "gos.jpg", (1200, 800))
    newsroom.article(
        "innlent", "gos", date="2026-09-15T12:00:00Z", topics=["Eldgos"],
        images=[{"file": "gos.jpg", "caption": "Hraunið rennur.", "credit": "Ljósmynd/Jón Pétursson"}],
    )  # fmt: skip
    newsroom.article("erlent", "kosningar", date="2026-10-20T12:00:00Z")
    return newsroom


# -- requests, the render cache, renders -----------------------------------------------------------


def test_requests_are_counted_by_kind_of_route_and_status(photographed: Newsroom, client: FlaskClient) -> None:
    page = get_ok(client, "/innlent/gos/")
    rendition = next(
        url.split()[0] for url in xpath_strings(html.fromstring(page), "//img/@srcset")[0].split(",") if "320w-" in url
    )
    for url in (
        "/feeds/rss.xml", "/feeds/rss.xml", "/feeds/archive/2026-09/atom.xml", "/", "/innlent/",
        "/innlent/gos/gos.jpg", rendition.removeprefix("http://localhost"), "/feeds.opml", "/healthz",
        "/robots.txt", "/a/b/c/d/e", "/innlent/engin-frett/",
    ):  # fmt: skip
        status(client, url)
    response = client.get("/metrics")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.mimetype == "text/plain"
    samples = parse(response.get_data(as_text=True))
    # The first request of the feed rendered it; the second was answered from the cache before Flask.
    assert requests(samples, "feed", "200", "miss") == 1 and requests(samples, "feed", "200", "hit") == 1
    assert requests(samples, "archive", "200", "miss") == 1
    assert requests(samples, "page", "200") == 3
    assert requests(samples, "photo", "200") == 1
    assert requests(samples, "rendition", "200") == 1
    assert requests(samples, "opml", "200") == 1
    assert requests(samples, "health", "200") == 1
    assert requests(samples, "asset", "200") == 1
    assert requests(samples, "other", "404") == 1
    assert requests(samples, "page", "404") == 1
    # A scrape is counted once it has answered: the next one shows it.
    assert requests(scrape(client), "metrics", "200") == 1


def test_every_route_has_a_kind(app: Flask) -> None:
    assert {rule.endpoint for rule in app.url_map.iter_rules()} - {"static"} == set(ROUTE_KINDS)


def test_render_cache_hits_misses_and_render_times(newsroom: Newsroom, client: FlaskClient) -> None:
    newsroom.article("innlent", "fyrsta")
    for _ in range(3):
        get_ok(client, "/feeds/rss.xml")
    get_ok(client, "/feeds/innlent/feed.json")
    samples = scrape(client)
    assert value(samples, "feeds_render_cache_lookups_total", result="miss") == 2
    assert value(samples, "feeds_render_cache_lookups_total", result="hit") == 2
    assert value(samples, "feeds_render_seconds_count", format="rss.xml") == 1
    assert value(samples, "feeds_render_seconds_count", format="feed.json") == 1
    assert value(samples, "feeds_render_seconds_sum", format="rss.xml") > 0
    assert value(samples, "feeds_render_seconds_bucket", format="rss.xml", le="+Inf") == 1

    newsroom.article("innlent", "onnur")  # a new content version: the feed is rendered again
    get_ok(client, "/feeds/rss.xml")
    samples = scrape(client)
    assert value(samples, "feeds_render_cache_lookups_total", result="miss") == 3
    assert value(samples, "feeds_render_seconds_count", format="rss.xml") == 2


def test_index_syncs_of_the_watch_loop_are_counted(
    newsroom: Newsroom, clock: Clock, tmp_path: Path, start_indexer: Callable[[Flask], RunningIndexer]
) -> None:
    newsroom.article("innlent", "fyrsta")
    app = create_app({"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache"}, clock=clock)
    client = app.test_client()
    start_indexer(app)
    wait_until(lambda: client.get("/healthz").status_code == 200, "the index was never built")
    samples = scrape(client)
    assert value(samples, "feeds_index_sync_seconds_count", kind="rebuild") == 1
    assert value(samples, "feeds_index_sync_seconds_sum", kind="rebuild") > 0
    synced = value(samples, "feeds_index_sync_seconds_count", kind="bundles")

    newsroom.article("innlent", "onnur", title="Önnur frétt")
    wait_until(lambda: b"nnur fr" in get_ok(client, "/feeds/rss.xml"), "the edit never showed")
    assert value(scrape(client), "feeds_index_sync_seconds_count", kind="bundles") > synced
    assert value(scrape(client), "feeds_index_sync_failures_total") == 0
    app.extensions["feeds"].indexer().failing("the disk is full")
    assert value(scrape(client), "feeds_index_sync_failures_total") == 1


# -- the figures of /healthz -----------------------------------------------------------------------


def test_healthz_and_metrics_report_the_same_figures(newsroom: Newsroom, client: FlaskClient) -> None:
    newsroom.article("innlent", "fyrsta")
    newsroom.article("innlent", "onnur")
    newsroom.article("erlent", "brotin", imgaes=[])  # a typo: it cannot be published
    get_ok(client, "/")  # the inline indexer reads content/ before it answers
    health = client.get("/healthz").get_json()
    samples = scrape(client)
    assert health["articles"] == value(samples, "feeds_articles") == 2
    assert len(health["content_errors"]) == value(samples, "feeds_content_errors") == 1
    assert health["ready"] is True and value(samples, "feeds_ready") == 1
    assert value(samples, "feeds_indexer_up") == 1
    assert 0 <= value(samples, "feeds_index_age_seconds") < 10


def test_metrics_answer_while_there_is_no_index(newsroom: Newsroom, tmp_path: Path) -> None:
    app = create_app({"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache", "INDEXER": "watch"})
    client = app.test_client()
    assert client.get("/feeds/rss.xml").status_code == 503
    samples = scrape(client)
    assert value(samples, "feeds_ready") == 0 and value(samples, "feeds_indexer_up") == 0
    assert ("feeds_articles", frozenset()) not in samples  # unknown, not zero
    assert requests(samples, "feed", "503") == 1
    openmetrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.mimetype == "application/openmetrics-text"
    assert openmetrics.get_data(as_text=True).endswith("# EOF\n")


def test_each_app_counts_alone(newsroom: Newsroom, tmp_path: Path) -> None:
    newsroom.article("innlent", "fyrsta")
    settings = {"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache", "INDEXER": "inline"}
    first, second = create_app(settings).test_client(), create_app(settings).test_client()
    for _ in range(3):
        get_ok(first, "/feeds/rss.xml")
    assert requests(scrape(first), "feed", "200", "hit") == 2
    assert requests(scrape(second), "feed", "200", "hit") == 0


def test_metrics_is_never_a_section(newsroom: Newsroom, app: Flask, client: FlaskClient) -> None:
    newsroom.section("metrics", "Mælingar")
    newsroom.article("metrics", "frett")
    result = app.test_cli_runner().invoke(args=["check"])
    assert "metrics: 'metrics' is reserved for the service's own URLs" in result.stdout
    assert status(client, "/metrics/frett/") == 404
    assert client.get("/metrics").mimetype == "text/plain"
    assert "Disallow: /metrics" in client.get("/robots.txt").get_data(as_text=True)


# -- WebSub and purges -----------------------------------------------------------------------------


class _Destination(http.server.BaseHTTPRequestHandler):
    """A hub that takes every ping, and a cache node that fails every purge."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PURGE(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def destination() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Destination)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_notifications_and_purges_are_counted(newsroom: Newsroom, tmp_path: Path, destination: str) -> None:
    app = create_app({
        "CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache", "INDEXER": "inline",
        "BASE_URL": "https://frettir.example.is", "WEBSUB_HUBS": [destination], "PURGE_URLS": [destination],
    })  # fmt: skip
    client = app.test_client()
    announcer = announcer_for(app.extensions["feeds"])
    assert announcer is not None
    announcer.notifier.start()
    try:
        announcer.notifier.submit(["https://frettir.example.is/feeds/rss.xml"], ["feed:/feeds/rss.xml", "page:/"])

        def counted(kind: str, result: str) -> float:
            return value(scrape(client), "feeds_notifications_total", kind=kind, destination=destination, result=result)

        wait_until(lambda: counted("websub", "sent") == 1, "the ping was never counted")
        wait_until(lambda: counted("purge", "failed") >= 2, "the failed purge was never counted")
        assert counted("purge", "sent") == 0
    finally:
        announcer.notifier.stop()


# -- across processes ------------------------------------------------------------------------------

_ANSWER = """
import sys
from feeds import create_app
content, cache, pool, times = sys.argv[1:]
settings = {"CONTENT_DIR": content, "CACHE_DIR": cache, "INDEXER": "inline", "METRICS_DIR": pool}
client = create_app(settings).test_client()
for _ in range(int(times)):
    assert client.get("/feeds/rss.xml").status_code == 200
"""

_SCRAPE = """
import sys
from feeds import create_app
content, cache, pool = sys.argv[1:]
sys.stdout.write(create_app({"CONTENT_DIR": content, "CACHE_DIR": cache, "METRICS_DIR": pool}).test_client()
                 .get("/metrics").get_data(as_text=True))
"""


def python(script: str, *args: object) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_processes_pool_their_counts_and_metrics_sums_them(newsroom: Newsroom, tmp_path: Path) -> None:
    newsroom.article("innlent", "fyrsta")
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "counter_1.db").write_bytes(b"left by an earlier run")
    started: dict[str, str] = {}
    metrics.start_pool(pool, started)
    assert list(pool.iterdir()) == [] and started == {"PROMETHEUS_MULTIPROC_DIR": str(pool)}

    for times in (3, 4):
        python(_ANSWER, newsroom.root, tmp_path / "cache", pool, times)
    samples = parse(python(_SCRAPE, newsroom.root, tmp_path / "cache", pool))
    # Each process rendered the feed once and found it in its cache the other times.
    assert requests(samples, "feed", "200", "miss") == 2
    assert requests(samples, "feed", "200", "hit") == 5
    assert value(samples, "feeds_render_cache_lookups_total", result="hit") == 5
    assert value(samples, "feeds_render_seconds_count", format="rss.xml") == 2
    assert value(samples, "feeds_index_sync_seconds_count", kind="rebuild") == 1
    assert value(samples, "feeds_articles") == 1
    files = sorted(path.name.split("_")[0] for path in pool.iterdir())
    assert files == ["counter"] * 3 + ["histogram"] * 3
    # Given their room at once: a full disk never finds a page of them missing (which is SIGBUS).
    assert all(path.stat().st_blocks * 512 >= 1 << 16 for path in pool.iterdir())


def test_a_process_that_cannot_pool_counts_alone(newsroom: Newsroom, tmp_path: Path) -> None:
    newsroom.article("innlent", "fyrsta")
    (tmp_path / "file").write_text("not a folder")
    script = _ANSWER + "print(client.get('/metrics').get_data(as_text=True))\n"
    out = parse(python(script, newsroom.root, tmp_path / "cache", tmp_path / "file" / "pool", 2))
    assert requests(out, "feed", "200", "hit") == 1


# -- the log ---------------------------------------------------------------------------------------


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, object]]]]:
    """What the web app's log handler writes, each line parsed as JSON."""
    stream = io.StringIO()
    handler = logs.handler("web", stream)
    logging.getLogger().addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logging.getLogger().removeHandler(handler)


def test_log_lines_are_json_with_the_request_id(
    newsroom: Newsroom, tmp_path: Path, log_lines: Callable[[], list[dict[str, object]]]
) -> None:
    client = create_app({"CONTENT_DIR": newsroom.root, "CACHE_DIR": tmp_path / "cache"}).test_client()
    # No index and no indexer: a 503, and a warning in the log.
    response = client.get("/feeds/rss.xml", headers={"X-Request-Id": "9f2c-4e1a.b3:d5"})
    assert response.status_code == 503 and response.headers["X-Request-Id"] == "9f2c-4e1a.b3:d5"
    for offered in ("two words", "x" * 200, "<script>"):
        response = client.get("/feeds/rss.xml", headers={"X-Request-Id": offered})
        assert re.fullmatch(r"[0-9a-f]{16}-[0-9]+", response.headers["X-Request-Id"])
    logging.getLogger("feeds.test").warning("said outside a request")

    lines = log_lines()
    warnings = [line for line in lines if line["logger"] == "feeds.http_errors"]
    assert [line["request_id"] for line in warnings[:1]] == ["9f2c-4e1a.b3:d5"]
    assert warnings[0]["level"] == "warning" and warnings[0]["process"] == "web"
    assert str(warnings[0]["message"]).startswith("503: ")
    assert warnings[-1]["request_id"] == response.headers["X-Request-Id"]
    assert "request_id" not in lines[-1] and lines[-1]["message"] == "said outside a request"
    assert {"time", "level", "process", "pid", "logger", "message"} <= set(lines[-1])


# -- the service as deployed -----------------------------------------------------------------------


def answers(port: int) -> bool:
    try:
        return get(port, "/healthz")[0] == 200
    except OSError:
        return False


def test_the_service_as_deployed_sums_its_workers_and_its_indexer(newsroom: Newsroom, tmp_path: Path) -> None:
    newsroom.article("innlent", "fyrsta", date="2026-10-01T12:00:00Z")
    an_hour_ago = time.time() - 3600
    for path in newsroom.root.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))
    cache = tmp_path / "cache"
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "counter_1.db").write_bytes(b"left by an earlier run")
    port = free_port()
    environment = {
        **{key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"},
        "FEEDS_CONTENT_DIR": str(newsroom.root), "FEEDS_CACHE_DIR": str(cache), "FEEDS_METRICS_DIR": str(pool),
    }  # fmt: skip
    with open(tmp_path / "stderr", "wb") as stderr:
        process = subprocess.Popen(
            [str(FLASK), "--app", "app", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            cwd=ROOT, env=environment, start_new_session=True, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        wait_until(lambda: answers(port) or process.poll() is not None, "the server did not start", 30)
        assert process.poll() is None

        def scrape_service() -> Samples:
            code, headers, body = get(port, "/metrics")
            assert code == 200 and headers["cache-control"] == "no-store"
            return parse(body.decode())

        def fed(samples: Samples) -> float:
            return sum(requests(samples, "feed", "200", cache) for cache in ("hit", "miss"))

        before = scrape_service()
        for number in range(40):
            code, headers, _ = get(port, "/feeds/rss.xml", {"X-Request-Id": f"poll-{number}"})
            assert code == 200 and headers["x-request-id"] == f"poll-{number}"
        after = scrape_service()
        assert fed(after) - fed(before) == 40
        assert requests(after, "metrics", "200") - requests(before, "metrics", "200") == 1
        # Only the indexer syncs (the web workers read): its counts reach /metrics through the pool.
        assert value(after, "feeds_index_sync_seconds_count", kind="rebuild") == 1
        assert value(after, "feeds_articles") == 1
        # Two workers, the indexer and the supervisor (its restarts) write there, and nothing of an
        # earlier run is left.
        wait_until(lambda: len(list(pool.glob("counter_*.db"))) == 4, "a worker never started")
        assert not (pool / "counter_1.db").exists()

        newsroom.article("innlent", "onnur", title="Önnur frétt")
        wait_until(lambda: b"nnur fr" in get(port, "/feeds/rss.xml")[2], "the edit never showed")
        # The indexer counts a sync once it is committed: a worker may show the edit a moment before.
        wait_until(
            lambda: value(scrape_service(), "feeds_index_sync_seconds_count", kind="bundles") >= 1,
            "the indexer's sync was never counted",
        )
    finally:
        process.terminate()  # the supervisor stops what it started
        process.wait(30)
    lines = [line for line in (tmp_path / "stderr").read_text().splitlines() if line]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {entry["process"] for entry in entries} >= {"supervisor", "indexer"}
