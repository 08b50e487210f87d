"""The chaos newsroom: 4 sections, 240 topics, articles whose title and last line carry their version."""

# ruff: noqa: S311 - reproducible text, not secrets
from __future__ import annotations

import io
import os
import random
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import yaml
from PIL import Image

from ..corpus import FATHERS, FIRST_NAMES, QUOTES, REGIONS, SUBJECTS, paragraph, quoted, sentence

HOST = "frettir.example.is"
BASE_URL = f"https://{HOST}"
ZONE = ZoneInfo("Atlantic/Reykjavik")
SECTIONS = (("innlent", "Innlent"), ("erlent", "Erlent"), ("ithrottir", "Íþróttir"), ("menning", "Menning"))
PLACES = (*REGIONS, "í Grímsey", "á Hornströndum")
TOPICS = tuple(f"{subject} {place}" for subject in SUBJECTS for place in PLACES)  # 240
PHOTO = "mynd.jpg"
ARTICLE_FILE = "index.md"
#: Where a title says its version, and where the body's last line ends: "ENDIR-chaos000123-v4."
VERSION_IN_TITLE = re.compile(r"útgáfa (\d+)$")
END_MARK = re.compile(r"ENDIR-([a-z0-9]+)-v(\d+)\.")

#: public: published from its date (so embargoed until then); draft: never; broken: YAML that cannot be read.
Kind = Literal["public", "draft", "broken"]

_TRANSLITERATION = str.maketrans({"ð": "d", "Ð": "d", "þ": "th", "Þ": "th", "æ": "ae", "Æ": "ae"})


