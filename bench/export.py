"""`python -m bench.export [--articles N]`: the static export against Hugo's cold build of the same bundles,
an edit re-exported, and nginx serving the export against nginx serving a static file."""

# ruff: noqa: S108, S603 - /tmp by default, as the other benchmarks; cp from PATH
from __future__ import annotations

import argparse
import gzip
import os
import re
import resource
import secrets
import shutil
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from feeds.render_cache import gzip_body

from . import corpus, load, servers
from .report import Findings

#: Feeds whose serving is compared: the site's (its newest 50 and the rest of the period the
#: oldest of them is in), and a section's.
FEEDS = ("/feeds/rss.xml", "/feeds/innlent/rss.xml")
HUGO_BINARY = "hugo"
#: This machine's ext4 has no journal, and without one ext4 passes over inodes freed in the last
#: minute when it makes new ones: right after the last run's 1.1 million files are removed, making
#: a file costs about seven times the kernel time (218 µs against 29, measured by hand). The cold
#: export waits this long after the removal, so that it is not charged for it, and neither is Hugo.
SETTLE_AFTER_REMOVAL = 90.0
#: A fair, minimal Hugo site over the same page bundles: a page per article (with its photos, which
#: Hugo then publishes), a list and an RSS feed (full text, newest 50) per section and for the site.
HUGO_CONFIG = """\
baseURL = "{base_url}/"
languageCode = "is"
title = "Fréttavefurinn"
contentDir = "{content}"
disableKinds = ["taxonomy", "term"]
ignoreFiles = ['(^|/){photos}/', '\\.bench-corpus\\.json$']
[outputs]
home = ["HTML", "RSS"]
section = ["HTML", "RSS"]
page = ["HTML"]
[services.rss]
limit = 50
"""
HUGO_LAYOUTS = {
    "single.html": """\
<!doctype html><html lang="is"><head><meta charset="utf-8"><title>{{ .Title }} – {{ .Site.Title }}</title></head>
<body><article><h1>{{ .Title }}</h1><p><time datetime="{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}">\
{{ .Date.Format "2. January 2006" }}</time> · {{ delimit (.Params.authors | default slice) ", " }}</p>
{{ range .Resources.ByType "image" }}<figure><img src="{{ .RelPermalink }}" width="{{ .Width }}" \
height="{{ .Height }}" alt=""></figure>{{ end }}
{{ .Content }}</article></body></html>
""",
    "list.html": """\
<!doctype html><html lang="is"><head><meta charset="utf-8"><title>{{ .Title }}</title>
{{ with .OutputFormats.Get "rss" }}<link rel="alternate" type="application/rss+xml" href="{{ .Permalink }}">{{ end }}\
</head><body><h1>{{ .Title }}</h1><ul>{{ range first 50 .RegularPagesRecursive.ByDate.Reverse }}\
<li><a href="{{ .RelPermalink }}">{{ .Title }}</a> {{ .Params.summary }}</li>{{ end }}</ul></body></html>
""",
    "rss.xml": """\
{{- printf "<?xml version=\\"1.0\\" encoding=\\"utf-8\\"?>" | safeHTML }}
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>\
<title>{{ .Title }} – {{ .Site.Title }}</title><link>{{ .Permalink }}</link><description>{{ .Title }}</description>\
<language>is</language>
{{ range first 50 .RegularPagesRecursive.ByDate.Reverse }}<item><title>{{ .Title }}</title>\
<link>{{ .Permalink }}</link><guid isPermaLink="false">{{ .Params.id }}</guid>\
<pubDate>{{ .Date.Format "Mon, 02 Jan 2006 15:04:05 -0700" }}</pubDate><description>{{ .Params.summary }}</description>\
<content:encoded>{{ .Content | html }}</content:encoded>{{ range .Resources.ByType "image" }}\
<enclosure url="{{ .Permalink }}" type="{{ .MediaType }}" length="0"/>{{ end }}</item>
{{ end }}</channel></rss>
""",
}


