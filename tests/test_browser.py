"""The pages in a real browser: headless Chromium (Debian's), driven by Selenium through chromium-driver.

With CI set, a missing browser fails these tests; elsewhere it skips them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import threading
import urllib.request
from collections.abc import Iterator

import feedparser
import jsonschema
import pytest
from PIL import Image
from werkzeug.serving import make_server

from feeds import create_app

from .conftest import Newsroom
from .test_jsonfeed import REGISTRY, SCHEMA

# werkzeug's development server, which serves these pages to the browser, never closes a response
# whose client went away mid-body (it skips the iterator's close() on a dropped connection), and
# Chromium drops image requests it no longer needs. The file left open is the server's, not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <_io.FileIO:pytest.PytestUnraisableExceptionWarning"
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PHONE = (360, 780)
DESKTOP = (1280, 900)


def noisy_jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 48).convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app over a newsroom with large photos and a long archive, served on loopback."""
    root = tmp_path_factory.mktemp("browser")
    room = Newsroom(root / "content")
    room.site(base_url="https://frettir.example.is")
    room.section("innlent", "Innlent", "Fréttir innanlands")
    room.section("erlent", "Erlent", "Fréttir utan úr heimi með mjög löngu heiti sem fer yfir margar línur")
    for month in range(1, 13):
        for day, section in ((3, "innlent"), (17, "erlent")):
            slug = f"frett-2025-{month:02d}-{day:02d}"
            room.write(f"{section}/{slug}/mynd.jpg", noisy_jpeg((1800, 1200)))
            room.article(
                section,
                slug,
                title=f"Frétt {day}. {month}. 2025 um Reykjanesskaga og Vestmannaeyjar",
                date=f"2025-{month:02d}-{day:02d}T12:00:00Z",
                topics=["Eldgos", "Norður-Kórea"] if month % 3 == 0 else ["Eldgos"],
                authors=["Anna Jónsdóttir", "Páll Ólafsson"],
                body="Fyrsta málsgrein.\n\n![Hraun](mynd.jpg)\n\nÖnnur málsgrein með [tengli](https://example.is/).",
                images=[{"file": "mynd.jpg", "caption": "Hraunið rennur.", "credit": "Ljósmynd/Jón Pétursson"}],
            )
    config = {"CONTENT_DIR": room.root, "CACHE_DIR": root / "cache", "INDEXER": "inline", "FEED_SIZE": 5}
    server = make_server("127.0.0.1", 0, create_app(config), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@contextlib.contextmanager
def _browser(size: tuple[int, int]):  # type: ignore[no-untyped-def]
    """A headless Chromium of the window size, ended (with every file it made) on leaving."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        message = "headless Chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--lang=is"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    # Chromium leaves a folder for its single-instance socket in TMPDIR when chromium-driver ends
    # it, one per browser started: a folder of its own for each keeps them out of /tmp.
    with tempfile.TemporaryDirectory(prefix="feeds-chromium-") as temporary:
        service = Service(CHROMEDRIVER, env={**os.environ, "TMPDIR": temporary})
        driver = webdriver.Chrome(options=options, service=service)
        try:
            driver.set_page_load_timeout(60)
            # The layout viewport exactly as wide as the window, whatever the window decorations.
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": size == PHONE},
            )
            yield driver
        finally:
            driver.quit()


@pytest.fixture(params=[PHONE, DESKTOP], ids=["phone", "desktop"])
def browser(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    with _browser(request.param) as driver:
        yield driver


@pytest.fixture
def phone():  # type: ignore[no-untyped-def]
    with _browser(PHONE) as driver:
        yield driver


PAGES = ["/", "/innlent/", "/topics/eldgos/", "/innlent/frett-2025-06-03/", "/erlent/archive/2025-03/"]

#: Every image on the page, as the browser laid it out and loaded it.
IMAGES = """
const dpr = window.devicePixelRatio;
return Array.from(document.images).map(img => ({
  src: img.currentSrc, complete: img.complete, natural: img.naturalWidth,
  shown: img.getBoundingClientRect().width * dpr, srcset: img.getAttribute('srcset') || '', alt: img.alt,
}));
"""
FETCHED = "return performance.getEntriesByType('resource').filter(e => e.initiatorType === 'img').map(e => e.name);"


def _wait_for_images(driver) -> None:  # type: ignore[no-untyped-def]
    """Scrolls through the page so that lazy images load, and waits until every one has."""
    from selenium.webdriver.support.ui import WebDriverWait

    height = driver.execute_script("return document.documentElement.scrollHeight")
    for y in range(0, height + 1, 400):
        driver.execute_script(f"window.scrollTo(0, {y})")
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)")
    )


@pytest.mark.parametrize("path", PAGES)
def test_every_image_loads_and_none_is_larger_than_needed(site: str, browser, path: str) -> None:  # type: ignore[no-untyped-def]
    browser.get(site + path)
    _wait_for_images(browser)
    images = browser.execute_script(IMAGES)
    assert images, "every page of this newsroom shows photos"
    for image in images:
        assert image["complete"] and image["natural"] > 0, image
        assert image["alt"], image
        if not image["srcset"]:
            continue
        widths = sorted(int(item.split()[1].rstrip("w")) for item in image["srcset"].split(","))
        # The narrowest candidate that covers the image as shown, and the step above it at most.
        enough = next((index for index, width in enumerate(widths) if width >= image["shown"]), len(widths) - 1)
        allowed = widths[min(enough + 1, len(widths) - 1)]
        assert image["natural"] <= allowed, image
    # Nothing else was fetched: every photo the page asked for is one it shows.
    shown = {image["src"] for image in images}
    fetched = set(browser.execute_script(FETCHED))
    assert fetched <= shown, fetched - shown
    if browser.execute_script("return window.innerWidth") == PHONE[0]:
        originals = [url for url in fetched if url.endswith("/mynd.jpg") and "w-" not in url.rsplit("/", 2)[1]]
        assert originals == [], "a phone never downloads an original"


@pytest.mark.parametrize("path", PAGES)
def test_nothing_overflows_a_phone(site: str, phone, path: str) -> None:  # type: ignore[no-untyped-def]
    phone.get(site + path)
    overflow = phone.execute_script(
        "const root = document.documentElement;"
        "const wide = Array.from(document.querySelectorAll('body *'))"
        "  .filter(e => e.getBoundingClientRect().right > root.clientWidth + 0.5);"
        "return [root.scrollWidth, root.clientWidth, wide.slice(0, 5).map(e => e.outerHTML.slice(0, 120))];"
    )
    scroll_width, client_width, wide = overflow
    assert scroll_width <= client_width, wide
    assert phone.execute_script("return document.documentElement.lang") == "is"
    assert phone.execute_script("return document.querySelectorAll('h1').length") == 1


def test_every_subscribe_link_is_a_valid_feed(site: str, phone) -> None:  # type: ignore[no-untyped-def]
    phone.get(site + "/")
    links = phone.execute_script(
        "return Array.from(document.querySelectorAll('main a[type]'))"
        "  .map(a => [a.href, a.type, a.parentElement.textContent]);"
    )
    assert len(links) >= 3 * 5  # the site, two sections and two topics, in three formats; and the OPML
    for href, media_type, row in links:
        assert href in row, "the URL is shown, to be copied"
        with urllib.request.urlopen(href) as response:
            body = response.read()
            assert response.headers.get_content_type() == media_type
        if media_type == "application/feed+json":
            jsonschema.Draft4Validator(SCHEMA, registry=REGISTRY).validate(json.loads(body))
        elif media_type == "text/x-opml":
            assert b"<opml" in body
        else:
            result = feedparser.parse(body)
            assert not result.bozo and result.entries, href


def test_the_archive_pages_walk_back_to_the_oldest_article(site: str, phone) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    phone.get(site + "/innlent/")
    seen: list[str] = []
    for _ in range(20):
        seen += [link.text for link in phone.find_elements(By.CSS_SELECTOR, "ul.articles > li > a")]
        older = phone.find_elements(By.CSS_SELECTOR, "nav.archive a[rel=prev]")
        if not older:
            break
        older[0].click()
    assert seen[-1] == "Frétt 3. 1. 2025 um Reykjanesskaga og Vestmannaeyjar"
    assert {f"Frétt 3. {month}. 2025 um Reykjanesskaga og Vestmannaeyjar" for month in range(1, 13)} <= set(seen)
    assert phone.current_url.endswith("/innlent/archive/2025-01/")


def test_a_page_works_without_javascript(site: str) -> None:
    """No page needs a script: none is served."""
    for path in PAGES:
        with urllib.request.urlopen(site + path) as response:
            assert b"<script" not in response.read()
