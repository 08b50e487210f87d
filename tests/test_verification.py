"""Lost notifications: the kernel's overflow, rolling verification, and more folders than watches."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask

from feeds import create_app, scanner, watcher
from feeds.errors import IndexUnavailable, NotFound
from feeds.inotify import Notice, Notifications
from feeds.publisher import Publisher
from feeds.scanner import SyncReport
from feeds.watcher import Watcher

from .conftest import Newsroom

QUEUED_EVENTS = Path("/proc/sys/fs/inotify/max_queued_events")
WAIT_SECONDS = 15.0


class Deaf(Watcher):
    """A watch loop whose notifications come from another, empty folder: alive, but told nothing."""

    elsewhere: Path

    def _watch(self) -> Notifications | None:
        return Notifications(str(self.elsewhere), depth=2)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, what
        time.sleep(0.02)
    return time.monotonic() - started


def count(publisher: Publisher) -> int:
    try:
        return publisher.store.count(publisher.clock())
    except IndexUnavailable:
        return -1


def title(publisher: Publisher, path: str) -> str | None:
    section, _, slug = path.partition("/")
    try:
        return publisher.store.article(section, slug, publisher.clock()).title
    except NotFound:
        return None


@pytest.fixture
def corpus(newsroom: Newsroom) -> Newsroom:
    for number in range(40):
        newsroom.article("innlent" if number % 2 else "erlent", f"frett-{number}", title=f"Frétt {number}")
    an_hour_ago = time.time() - 3600
    for path in newsroom.root.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))
    return newsroom


@pytest.fixture
def app(corpus: Newsroom, tmp_path: Path) -> Flask:
    return create_app({"CONTENT_DIR": corpus.root, "CACHE_DIR": tmp_path / "cache", "SETTLE_SECONDS": 0.2})


@pytest.fixture
def run_loop(app: Flask) -> Iterator[Callable[[Watcher], None]]:
    """Starts a watch loop in a thread, holding the index's lock as `watch` does; stops it after the test."""
    publisher: Publisher = app.extensions["feeds"]
    running: list[tuple[threading.Thread, threading.Event]] = []

    def run(loop: Watcher) -> None:
        stop = threading.Event()

        def target() -> None:
            loop.indexer.acquire(wait=False)
            try:
                loop.run(stop)
            finally:
                loop.indexer.release()

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        running.append((thread, stop))
        wait_until(lambda: count(publisher) == 40, "the index was never built")

    yield run
    for thread, stop in running:
        stop.set()
        thread.join(timeout=15)
        assert not thread.is_alive()


