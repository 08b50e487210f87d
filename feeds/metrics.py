"""What /metrics shows: the counts of the web workers and the indexer, pooled across processes, and /healthz's figures.

With a pool folder (FEEDS_METRICS_DIR or PROMETHEUS_MULTIPROC_DIR, which `serve` and gunicorn.conf.py
set beside the index), every process of the service writes its counts to its own files there
(prometheus_client's multiprocess mode), and /metrics, in whichever worker answers it, sums them.
Without one, an app keeps its counts to itself: a fresh registry per app (tests, `flask run`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from . import logs
from .config import MULTIPROCESS_VARIABLE

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

#: Where the Flask app leaves the kind of route a request matched (feed, page, photo...), for its count.
ROUTE_KIND = "feeds.route_kind"
REQUESTS = "feeds_http_requests"
RENDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SYNC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: The room each process's files in the pool get at once: prometheus_client leaves its files sparse,
#: and a process that writes to a page the disk has no room for is killed (SIGBUS). A few hundred
#: series fit; ours are a few dozen per process.
_FILE_BYTES = 1 << 16
#: The files a process writes in the pool: counters, and histograms (the gauges are read when scraped).
_FILE_KINDS = ("counter", "histogram")

#: What a render cache lookup tells the count of its request: the kind of route, and hit or miss.
_LOOKUPS = {(archive, hit): ("archive" if archive else "feed", "hit" if hit else "miss")
            for archive in (False, True) for hit in (False, True)}  # fmt: skip

SyncKind = Literal["bundles", "settings", "full", "rebuild"]
RestartCause = Literal["exited", "silent"]
NotificationKind = Literal["websub", "purge"]
NotificationResult = Literal["sent", "failed", "given_up"]


class Figures(Protocol):
    """What /healthz reports and /metrics shows as gauges: `Publisher.health()`, read once per scrape."""

    @property
    def ready(self) -> bool: ...
    @property
    def indexer_alive(self) -> bool: ...
    @property
    def index_problem(self) -> str | None: ...
    @property
    def articles(self) -> int | None: ...
    @property
    def content_errors(self) -> Sized: ...
    @property
    def index_age_seconds(self) -> float | None: ...


class Metrics:
    """The counts of one app (and its indexer, in the watch process); each a small typed call."""

    def __init__(self, pool: Path | None = None) -> None:
        #: The folder the counts are pooled in; None when they are the app's alone.
        self.pool = pool if pool is not None and _join(pool) else None
        self._registry = CollectorRegistry()
        # Pooled counts are written to files, which /metrics reads; a registry would count them twice.
        registry = None if self.pool is not None else self._registry
        # A `_created` series per counter says when a process first counted: pooled counts have none.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self._requests = Counter(
            REQUESTS, "Requests answered, by kind of route, status, and render cache hit or miss (feeds only).",
            ["route", "status", "cache"], registry=registry,
        )  # fmt: skip
        self._renders = Histogram(
            "feeds_render_seconds", "Feed documents rendered (on a miss), and how long each took.", ["format"],
            buckets=RENDER_BUCKETS, registry=registry,
        )  # fmt: skip
        self._syncs = Histogram(
            "feeds_index_sync_seconds", "Syncs of the index with content/, by kind, and how long each took.",
            ["kind"], buckets=SYNC_BUCKETS, registry=registry,
        )  # fmt: skip
        self._sync_failures = Counter(
            "feeds_index_sync_failures", "Rounds of the watch loop that failed (each is tried again).",
            registry=registry,
        )  # fmt: skip
        self._notifications = Counter(
            "feeds_notifications", "Feed URLs sent to hubs and keys purged from caches, by result.",
            ["kind", "destination", "result"], registry=registry,
        )  # fmt: skip
        self._by_request: dict[tuple[str, str, str], Counter] = {}
        #: What the request being answered in this thread asked of the render cache, if it asked.
        self._lookup = threading.local()

    def request(self, route: str | None, status: str) -> None:
        """Counts a request answered, by the kind of route it was for ("feed", "page"...; None when the
        feed shortcut answered before Flask could say), its status code, and how it fared in the
        render cache if it asked."""
        lookup = self._lookup.__dict__.pop("lookup", None)
        key = (route or "other", status, "") if lookup is None else (route or lookup[0], status, lookup[1])
        counter = self._by_request.get(key)
        if counter is None:
            counter = self._by_request[key] = self._requests.labels(*key)
        counter.inc()

    def render_cache(self, hit: bool, archive: bool) -> None:
        """Notes that the request being answered found its feed (or archive) document in the render
        cache, or not.

        It is counted with the request (`request`), in the same series: a feed answered from the cache
        is the one request that must cost next to nothing, and one count costs half of two.
        """
        self._lookup.lookup = _LOOKUPS[archive, hit]

    def rendered(self, file_name: str, seconds: float) -> None:
        """Records a feed document rendered: its format's file name ("rss.xml") and how long it took."""
        self._renders.labels(file_name).observe(seconds)

    def index_synced(self, kind: SyncKind, seconds: float) -> None:
        """Records a sync of the index: of some bundles, a full pass, or a rebuild."""
        self._syncs.labels(kind).observe(seconds)

    def index_sync_failed(self) -> None:
        self._sync_failures.inc()

    def notified(self, kind: NotificationKind, destination: str, result: NotificationResult, count: int) -> None:
        """Counts feed URLs (WebSub) or keys (purges) sent to a destination, failed, or given up."""
        self._notifications.labels(kind, destination, result).inc(count)

    def exposition(self, figures: Figures, accept: str = "") -> tuple[bytes, str]:
        """The body of /metrics in the format `accept` asks for, and its content type: every process's
        counts, and `figures` as gauges."""
        counted: Collector = self._registry
        if self.pool is not None:
            counted = MultiProcessCollector(None, str(self.pool))  # type: ignore[no-untyped-call]
        encode, content_type = choose_encoder(accept)
        return encode(_Scrape(counted, figures)), content_type


