"""The chaos and fault-injection suite: `python -m bench.chaos [--short|--long] [--report PATH] [--json PATH]`."""

from .cli import main
from .report import Report
from .run import LONG, SHORT, Mode, run

__all__ = ["LONG", "SHORT", "Mode", "Report", "main", "run"]
