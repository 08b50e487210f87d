"""A synthetic Icelandic newsroom: N page bundles over 10 sections and 200 topics, 1–3 real photos each.

The photos are six small files hard-linked into every bundle, unless `distinct_photos`: then each
bundle has photos of its own, of a news photo's size (a real archive's, whose every photo file
must be read and checked once).

Deterministic for a given seed; a stamp file records the parameters so that an existing
corpus is reused, and a half-written one is never mistaken for a finished one.
"""

# ruff: noqa: S311 - reproducible text, not secrets
from __future__ import annotations

import errno
import json
import math
import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

#: Bump when the output changes for the same parameters, so that old corpora are regenerated.
GENERATOR_VERSION = 1
STAMP = ".bench-corpus.json"
PHOTO_DIR = "_myndir"  # skipped by the service: folders starting with "_" are not sections
NEWEST = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=17)
CHUNK = 2_000
SEED = 20261129

SECTIONS = (
    ("innlent", "Innlent"),
    ("erlent", "Erlent"),
    ("ithrottir", "Íþróttir"),
    ("menning", "Menning"),
    ("vidskipti", "Viðskipti"),
    ("taekni", "Tækni"),
    ("heilsa", "Heilsa"),
    ("visindi", "Vísindi"),
    ("umhverfi", "Umhverfi"),
    ("skodun", "Skoðun"),
)
SUBJECTS = (
    "Eldgos", "Ferðaþjónusta", "Sjávarútvegur", "Kjaramál", "Skólamál", "Samgöngur", "Húsnæðismál",
    "Heilbrigðismál", "Orkumál", "Knattspyrna", "Handbolti", "Tónlist", "Bókmenntir", "Veður", "Landbúnaður",
    "Löggæsla", "Fjármál", "Náttúruvernd", "Sveitarstjórnir", "Hafrannsóknir",
)  # fmt: skip
REGIONS = (
    "á Vestfjörðum", "á Austurlandi", "á Norðurlandi", "á Suðurlandi", "á Reykjanesi", "í Reykjavík",
    "á Akureyri", "í Vestmannaeyjum", "á Snæfellsnesi", "á Suðurnesjum",
)  # fmt: skip
TOPICS = tuple(f"{subject} {region}" for subject in SUBJECTS for region in REGIONS)  # 200
FIRST_NAMES = (
    "Guðrún", "Jón", "Sigríður", "Ólafur", "Þórunn", "Bjarki", "Ásdís", "Gunnar", "Hildur", "Ævar",
    "Sóley", "Örn", "Ýr", "Þórður", "Björk", "Einar", "Hallgrímur", "Kristín", "Úlfar", "Védís",
)  # fmt: skip
#: Genitives, to which "son" or "dóttir" is added.
FATHERS = ("Þórðar", "Péturs", "Steins", "Jóhanns", "Sigurðar", "Magnús", "Ólafs", "Einars", "Gísla", "Hermanns")
NOUNS = (
    "ríkisstjórnin", "bæjarstjórn", "lögreglan", "veðurstofan", "landsliðið", "fyrirtækið", "sveitarfélagið",
    "ráðherra", "þingmaður", "sérfræðingur", "íbúar", "ferðamenn", "sjómenn", "bændur", "nemendur",
    "hafnarstjórinn", "sóttvarnalæknir", "jarðskjálftinn", "hraunið", "göngin", "brúin", "höfnin", "flugvöllurinn",
    "þjóðvegurinn", "skólinn", "sjúkrahúsið", "kjarasamningurinn", "fjárlögin", "útflutningurinn", "aflinn",
    "íþróttahúsið", "tónleikarnir", "sýningin", "bókin", "kvikmyndin", "rannsóknin", "skýrslan", "áætlunin",
)  # fmt: skip
VERBS = (
    "samþykkti", "hafnaði", "kynnti", "tilkynnti", "staðfesti", "gagnrýndi", "ræddi", "lagði fram", "endurskoðaði",
    "frestaði", "hóf", "lauk", "styrkti", "seldi", "keypti", "opnaði", "lokaði", "vann", "tapaði", "sýndi",
)  # fmt: skip
ADJECTIVES = (
    "nýja", "umdeilda", "mikilvæga", "árlega", "stóra", "óvænta", "þriðja", "síðasta", "fyrsta", "íslenska",
    "sögulega", "dýra", "viðamikla", "brýna", "kyrrláta", "harða", "gríðarlega", "frábæra", "erfiða", "ótrúlega",
)  # fmt: skip
TAILS = (
    "í gær", "í morgun", "á fundi sínum", "eftir langar viðræður", "fyrir helgi", "í kvöld", "á Alþingi",
    "í síðustu viku", "þrátt fyrir mótmæli", "með naumum meirihluta", "að sögn talsmanns", "í fyrsta sinn",
    "í Hörpu", "við Þingvallavatn", "á Ísafirði", "í Hafnarfirði", "á Egilsstöðum", "í Þorlákshöfn",
)  # fmt: skip
QUOTES = (
    "Þetta er mikilvægt skref fyrir okkur öll",
    "Við höfum beðið eftir þessu lengi",
    "Ég átti ekki von á þessari niðurstöðu",
    "Næstu vikur skipta öllu máli",
    "Fólkið hér á það skilið að fá svör",
)
PHOTOS = (  # name, size, colour, format: a handful of distinct real images, hard-linked into bundles
    ("hofn.jpg", (64, 40), (30, 80, 140), "JPEG"),
    ("fjall.jpg", (72, 48), (90, 110, 90), "JPEG"),
    ("gos.jpg", (60, 40), (200, 70, 20), "JPEG"),
    ("borg.png", (48, 32), (150, 150, 160), "PNG"),
    ("jokull.png", (56, 36), (210, 225, 240), "PNG"),
    ("vollur.jpg", (80, 45), (40, 140, 60), "JPEG"),
)