class Restarts:
    """The supervisor's count of the processes it replaced: one that exited, and one it killed for
    giving no sign of life (`liveness`). In the pool, /metrics shows it with the others' counts."""

    def __init__(self, pool: Path | None = None) -> None:
        registry = None if pool is not None and _join(pool) else CollectorRegistry()
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self._restarts = Counter(
            "feeds_process_restarts", "Processes replaced by the supervisor, by process and why: exited, or silent"
            " for longer than FEEDS_WATCHDOG_SECONDS (and killed).", ["process", "cause"], registry=registry,
        )  # fmt: skip

    def count(self, process: str, cause: RestartCause) -> None:
        self._restarts.labels(process, cause).inc()


class _Scrape:
    """What one scrape collects: the counts, the render cache's lookups summed from the requests, and
    the figures."""

    def __init__(self, counted: Collector, figures: Figures) -> None:
        self.counted = counted
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        lookups = dict.fromkeys(("hit", "miss"), 0.0)
        for family in self.counted.collect():
            if family.name == REQUESTS:
                for sample in family.samples:
                    if sample.labels.get("cache") in lookups:
                        lookups[sample.labels["cache"]] += sample.value
            yield family
        family = CounterMetricFamily(
            "feeds_render_cache_lookups", "Feed documents asked of the render cache, by result.", labels=["result"]
        )
        for result, count in lookups.items():
            family.add_metric([result], count)
        yield family
        figures = self.figures
        yield GaugeMetricFamily("feeds_ready", "1 when the current content can be served.", value=float(figures.ready))
        yield GaugeMetricFamily("feeds_indexer_up", "1 when an indexer is running.", value=float(figures.indexer_alive))
        if figures.index_age_seconds is not None:
            yield GaugeMetricFamily(
                "feeds_index_age_seconds", "Since the indexer last found the index in step with content/.",
                value=figures.index_age_seconds,
            )  # fmt: skip
        if figures.index_problem is None and figures.articles is not None:
            yield GaugeMetricFamily("feeds_articles", "Public articles.", value=figures.articles)
            yield GaugeMetricFamily(
                "feeds_content_errors", "Stored files that cannot be published as they stand.",
                value=len(figures.content_errors),
            )  # fmt: skip


class Observed:
    """WSGI middleware in front of everything: gives each request its id (in the log lines written
    while it is answered, and in its X-Request-Id header) and counts it by kind of route and status."""

    def __init__(self, app: WSGIApplication, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request_id = logs.request_id(environ.get("HTTP_X_REQUEST_ID"))
        token = logs.REQUEST_ID.set(request_id)

        def respond(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            self.metrics.request(environ.get(ROUTE_KIND), status[:3])
            # A copy: the feed shortcut answers with header lists it keeps for every request.
            return start_response(status, [*headers, ("X-Request-Id", request_id)], exc_info)

        try:
            return self.app(environ, respond)
        finally:
            logs.REQUEST_ID.reset(token)


def _join(pool: Path) -> bool:
    """Puts this process in multiprocess mode, writing to `pool`; False (and a warning) if it cannot
    have its files there, in which case it counts alone."""
    try:
        pool.mkdir(parents=True, exist_ok=True)
        for kind in _FILE_KINDS:
            descriptor = os.open(pool / f"{kind}_{os.getpid()}.db", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.posix_fallocate(descriptor, 0, _FILE_BYTES)
            finally:
                os.close(descriptor)
    except OSError as error:
        log.warning("cannot pool metrics in %s (%s): this process counts alone", pool, error)
        values.ValueClass = values.MutexValue
        return False
    os.environ[MULTIPROCESS_VARIABLE] = str(pool)
    # The library chooses its mode once, when it is imported: a gunicorn worker inherits the choice
    # its master made before it named the pool. Every metric is made after this.
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return True


def start_pool(pool: Path, environ: MutableMapping[str, str] = os.environ) -> None:
    """For the process that starts the others (`serve`, gunicorn's master), before it does: empties
    the pool of an earlier run, and names it in the environment they inherit."""
    environ[MULTIPROCESS_VARIABLE] = str(pool)
    try:
        pool.mkdir(parents=True, exist_ok=True)
        for old in pool.glob("*.db"):
            old.unlink()
    except OSError as error:
        log.warning("cannot empty the metrics pool %s (%s): counts of an earlier run stay in it", pool, error)


def process_gone(pid: int, pool: Path) -> None:
    """For a server that says when a worker exited (gunicorn): drops what counted only while it lived."""
    mark_process_dead(pid, str(pool))  # type: ignore[no-untyped-call]
