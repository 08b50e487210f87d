"""`python -m bench.photos [--articles N]`: a first build where every photo is a file of its own.

The other corpora hard-link six small photo files into every bundle, as the archive issue allows.
A real archive's photos are distinct files of a hundred kilobytes and more, and the indexer reads,
hashes and decodes each distinct file once (a hard link is the same file, so only its first costs).
This times the first build of the same articles both ways, from an emptied page cache, and says
what the difference comes to for a million articles.
"""

# ruff: noqa: S108 - /tmp by default, as the other benchmarks
from __future__ import annotations

import argparse
import os
import resource
import shutil
from pathlib import Path

from . import corpus, inprocess, servers
from .report import Findings

ARTICLES = 10_000
ARCHIVE = 1_000_000


def run(work: Path, articles: int = ARTICLES) -> Findings:
    label = f"{articles // 1000}k" if articles % 1000 == 0 else str(articles)
    findings = Findings(
        f"Photos as a real archive has them ({label} articles)",
        "From `python -m bench.photos`: the first build of the same articles, once with the corpora's six\n"
        "small photos hard-linked into every bundle, once with photos of their own of a news photo's size\n"
        "(JPEG 1600 × 1067, about 125 KB; PNG 800 × 533, about 250 KB). Page cache emptied before each.",
        label,
    )
    linked, _ = corpus.ensure(work / f"corpus-{label}", articles)
    distinct, _ = corpus.ensure(work / f"corpus-{label}-photos", articles, distinct_photos=True)
    photos, size = _photos(distinct)
    builds = {}
    for name, content in (("hard-linked", linked), ("of their own", distinct)):
        cache = work / "run-photos" / "cache"
        shutil.rmtree(cache.parent, ignore_errors=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        built = inprocess.time_index(content, cache, timeout=3600, cold=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        builds[name] = (built.wall_s, cpu)
        cold = "" if built.cold else " (the page cache could not be emptied)"
        findings.add(f"first build, photos {name}{cold}", f"{built.wall_s:.1f} s", f"{cpu:.0f} CPU-s; `{built.output}`")
    shutil.rmtree(work / "run-photos", ignore_errors=True)
    wall = builds["of their own"][0] - builds["hard-linked"][0]
    cpu = builds["of their own"][1] - builds["hard-linked"][1]
    findings.add("photos of their own", f"{photos:,}", f"{size / 2**30:.2f} GiB")
    each = f"{wall / photos * 1e3:.2f} ms of wall time on both cores"
    findings.add("cost of each", f"{cpu / photos * 1e3:.2f} CPU-ms", each)
    scale = ARCHIVE / articles
    findings.add(
        f"the same at {ARCHIVE:,} articles",
        f"+{wall * scale / 60:.0f} min",
        f"{cpu * scale:,.0f} CPU-s more than with hard-linked photos, for about {photos * scale:,.0f} photos",
    )
    return findings


def _photos(root: Path) -> tuple[int, int]:
    """How many photo files the bundles hold, and their bytes."""
    count = size = 0
    for section in root.iterdir():
        if not section.is_dir() or section.name.startswith(("_", ".")):
            continue
        for bundle in section.iterdir():
            for file in bundle.iterdir() if bundle.is_dir() else ():
                if file.name.startswith("mynd-"):
                    count += 1
                    size += file.stat().st_size
    return count, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.photos", description=__doc__)
    parser.add_argument("--articles", type=int, default=ARTICLES)
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("FEEDS_BENCH_DIR", "/tmp/feeds-bench")))
    parser.add_argument("--output", type=Path, help="default: bench/out/photos-<size>.md")
    options = parser.parse_args(argv)
    servers.compile_service()
    run(options.dir.resolve(), options.articles).write(options.output, "photos")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
