"""WebSub end to end: a real third-party hub (flask-websub, its own process), the service as deployed,
and a subscriber that subscribes through the hub, all on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest

from bench import load, servers, websub

from .conftest import Newsroom
from .running import settle, start_origin, wait_announcing, wait_for


@pytest.fixture
def room(newsroom: Newsroom) -> Newsroom:
    newsroom.article("innlent", "gos", title="Gos hafið", date="2026-10-01T12:00:00Z", topics=["Eldgos"])
    newsroom.article("erlent", "kosning", title="Kosning", date="2026-09-01T12:00:00Z")
    settle(newsroom)
    return newsroom


@pytest.fixture
def subscriber() -> Iterator[websub.Subscriber]:
    running = websub.Subscriber().start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    servers.stop_all()


def test_a_save_reaches_a_subscriber_through_the_hub_and_only_changed_feeds_are_announced(
    room: Newsroom, tmp_path: Path, subscriber: websub.Subscriber
) -> None:
    hub = websub.start_hub(tmp_path / "hub")
    websub.wait_for_hub(hub)
    port = servers.free_port()
    origin = f"http://127.0.0.1:{port}"
    start_origin(room, tmp_path, port, BASE_URL=origin, WEBSUB_HUBS=websub.hub_url(hub))
    wait_announcing(tmp_path)
    changed, unchanged = f"{origin}/feeds/innlent/rss.xml", f"{origin}/feeds/erlent/atom.xml"
    for topic in (changed, unchanged):
        assert subscriber.subscribe(websub.hub_url(hub), topic) == 202
    # The hub verifies our intent by calling back with a challenge before it counts the subscription.
    assert subscriber.wait(lambda: {changed, unchanged} <= set(subscriber.verified), 10), hub.log_tail()

    room.article("innlent", "gos", title="Gos hafið, uppfært", date="2026-10-01T12:00:00Z", topics=["Eldgos"])
    saved = time.perf_counter()
    assert subscriber.wait(lambda: bool(subscriber.deliveries), 10), hub.log_tail()
    delivery = subscriber.deliveries[0]
    assert delivery.topic == changed and delivery.signed
    assert delivery.at - saved < 2.0
    assert [entry.title for entry in feedparser.parse(delivery.body).entries] == ["Gos hafið, uppfært"]
    assert f'<{changed}>; rel="self"' in delivery.headers["link"]

    # Written again with the same bytes, and the erlent feed all along: nothing is announced.
    room.article("innlent", "gos", title="Gos hafið, uppfært", date="2026-10-01T12:00:00Z", topics=["Eldgos"])
    time.sleep(1.5)
    assert [delivery.topic for delivery in subscriber.deliveries] == [changed]
    log = (tmp_path / "service.log").read_text()
    assert f"sent {changed}: 202" in log and "/feeds/erlent/" not in log


def test_a_dead_hub_changes_nothing_for_readers(room: Newsroom, tmp_path: Path) -> None:
    port = servers.free_port()
    dead = f"http://127.0.0.1:{servers.free_port()}/hub"  # nothing listens there
    origin = start_origin(room, tmp_path, port, BASE_URL=f"http://127.0.0.1:{port}", WEBSUB_HUBS=dead)
    wait_announcing(tmp_path)
    for number in range(3):
        title = f"Gos, útgáfa {number}"
        room.article("innlent", "gos", title=title, date="2026-10-01T12:00:00Z", topics=["Eldgos"])

        def shown(title: str = title) -> bool:
            return title.encode() in load.probe(origin.url("/feeds/rss.xml")).body

        took = wait_for(shown, "the edit never showed")
        assert took < 1.0
    log = (tmp_path / "service.log").read_text()
    assert f"websub {dead}: http://127.0.0.1:{port}/feeds/rss.xml failed" in log
