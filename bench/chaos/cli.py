"""`python -m bench.chaos [--short|--long] [--report PATH] [--json PATH] [--service-root DIR]`.

Exit status: 0 when every acceptance target is met, 1 when one is not, 2 when the run could not
be made (the service never started, for example). With FEEDS_CHAOS_DUMP=DIR, the writer's timeline,
every judged answer (chaos-dump.pickle) and the service's log are kept in DIR for a post-mortem.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from .run import LONG, SHORT, run
from .service import REPO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--short", action="store_true", help="about a minute, 1,500 articles (the default)")
    length.add_argument("--long", action="store_true", help="several minutes, 4,000 articles, longer phases")
    parser.add_argument(
        "--report",
        type=Path,
        help="Markdown report (default: RELIABILITY.md with --long, bench/out/RELIABILITY-short.md otherwise)",
    )
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument(
        "--service-root", type=Path, default=REPO, help="run the service from this checkout (default: this one)"
    )
    options = parser.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    mode = LONG if options.long else SHORT
    try:
        report = run(mode, options.service_root.resolve())
    except (RuntimeError, OSError) as error:
        print(f"the chaos run could not be made: {error}", file=sys.stderr)
        return 2
    print(report.table())
    markdown = options.report or (
        REPO / "RELIABILITY.md" if options.long else REPO / "bench" / "out" / "RELIABILITY-short.md"
    )
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(report.markdown(), encoding="utf-8")
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(report.to_json(), encoding="utf-8")
    print(f"wrote {markdown}" + (f" and {options.json}" if options.json else ""), file=sys.stderr)
    return 0 if report.clean else 1


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`: the service stopped, the tmpfs unmounted