def run(work: Path, articles: int, seconds: int = 5) -> Findings:
    """Every measurement on a corpus of `articles` under `work` (made if missing, and kept); stops
    everything it started."""
    label = f"{articles // 1000}k" if articles >= 1000 else str(articles)
    results = Findings(
        f"Static export ({label} corpus)",
        "`python -m bench.export` (bench/export.py); one run, on this machine.",
        label,
    )
    content, reused = corpus.ensure(work / f"corpus-{label}", articles)
    print(f"corpus {label}: {'reused' if reused else 'generated'} ({content})", flush=True)
    run_dir = work / f"export-{label}"
    shutil.rmtree(run_dir, ignore_errors=True)
    removed = time.monotonic()
    env = servers.service_env(content, run_dir / "cache")
    outdir = run_dir / "public"
    try:
        started = time.perf_counter()
        _flask(["index"], env, timeout=1800)
        results.add("index build (fresh cache dir), before the export", f"{time.perf_counter() - started:.1f} s")
        time.sleep(max(0.0, removed + SETTLE_AFTER_REMOVAL - time.monotonic()))
        cold = _timed_export(outdir, env, results, "export, cold (empty OUTDIR, no manifest)")
        _timed_export(outdir, env, results, "export again, nothing changed")
        # Before Hugo, and kept until the next run, so that no build here follows the removal of
        # its files (SETTLE_AFTER_REMOVAL).
        copied, copying_cpu = _copy_floor(outdir, run_dir / "copy", results)
        packing_cpu = _gzip_floor(outdir, results)
        hugo = _hugo(content, run_dir / "hugo", results)
        if hugo is not None:
            results.add("export cold / Hugo cold", f"{cold / hugo:.2f}×", "target ≤ 0.5×")
            results.add("copying OUTDIR / Hugo cold", f"{copied / hugo:.2f}×", "a floor: the files alone")
            cores = os.cpu_count() or 1
            least = (copying_cpu + packing_cpu) / cores
            detail = f"a floor: {copying_cpu + packing_cpu:.0f} CPU-s over {cores} cores is {least:.1f} s at the least"
            results.add("(copying + gzip CPU) / cores / Hugo cold", f"{least / hugo:.2f}×", detail)
        bundle = corpus.newest_bundle(content)
        _after_edits(content, bundle, outdir, env, run_dir, results)
        _watch(content, bundle, outdir, env, run_dir, results)
        _serving(outdir, run_dir, seconds, results)
        size = sum(path.stat().st_size for path in outdir.rglob("*") if path.is_file())
        count = sum(1 for path in outdir.rglob("*") if path.is_file())
        results.add("OUTDIR", f"{count:,} files", f"{size / 2**30:.2f} GiB (photos hard-linked where they can be)")
    finally:
        servers.stop_all()
    return results


def _flask(arguments: list[str], env: dict[str, str], timeout: float) -> str:
    done = servers.run([str(servers.BIN / "flask"), "--app", "app", *arguments], env=env, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(arguments)} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def _export_once(outdir: Path, env: dict[str, str]) -> tuple[float, str]:
    """The wall time of one `flask export`, and its report."""
    started = time.perf_counter()
    said = _flask(["export", str(outdir)], env, timeout=3600)
    took = time.perf_counter() - started
    report = re.search(r": (\d+ files: .*)$", said)
    return took, report[1] if report else said


def _children_cpu() -> tuple[float, float]:
    """User and system CPU seconds of every ended child process so far (theirs included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def _cpu_spent(before: tuple[float, float]) -> tuple[float, float]:
    """User and system CPU seconds of the child processes ended since `before` (_children_cpu)."""
    user, system = (now - then for now, then in zip(_children_cpu(), before, strict=True))
    return user, system


def _cpu_since(before: tuple[float, float]) -> str:
    user, system = _cpu_spent(before)
    return f"{user:.0f} user + {system:.0f} system CPU-s"


def _timed_export(outdir: Path, env: dict[str, str], results: Findings, what: str) -> float:
    cpu = _children_cpu()
    took, report = _export_once(outdir, env)
    results.add(what, f"{took:.2f} s", f"`{report}`; wall time of the command; {_cpu_since(cpu)}")
    return took


def _after_edits(content: Path, bundle: Path, outdir: Path, env: dict[str, str], run_dir: Path, res: Findings) -> None:
    """A one-off export after one edit: five times with the service's indexer running (as `make
    run` has it), which has the edit in the index a moment after the save, and once without one,
    when the export first brings the index up to date itself (a look at every bundle)."""
    page = outdir / bundle.relative_to(content) / "index.html"
    indexer = servers.start(
        "index --watch", 0, [str(servers.BIN / "flask"), "--app", "app", "index", "--watch"], env, run_dir / "index.log"
    )
    try:
        if indexer.wait_idle(600, interval=1.0, share=0.05) is None:
            res.notes.append("index --watch never went quiet after its start")
        times: list[float] = []
        for _ in range(5):
            token = _edit(bundle)
            time.sleep(1.0)  # the indexer has it within tens of milliseconds (BENCHMARKS.md, save → visible)
            took, report = _export_once(outdir, env)
            times.append(took)
            if token not in page.read_text(encoding="utf-8"):
                res.notes.append("the edit was not in the exported page after a one-off run")
        each = ", ".join(f"{value:.2f}" for value in times)
        res.add(
            "export after one edit, the indexer running (median of 5)",
            f"{sorted(times)[2]:.2f} s",
            f"each: {each} s; the last: `{report}`; wall time of the command; target ≤ 1 s",
        )
    finally:
        indexer.stop()
    token = _edit(bundle)
    _timed_export(outdir, env, res, "export after one edit, no indexer running (the export syncs the index first)")
    if token not in page.read_text(encoding="utf-8"):
        res.notes.append("the edit was not in the exported page after a one-off run")


def _edit(bundle: Path) -> str:
    """Gives the article a new title, saved as editors' tools do (a new file renamed into place)."""
    token = f"Breytt fyrirsögn {secrets.token_hex(4)}"
    path = bundle / "index.md"
    text = re.sub(r"^title: .*$", f'title: "{token}"', path.read_text(encoding="utf-8"), count=1, flags=re.M)
    temporary = path.with_name(".index.md.bench-tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return token


def _watch(content: Path, bundle: Path, outdir: Path, env: dict[str, str], run_dir: Path, res: Findings) -> None:
    """`export --watch` as the indexer: save → the article page, the site's feed and its month's
    archive document (the largest document an edit touches) written, with their .gz."""
    log = run_dir / "watch.log"
    command = [str(servers.BIN / "flask"), "--app", "app", "export", str(outdir), "--watch"]
    watcher = servers.start("export --watch", 0, command, env, log)
    deadline = time.monotonic() + 1800
    while b"exporting every change" not in log.read_bytes():
        if watcher.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"export --watch did not start:\n{watcher.log_tail()}")
        time.sleep(0.2)
    # The watch loop's first pass over the content, and the announcer's first look at every
    # article (seconds at 100k): an edit made meanwhile would time the start, not the edit.
    if watcher.wait_idle(600, interval=1.0, share=0.05) is None:
        res.notes.append("export --watch never went quiet after its start")
    page = outdir / bundle.relative_to(content) / "index.html"
    # A month, or a day or an hour of a busy one (feeds.periods).
    previous = re.search(rb"/feeds/archive/(\d{4}-\d{2}[-\dT]*)/rss\.xml", (outdir / "feeds" / "rss.xml").read_bytes())
    newest = re.search(r'date: "(\d{4}-\d{2})', (bundle / "index.md").read_text(encoding="utf-8"))
    archive = outdir / "feeds" / "archive" / (newest[1] if newest else "") / "feed.json.gz"
    times: dict[str, list[float]] = {"page": [], "site feed": [], "archive month": []}
    for _ in range(5):
        token = _edit(bundle)
        saved = time.perf_counter()
        pending = {"page": (page, False), "site feed": (outdir / "feeds" / "rss.xml.gz", True),
                   "archive month": (archive, True)}  # fmt: skip
        while pending and time.perf_counter() - saved < 30:
            for what, (path, packed) in list(pending.items()):
                try:
                    data = gzip.decompress(path.read_bytes()) if packed else path.read_bytes()
                except (OSError, EOFError):
                    continue
                if token.encode() in data:
                    times[what].append((time.perf_counter() - saved) * 1e3)
                    del pending[what]
            time.sleep(0.005)
        if pending:
            res.notes.append(f"--watch: not exported within 30 s: {', '.join(pending)}")
        time.sleep(1)
    watcher.stop()
    for what, found in times.items():
        each = ", ".join(f"{value:.0f}" for value in found)
        value = f"{sorted(found)[len(found) // 2]:.0f} ms" if found else "—"
        res.add(f"--watch: save → {what} exported (median of 5)", value, f"each: {each} ms; target ≤ 1 s")
    if previous is None:
        res.notes.append("the site feed names no archive document")


def _copy_floor(outdir: Path, copy: Path, results: Findings) -> tuple[float, float]:
    """The wall time and the CPU seconds of copying the finished OUTDIR with `cp`, one process per
    core: the making of the same files with the same bytes, without rendering, gzip or a
    manifest. Photos that the export linked are linked again (each is copied once), so no export
    that writes these files on this machine can be faster.

    It runs minutes after the last mass removal (SETTLE_AFTER_REMOVAL), and the copy stays until
    the next run, so that nothing after it here pays for its removal."""
    entries = list(outdir.iterdir())
    files = {entry: sum(1 for _ in entry.rglob("*")) if entry.is_dir() else 1 for entry in entries}
    shares: list[list[Path]] = [[] for _ in range(os.cpu_count() or 1)]
    for entry in sorted(entries, key=files.__getitem__, reverse=True):
        min(shares, key=lambda share: sum(map(files.__getitem__, share))).append(entry)
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir(parents=True)
    cpu = _children_cpu()
    started = time.perf_counter()
    command = ["cp", "-r", "--preserve=links"]
    copying = [subprocess.Popen([*command, *map(str, share), str(copy)]) for share in shares if share]
    failed = [process.args for process in copying if process.wait() != 0]
    took = time.perf_counter() - started
    if failed:
        raise RuntimeError(f"copying OUTDIR failed: {failed}")
    spent = _cpu_spent(cpu)
    copied = sum(1 for path in copy.rglob("*") if path.is_file())
    detail = f"{copied:,} files by {len(copying)} `cp` at once, no rendering, no gzip; {_cpu_since(cpu)}"
    results.add("copying the finished OUTDIR (a floor)", f"{took:.2f} s", detail)
    return took, sum(spent)


def _gzip_floor(outdir: Path, results: Findings) -> float:
    """The CPU seconds of making every .gz of OUTDIR again from its text file, by the export's
    own `gzip_body`, in a process per core. Reading the text back costs more than having it in
    memory, as the export does, so this is a floor too."""
    texts = [str(path)[: -len(".gz")] for path in outdir.rglob("*.gz")]
    cpu = _children_cpu()
    started = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        sizes = list(pool.map(_gzip_size, texts, chunksize=256))
    took = time.perf_counter() - started
    spent = _cpu_spent(cpu)
    detail = f"{len(texts):,} files, {sum(sizes) / 1e9:.2f} GB of text; {_cpu_since(cpu)}"
    results.add("gzip of the text files, a process per core (a floor)", f"{took:.2f} s", detail)
    return sum(spent)


def _gzip_size(path: str) -> int:
    body = Path(path).read_bytes()
    gzip_body(body)
    return len(body)


def _hugo(content: Path, site: Path, results: Findings) -> float | None:
    binary = shutil.which(HUGO_BINARY)
    if binary is None:
        results.notes.append("hugo is not installed (Debian: apt-get install hugo): no comparison")
        return None
    shutil.rmtree(site, ignore_errors=True)
    (site / "layouts" / "_default").mkdir(parents=True)
    config = HUGO_CONFIG.format(base_url=servers.BASE_URL, content=content, photos=corpus.PHOTO_DIR)
    (site / "hugo.toml").write_text(config, encoding="utf-8")
    for name, text in HUGO_LAYOUTS.items():
        (site / "layouts" / "_default" / name).write_text(text, encoding="utf-8")
    version = servers.run([binary, "version"]).stdout.strip().split(" ")[0:2]
    cpu = _children_cpu()
    started = time.perf_counter()
    done = servers.run([binary, "--quiet", "-s", str(site), "-d", str(site / "public")], timeout=3600)
    took = time.perf_counter() - started
    spent = _cpu_since(cpu)
    if done.returncode != 0:
        results.notes.append(f"hugo failed: {done.stderr[-500:]}")
        return None
    files = sum(1 for path in (site / "public").rglob("*") if path.is_file())
    made = f"{files:,} files: a page per article with its photos, a list and RSS per section"
    detail = f"{' '.join(version)}; {made}; {spent}"
    results.add("Hugo cold build of the same bundles", f"{took:.2f} s", detail)
    shutil.rmtree(site / "public", ignore_errors=True)
    return took


def _serving(outdir: Path, run_dir: Path, seconds: int, results: Findings) -> None:
    """nginx with deploy/nginx/static.conf on OUTDIR, against servers.start_nginx on one copied file."""
    if not Path(load.wrk_binary()).exists():
        results.notes.append("wrk is not installed (apt-get install wrk): no throughput")
        return
    port = servers.free_port()
    conf = (servers.REPO / "deploy" / "nginx" / "static.conf").read_text()
    conf = conf.replace("@OUTDIR@", str(outdir)).replace("@LISTEN@", f"{servers.HOST}:{port}")
    for folder in (outdir, *outdir.parents):  # nginx's workers may run as nobody
        if folder == Path("/") or folder.name == "tmp":
            break
        folder.chmod(folder.stat().st_mode | 0o755)
    exported = servers.start_nginx_with("nginx on OUTDIR", port, run_dir / "nginx-export", conf)
    exported.wait_ready(FEEDS[0], 30)
    docroot = run_dir / "nginx-static" / "www"
    for path in FEEDS:
        (docroot / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(outdir / path.lstrip("/"), docroot / path.lstrip("/"))
        shutil.copyfile(outdir / f"{path.lstrip('/')}.gz", docroot / f"{path.lstrip('/')}.gz")
    static = servers.start_nginx(docroot, run_dir / "nginx-static" / "prefix")
    static.wait_ready(FEEDS[0], 30)
    for path in FEEDS:
        for request, headers in (("200", {}), ("200 gzip", {"Accept-Encoding": "gzip"})):
            rates = []
            for server in (exported, static):
                load.wrk(server.url(path), 1, headers)
                rates.append(load.wrk(server.url(path), seconds, headers).requests_per_second)
            size = len(load.probe(exported.url(path), headers).body)
            results.add(
                f"nginx on OUTDIR vs nginx static, {path} {request}",
                f"{rates[0] / rates[1]:.2f}×",
                f"{rates[0]:,.0f} vs {rates[1]:,.0f} req/s, {size:,} B; target ≈ 1×",
            )
    servers.stop_all()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("FEEDS_BENCH_DIR", "/tmp/feeds-bench")))
    parser.add_argument("--seconds", type=int, default=5, help="each wrk run")
    parser.add_argument("--output", type=Path, help="default: bench/out/export-<size>.md")
    options = parser.parse_args(argv)
    servers.compile_service()
    run(options.dir.resolve(), options.articles, options.seconds).write(options.output, "export")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