@dataclass(frozen=True, slots=True)
class Parameters:
    articles: int
    sections: int = len(SECTIONS)
    topics: int = len(TOPICS)
    seed: int = SEED
    generator: int = GENERATOR_VERSION
    #: Years the articles' dates spread over, newest last; None: one every STEP (17 minutes).
    years: float | None = None
    #: Whether every bundle has photo files of its own, of a news photo's size (see the module's docstring).
    distinct_photos: bool = False

    def stamp(self) -> dict[str, object]:
        # Without what is not set, so that corpora made before those existed are reused.
        unset = {"years": None, "distinct_photos": False}
        return {key: value for key, value in asdict(self).items() if key not in unset or value != unset[key]}

    @property
    def step(self) -> timedelta:
        return STEP if self.years is None else timedelta(days=365.25 * self.years) / max(1, self.articles - 1)


def ensure(
    root: Path, articles: int, seed: int = SEED, years: float | None = None, distinct_photos: bool = False
) -> tuple[Path, bool]:
    """The corpus at `root`, generated unless an identical one is already there; returns (root, reused).

    `years` spreads the dates evenly over that many years (a national archive); by default
    articles are STEP apart. `distinct_photos`: see the module's docstring."""
    parameters = Parameters(articles=articles, seed=seed, years=years, distinct_photos=distinct_photos)
    stamp = root / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == parameters.stamp():
        return root, True
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _write_site(partial)
    if distinct_photos:
        _write_large_photos(partial / PHOTO_DIR)
    step = parameters.step.total_seconds()
    chunks = [
        (str(partial), start, min(start + CHUNK, articles), articles, seed, step, distinct_photos)
        for start in range(0, articles, CHUNK)
    ]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for _ in pool.map(_write_chunk, chunks):
            pass
    (partial / STAMP).write_text(json.dumps(parameters.stamp()))
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return root, False


def newest_bundle(root: Path) -> Path:
    """The bundle of the newest article, the first item of every feed it is in."""
    return bundle_of(root, json.loads((root / STAMP).read_text())["articles"] - 1)


def bundle_of(root: Path, number: int) -> Path:
    """The bundle of the article `number` (0 is the oldest)."""
    rng = _article_rng(json.loads((root / STAMP).read_text())["seed"], number)
    return root / SECTIONS[rng.randrange(len(SECTIONS))][0] / _slug(number)


def number_published_before(root: Path, age: timedelta) -> int:
    """The newest article published at least `age` before the newest one (0 if none is that old)."""
    stamp = json.loads((root / STAMP).read_text())
    step = Parameters(articles=stamp["articles"], years=stamp.get("years")).step
    return max(0, int(stamp["articles"]) - 1 - math.ceil(age / step) - 1)