def test_verification_finds_what_no_notification_named(
    app: Flask, corpus: Newsroom, run_loop: Callable[[Watcher], None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    publisher: Publisher = app.extensions["feeds"]
    loop = Deaf(publisher.indexer(), corpus.root, rescan_seconds=3600, verify_per_second=200)
    loop.elsewhere = tmp_path / "elsewhere"
    loop.elsewhere.mkdir()
    run_loop(loop)
    corpus.article("innlent", "frett-5", title="Frétt 5, leiðrétt")
    corpus.article("erlent", "ny-frett", title="Ný frétt")
    shutil.rmtree(corpus.root / "erlent" / "frett-8")
    paths = ("innlent/frett-5", "erlent/ny-frett", "erlent/frett-8")
    wait_until(
        lambda: tuple(title(publisher, path) for path in paths) == ("Frétt 5, leiðrétt", "Ný frétt", None),
        "the verification missed a change",
    )
    assert "verification found" in caplog.text
    assert loop.verifier.cycles >= 1


def test_a_small_archive_looked_over_again_and_again_logs_it_seldom(
    app: Flask, corpus: Newsroom, run_loop: Callable[[Watcher], None], caplog: pytest.LogCaptureFixture
) -> None:
    """40 bundles at 400 a second: a cycle every tenth of a second, which once filled the log."""
    publisher: Publisher = app.extensions["feeds"]
    caplog.set_level(logging.INFO, logger="feeds.watcher")
    loop = Watcher(publisher.indexer(), corpus.root, rescan_seconds=3600, verify_per_second=400)
    run_loop(loop)
    wait_until(lambda: loop.verifier.cycles >= 5, "verification never went round five times")
    logged = [record.getMessage() for record in caplog.records if "looked at every bundle" in record.getMessage()]
    assert len(logged) == 1, logged
    assert logged[0].startswith("verification looked at every bundle (cycle 1, in ")


class Failing(Notifications):
    """Real notifications whose reading fails once, when armed."""

    armed = False

    def read(self, timeout: float) -> list[Notice]:
        if self.armed:
            self.armed = False
            raise OSError(errno.ENOMEM, "Cannot allocate memory")
        return super().read(timeout)


class Stumbling(Watcher):
    """A watch loop whose first notifications fail once armed; those it opens again are plain."""

    first: Failing | None = None

    def _watch(self) -> Notifications | None:
        if self.first is None:
            self.first = Failing(str(self.content_dir), depth=2)
            return self.first
        return super()._watch()


def test_a_loop_whose_notifications_fail_starts_them_again(
    app: Flask, corpus: Newsroom, run_loop: Callable[[Watcher], None], caplog: pytest.LogCaptureFixture
) -> None:
    publisher: Publisher = app.extensions["feeds"]
    # No verification and no rescans: only notifications can bring the article in.
    loop = Stumbling(publisher.indexer(), corpus.root, rescan_seconds=3600, verify_per_second=0)
    run_loop(loop)
    assert loop.first is not None
    loop.first.armed = True
    wait_until(lambda: "reading file notifications failed" in caplog.text, "the failure was never met")
    corpus.article("innlent", "eftir-bilun", title="Eftir bilun")
    wait_until(lambda: title(publisher, "innlent/eftir-bilun") == "Eftir bilun", "notifications did not start again")
    assert loop.first.fileno() == -1


def test_an_overflowed_queue_brings_a_whole_pass(
    app: Flask, corpus: Newsroom, run_loop: Callable[[Watcher], None], caplog: pytest.LogCaptureFixture
) -> None:
    if not os.access(QUEUED_EVENTS, os.W_OK):
        pytest.skip("making the kernel's notification queue short needs root")
    publisher: Publisher = app.extensions["feeds"]
    # No verification and no rescans: only the overflow alarm can find what the kernel dropped.
    loop = Watcher(publisher.indexer(), corpus.root, rescan_seconds=3600, verify_per_second=0)
    usual = QUEUED_EVENTS.read_text()
    QUEUED_EVENTS.write_text("16\n")  # a queue's length is fixed when it is made, by the loop's start
    try:
        run_loop(loop)
    finally:
        QUEUED_EVENTS.write_text(usual)
    with caplog.at_level(logging.INFO):
        for number in range(300):
            corpus.article("innlent", f"flod-{number}", title=f"Flóð {number}")
        wait_until(lambda: count(publisher) == 340, "articles were lost with the notifications")
    assert "the kernel's queue overflowed" in caplog.text


def test_with_more_folders_than_watches_sections_are_watched_and_bundles_verified(
    app: Flask,
    corpus: Newsroom,
    run_loop: Callable[[Watcher], None],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publisher: Publisher = app.extensions["feeds"]
    monkeypatch.setattr(watcher, "_watches_allowed", lambda needed: False)
    loop = Watcher(publisher.indexer(), corpus.root, rescan_seconds=3600, verify_per_second=200)
    run_loop(loop)
    assert not loop.watching_bundles and "more than fs.inotify.max_user_watches" in caplog.text
    # A bundle renamed into place, whole: its section's notification names it at once.
    staged = tmp_path / "staged"
    shutil.copytree(corpus.root / "innlent" / "frett-1", staged)
    (staged / "index.md").write_text((staged / "index.md").read_text().replace("Frétt 1", "Frétt í heilu lagi"))
    os.rename(staged, corpus.root / "innlent" / "heil-frett")
    took = wait_until(lambda: title(publisher, "innlent/heil-frett") == "Frétt í heilu lagi", "a new bundle was missed")
    assert took < 2.0
    # An edit inside a bundle has no watch of its own: the verification finds it.
    corpus.article("erlent", "frett-10", title="Frétt 10, uppfærð")
    wait_until(lambda: title(publisher, "erlent/frett-10") == "Frétt 10, uppfærð", "an edit inside a bundle was missed")


def test_the_watch_limit_is_raised_where_it_may_be(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = tmp_path / "max_user_watches"
    monkeypatch.setattr(watcher, "MAX_USER_WATCHES", limit)
    limit.write_text("100000\n")
    assert watcher._watches_allowed(1000) and limit.read_text() == "100000\n"  # room enough: left alone
    limit.write_text("100\n")
    assert watcher._watches_allowed(1000) and int(limit.read_text()) >= 2000
    limit.unlink()
    limit.mkdir()  # cannot be read or written: assume room, as the kernel will say otherwise
    assert watcher._watches_allowed(10**9)


def test_a_bundle_moved_in_whole_from_outside_shows_without_waiting_to_settle(corpus: Newsroom, tmp_path: Path) -> None:
    app = create_app({"CONTENT_DIR": corpus.root, "CACHE_DIR": tmp_path / "cache-slow", "SETTLE_SECONDS": 5})
    publisher: Publisher = app.extensions["feeds"]
    loop = Watcher(publisher.indexer(), corpus.root, rescan_seconds=3600)
    stop = threading.Event()
    loop.indexer.acquire(wait=False)
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: count(publisher) == 40, "the index was never built")
        staged = tmp_path / "staged"  # beside content/, written just now: every file fresh
        shutil.copytree(corpus.root / "innlent" / "frett-1", staged)
        index = staged / "index.md"
        index.write_text(index.read_text(encoding="utf-8").replace("Frétt 1", "Heil frétt"), encoding="utf-8")
        os.rename(staged, corpus.root / "innlent" / "heil")
        took = wait_until(lambda: title(publisher, "innlent/heil") == "Heil frétt", "the moved bundle never showed")
        assert took < 1.0, f"{took:.2f} s: it waited for its files to settle"
    finally:
        stop.set()
        thread.join(timeout=15)
        loop.indexer.release()


def slow_steps(loop: Watcher, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole passes of the loop in steps of five bundles, each taking 0.3 s: a slow disk."""
    monkeypatch.setattr(scanner, "SCAN_CHUNK", 5)
    in_steps = loop.indexer.pass_in_steps

    def slowly(closed: Mapping[str, tuple[int, int]] | None = None) -> Generator[SyncReport, None, SyncReport]:
        steps = in_steps(closed)
        while True:
            time.sleep(0.3)
            try:
                step = next(steps)
            except StopIteration as done:
                report: SyncReport = done.value
                return report
            yield step

    monkeypatch.setattr(loop.indexer, "pass_in_steps", slowly)


def test_an_edit_during_the_start_up_pass_does_not_wait_for_it(
    app: Flask,
    corpus: Newsroom,
    run_loop: Callable[[Watcher], None],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At a million bundles the pass at start takes half a minute: it goes in steps, and a
    notified edit is synced between two of them."""
    publisher: Publisher = app.extensions["feeds"]
    publisher.sync_now(wait_seconds=0)  # an index left by an earlier run
    loop = Watcher(publisher.indexer(), corpus.root, rescan_seconds=3600, verify_per_second=0)
    slow_steps(loop, monkeypatch)  # nine steps, seconds in all
    with caplog.at_level(logging.INFO):
        run_loop(loop)
        corpus.article("innlent", "frett-5", title="Frétt 5, á meðan")
        wait_until(lambda: title(publisher, "innlent/frett-5") == "Frétt 5, á meðan", "the edit never showed")
        assert "(in steps)" not in caplog.text, "the edit waited for the pass"
        wait_until(lambda: "(in steps)" in caplog.text, "the pass never ended")
    # The pass, whose stored signatures for that section predate the edit, left it as it is.
    assert title(publisher, "innlent/frett-5") == "Frétt 5, á meðan"
    assert count(publisher) == 40


def test_a_settings_file_saved_again_and_again_neither_holds_off_nor_restarts_the_pass(
    app: Flask,
    corpus: Newsroom,
    run_loop: Callable[[Watcher], None],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A section's settings are read alone, as soon as they are saved, and the pass under way goes
    on: a tool that saved `_index.md` every few hundred milliseconds used to start the pass over
    each time, so that at a million bundles it never ended."""
    publisher: Publisher = app.extensions["feeds"]
    publisher.sync_now(wait_seconds=0)  # an index left by an earlier run
    loop = Watcher(publisher.indexer(), corpus.root, rescan_seconds=3600, verify_per_second=0)
    slow_steps(loop, monkeypatch)
    saves = 0
    with caplog.at_level(logging.INFO):
        run_loop(loop)
        deadline = time.monotonic() + WAIT_SECONDS
        while "(in steps)" not in caplog.text:
            assert time.monotonic() < deadline, "the pass never ended"
            saves += 1
            corpus.section("innlent", f"Innlent {saves}")
            if saves == 3:
                wait_until(lambda: publisher.store.section("innlent").title == "Innlent 3", "the settings waited")
                assert "(in steps)" not in caplog.text, "the settings waited for the pass"
            time.sleep(0.2)
        wait_until(lambda: publisher.store.section("innlent").title == f"Innlent {saves}", "the last save never showed")
        time.sleep(1.0)  # long enough for a second pass to have begun, had one been asked for
    assert saves > 5
    assert caplog.text.count("(in steps)") == 1, "the settings brought a whole pass"
    assert count(publisher) == 40


def test_a_saved_settings_file_is_read_at_once_not_at_the_next_probe(
    app: Flask, corpus: Newsroom, run_loop: Callable[[Watcher], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its notification alone wakes the loop: with nothing else to do, it used to wait for the
    next look at the index's health (a second; here ten)."""
    monkeypatch.setattr(watcher, "PROBE_SECONDS", 10.0)
    publisher: Publisher = app.extensions["feeds"]
    run_loop(Watcher(publisher.indexer(), corpus.root, rescan_seconds=3600, verify_per_second=0))
    corpus.section("innlent", "Innlendar fréttir")
    wait_until(lambda: publisher.store.section("innlent").title == "Innlendar fréttir", "the settings waited", 5.0)


def test_a_new_time_zone_reads_every_article_again(
    app: Flask, corpus: Newsroom, run_loop: Callable[[Watcher], None], caplog: pytest.LogCaptureFixture
) -> None:
    """Dates written without a zone are read in the site's: a new one is the only setting that
    brings every article to be read again; a new title does not."""
    publisher: Publisher = app.extensions["feeds"]

    def published(slug: str) -> datetime:
        return publisher.store.article("innlent", slug, publisher.clock()).published

    with caplog.at_level(logging.INFO):
        run_loop(Watcher(publisher.indexer(), corpus.root, rescan_seconds=3600, verify_per_second=0))
        corpus.article("innlent", "frett-1", title="Frétt 1", date="17. september 2023 kl. 10.00")
        wait_until(lambda: published("frett-1") == datetime(2023, 9, 17, 10, tzinfo=UTC), "the edit never showed")
        passes = caplog.text.count("full pass:")
        corpus.site(title="Nýtt nafn")
        wait_until(lambda: publisher.store.site().title == "Nýtt nafn", "the new title never showed")
        time.sleep(0.5)
        assert caplog.text.count("full pass:") == passes, "a new title brought a whole pass"
        corpus.site(title="Nýtt nafn", timezone="Europe/Oslo")  # two hours ahead in September
        wait_until(lambda: published("frett-1") == datetime(2023, 9, 17, 8, tzinfo=UTC), "the article kept its time")
        wait_until(lambda: caplog.text.count("full pass:") == passes + 1, "no whole pass read the articles")
    assert "every article is read again" in caplog.text
    assert published("frett-3") == datetime(2026, 10, 1, 12, tzinfo=UTC)  # written with its zone
    assert count(publisher) == 40