def slugify(name: str) -> str:
    """The URL segment of a topic: ASCII lowercase words joined by hyphens ("Þingvellir" → "thingvellir")."""
    text = unicodedata.normalize("NFKD", name.translate(_TRANSLITERATION)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


TOPIC_SLUGS = {slugify(name): name for name in TOPICS}


def guid(article_id: str, published: int) -> str:
    """The GUID the service promises: the site's host, the publication day in the site's zone, the id."""
    day = datetime.fromtimestamp(published, UTC).astimezone(ZONE).date().isoformat()
    return f"tag:{HOST},{day}:{article_id}"


@dataclass(frozen=True, slots=True)
class Article:
    """One version of one article bundle, as the harness writes it."""

    id: str
    section: str
    slug: str
    version: int
    #: Seconds since the epoch: the article is public from then on.
    published: int
    #: Topic names as written; the service files them under their slugs.
    topics: tuple[str, ...]
    photo: bool
    kind: Kind = "public"

    @property
    def path(self) -> str:
        return f"{self.section}/{self.slug}"

    @property
    def marker(self) -> str:
        """The last words of the body, naming the article and its version."""
        return f"ENDIR-{self.id}-v{self.version}."

    def edited(self, kind: Kind = "public") -> Article:
        return replace(self, version=self.version + 1, kind=kind)

    def render(self) -> bytes:
        """index.md: front matter, then a body long enough that its first half ends before the marker."""
        rng = random.Random(f"{self.id}:{self.version}")
        title = f"{sentence(rng, period=False)} – útgáfa {self.version}"
        author = f"{rng.choice(FIRST_NAMES)} {rng.choice(FATHERS)}{rng.choice(('son', 'dóttir'))}"
        moment = datetime.fromtimestamp(self.published, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines = [
            "---",
            f"title: {quoted(title)}",
            f'date: "{moment}"',
            f"authors: [{quoted(author)}]",
            f"topics: [{', '.join(quoted(topic) for topic in self.topics)}]",
            f"summary: {quoted(sentence(rng))}",
        ]
        if self.photo:
            caption, credit = sentence(rng), f"Ljósmynd/{rng.choice(FIRST_NAMES)} {rng.choice(FATHERS)}son"
            lines += [
                "images:",
                f"  - file: {PHOTO}",
                f"    caption: {quoted(caption)}",
                f"    credit: {quoted(credit)}",
            ]
        if self.kind == "draft":
            lines.append("draft: true")
        lines.append(f"id: {self.id}")
        if self.kind == "broken":
            lines.insert(3, _BREAKAGES[rng.randrange(len(_BREAKAGES))])
        paragraphs = [paragraph(rng) for _ in range(rng.randint(4, 6))]
        paragraphs.append(f"„{rng.choice(QUOTES)},“ segir {author.split()[0]}.")
        paragraphs.append(self.marker)
        return ("\n".join([*lines, "---", ""]) + "\n\n".join(paragraphs) + "\n").encode()


#: Lines that make front matter unreadable YAML, each on its own (checked by `check_breakages`).
_BREAKAGES = (
    'authors: ["Jón Jónsson", ',
    "summary: [óklárað",
    "\ttopics: Eldgos",
    'summary: "gæsalappir sem lokast aldrei',
    "summary: a: b: c",
)


def check_breakages() -> None:
    """Raises if a broken article's front matter can be read after all: then it would test nothing."""
    for number in range(len(_BREAKAGES) * 8):
        text = Article(f"check{number}", "innlent", "x", 1, 0, ("Veður í Grímsey",), True, "broken").render()
        front = text.decode().split("---\n")[1]
        try:
            yaml.safe_load(front)
        except yaml.YAMLError:
            continue
        raise AssertionError(f"this broken front matter is readable YAML:\n{front}")


def write_site(root: Path) -> None:
    """The site's and the sections' settings."""
    site = {"title": "Óreiðufréttir", "description": "Fréttir sem þola áföll.", "language": "is"}
    text = "".join(f"{key}: {quoted(value)}\n" for key, value in site.items())
    write_file(root / "_index.md", f"---\n{text}timezone: Atlantic/Reykjavik\nbase_url: {BASE_URL}\n---\n".encode())
    for slug, title in SECTIONS:
        (root / slug).mkdir()
        write_file(root / slug / "_index.md", f'---\ntitle: {title}\ndescription: "Fréttir: {title}."\n---\n'.encode())


def initial_articles(count: int, newest: int, seed: int) -> list[Article]:
    """`count` public articles, the newest dated `newest`, about 2 minutes apart, no two in the same second."""
    rng = random.Random(seed)
    articles = []
    moment = newest
    for number in range(count):
        section = SECTIONS[number % len(SECTIONS)][0]
        topics = tuple(rng.sample(TOPICS, rng.randint(1, 3)))
        slug = f"frett-{number:05d}"
        articles.append(Article(f"chaos{number:06d}", section, slug, 1, moment, topics, rng.random() < 0.25))
        moment -= rng.randint(30, 200)
    return articles


def photo_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (40, 90, 150)).save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


def write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def write_bundle(folder: Path, article: Article, photo: bytes) -> None:
    """A whole bundle in `folder`, the photo first so that the article never names a missing file."""
    folder.mkdir()
    if article.photo:
        write_file(folder / PHOTO, photo)
    write_file(folder / ARTICLE_FILE, article.render())


def age(root: Path, seconds: float) -> None:
    """Dates every file and folder `seconds` back: content that was there before the service started."""
    then = datetime.now(UTC).timestamp() - seconds
    for folder, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(folder, name), (then, then))
        os.utime(folder, (then, then))


@dataclass(frozen=True, slots=True)
class OnDisk:
    """What one article file says, read back from the disk."""

    id: str
    path: str
    version: int
    published: int
    topics: tuple[str, ...]
    kind: Kind


def read_disk(root: Path) -> dict[str, OnDisk]:
    """Every article bundle as the files say now, by id; unreadable ones are `broken` under their folder name."""
    found: dict[str, OnDisk] = {}
    for section, _ in SECTIONS:
        for entry in sorted(os.scandir(root / section), key=lambda entry: entry.name):
            if entry.name.startswith((".", "_")) or not entry.is_dir():
                continue
            path = f"{section}/{entry.name}"
            text = (root / path / ARTICLE_FILE).read_text(encoding="utf-8")
            try:
                meta = yaml.load(text.split("---\n")[1], Loader=yaml.CSafeLoader)
            except yaml.YAMLError:
                found[f"broken:{path}"] = OnDisk(f"broken:{path}", path, 0, 0, (), "broken")
                continue
            version = VERSION_IN_TITLE.search(meta["title"])
            published = int(datetime.fromisoformat(meta["date"].replace("Z", "+00:00")).timestamp())
            found[meta["id"]] = OnDisk(
                meta["id"],
                path,
                int(version[1]) if version else 0,
                published,
                tuple(meta["topics"]),
                "draft" if meta.get("draft") else "public",
            )
    return found