def _write_site(root: Path) -> None:
    (root / "_index.md").write_text(
        "---\ntitle: Fréttavefurinn\n"
        'description: "Tilbúnar fréttir til álagsprófana: íslenskur texti með ð, þ, æ og ö."\n'
        "language: is\ntimezone: Atlantic/Reykjavik\nbase_url: https://frettir.example.is\n---\n",
        encoding="utf-8",
    )
    photos = root / PHOTO_DIR
    photos.mkdir()
    for name, size, colour, kind in PHOTOS:
        picture = Image.new("RGB", size, colour)
        draw = ImageDraw.Draw(picture)
        draw.rectangle((size[0] // 4, size[1] // 3, size[0] // 2, size[1] - 4), fill=(250, 250, 240))
        draw.line((0, size[1] - 1, size[0], size[1] // 2), fill=(20, 20, 20), width=2)
        picture.save(photos / name, kind, **({"quality": 70} if kind == "JPEG" else {}))
    for slug, title in SECTIONS:
        (root / slug).mkdir()
        (root / slug / "_index.md").write_text(
            f'---\ntitle: {title}\ndescription: "Fréttir úr flokknum {title}."\n---\n', encoding="utf-8"
        )


#: In a corpus of distinct photos, the size of each: a news photo's width, and one of a gallery's.
LARGE_PHOTO_SIZES = {"JPEG": (1600, 1067), "PNG": (800, 533)}
LARGE_PREFIX = "stor-"


def _write_large_photos(folder: Path) -> None:
    """For each of PHOTOS, one of a news photo's size and detail (about 125 KB as JPEG at quality
    80, 225–300 KB as PNG), from which every bundle's own photo is made (`_own_photo`)."""
    rng = random.Random(SEED)
    for name, _, colour, kind in PHOTOS:
        size = LARGE_PHOTO_SIZES[kind]
        detail = Image.effect_noise(size, 60).filter(ImageFilter.GaussianBlur(2)).convert("RGB")
        tint = Image.new("RGB", size, colour)
        picture = Image.blend(detail, tint, 0.4 + rng.random() / 5)
        options = {"quality": 80} if kind == "JPEG" else {"optimize": False}
        picture.save(folder / f"{LARGE_PREFIX}{name}", kind, **options)


def _own_photo(source: Path, target: Path, number: int, index: int) -> None:
    """The photo with bytes of its own after its end (the image's last marker), where decoders
    stop reading: the same picture, but a file whose digest no other bundle's has."""
    data = source.read_bytes()
    target.write_bytes(data + f"\n{number}:{index}\n".encode())


def _write_chunk(job: tuple[str, int, int, int, int, float, bool]) -> None:
    root_name, start, stop, total, seed, step, distinct_photos = job
    root = Path(root_name)
    for number in range(start, stop):
        rng = _article_rng(seed, number)
        section = SECTIONS[rng.randrange(len(SECTIONS))][0]
        bundle = root / section / _slug(number)
        bundle.mkdir()
        text, photos = _article(rng, number, total, timedelta(seconds=step))
        (bundle / "index.md").write_text(text, encoding="utf-8")
        for index, source in enumerate(photos, start=1):
            target = bundle / f"mynd-{index}{Path(source).suffix}"
            if distinct_photos:
                _own_photo(root / PHOTO_DIR / f"{LARGE_PREFIX}{source}", target, number, index)
            else:
                _link_photo(root / PHOTO_DIR / source, target)


#: Per process: the file each shared photo is linked from now. A file system allows only so many
#: links to one file (65,000 on ext4), which a million articles pass: then a copy of the photo
#: (the same bytes, a new file) is linked from instead.
_link_heads: dict[Path, Path] = {}


def _link_photo(source: Path, target: Path) -> None:
    head = _link_heads.get(source, source)
    try:
        os.link(head, target)
    except OSError as error:
        if error.errno != errno.EMLINK:
            raise
        shutil.copyfile(head, target)
        _link_heads[source] = target


def _article_rng(seed: int, number: int) -> random.Random:
    return random.Random(f"{seed}:{number}")


def _slug(number: int) -> str:
    return f"frett-{number:06d}"


def _article(rng: random.Random, number: int, total: int, step: timedelta = STEP) -> tuple[str, list[str]]:
    jitter = timedelta(seconds=rng.randrange(max(1, int(step.total_seconds()))))
    published = NEWEST - (total - 1 - number) * step + jitter
    photos = rng.sample([name for name, *_ in PHOTOS], rng.randint(1, 3))
    title = sentence(rng, period=False)
    summary = sentence(rng)
    authors = [f"{rng.choice(FIRST_NAMES)} {rng.choice(FATHERS)}{rng.choice(('son', 'dóttir'))}"]
    authors += [f"{rng.choice(FIRST_NAMES)} {rng.choice(FATHERS)}son" for _ in range(rng.randint(0, 1))]
    topics = rng.sample(TOPICS, rng.randint(1, 3))
    lines = [
        "---",
        f"title: {quoted(title)}",
        f'date: "{published.strftime("%Y-%m-%dT%H:%M:%SZ")}"',
        f"authors: [{', '.join(quoted(author) for author in authors)}]",
        f"topics: [{', '.join(quoted(topic) for topic in topics)}]",
        f"summary: {quoted(summary)}",
        "images:",
    ]
    for index, source in enumerate(photos, start=1):
        lines += [
            f"  - file: mynd-{index}{Path(source).suffix}",
            f"    caption: {quoted(sentence(rng))}",
            f"    credit: {quoted('Ljósmynd/' + rng.choice(FIRST_NAMES) + ' ' + rng.choice(FATHERS) + 'son')}",
            f"    alt: {quoted(sentence(rng, period=False))}",
        ]
    lines += [f"id: bench-{number:06d}", "---", ""]
    paragraphs = [paragraph(rng) for _ in range(rng.randint(3, 6))]
    if len(photos) > 1:
        paragraphs.insert(2, f"![{sentence(rng, period=False)}](mynd-2{Path(photos[1]).suffix})")
    paragraphs.insert(len(paragraphs) // 2 + 1, f"## {sentence(rng, period=False)}")
    paragraphs.append(f"„{rng.choice(QUOTES)},“ segir {authors[0].split()[0]} í samtali við fréttastofuna.")
    return "\n".join(lines) + "\n\n".join(paragraphs) + "\n", photos


def sentence(rng: random.Random, period: bool = True) -> str:
    words = [rng.choice(NOUNS), rng.choice(VERBS), rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(TAILS)]
    text = " ".join(words)
    return text[0].upper() + text[1:] + ("." if period else "")


def paragraph(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(3, 6)))


def quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar
