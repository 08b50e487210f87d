"""Archive periods (RFC 5005): a month per document, or finer where a month is too busy for one.

A scope's archive is cut into periods that never overlap: a month holds one document if it has
at most `limit` public articles; a busier month is cut into its days, and a day busier still into
its hours. Every public article is thus in exactly one period, and no document but an hour's
holds more than `limit`. The cut depends only on how many articles each month and day holds, so
a complete period's document stays as it is until one of its articles changes (or a month
becomes busy enough to be cut, which only the month in progress normally does).

Periods are named as archive URLs name them, in the newsroom's timezone: "2023-09",
"2023-09-17" and "2023-09-17T14".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from .dates import FIRST_YEAR, ICELANDIC_MONTHS, LAST_YEAR

MONTH, DAY, HOUR = 0, 1, 2
_NAME = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])(?:-([0-3][0-9])(?:T([0-2][0-9]))?)?$")

#: How many public articles a scope has published from `start` up to (not including) `end`.
Counter = Callable[[datetime, datetime], int]


@dataclass(frozen=True, slots=True)
class Period:
    """A month, a day or an hour, in the newsroom's timezone."""

    year: int
    month: int
    day: int | None = None
    hour: int | None = None

    @property
    def level(self) -> int:
        return MONTH if self.day is None else DAY if self.hour is None else HOUR

    @property
    def name(self) -> str:
        """As archive URLs name it: "2023-09", "2023-09-17" or "2023-09-17T14"."""
        text = f"{self.year:04d}-{self.month:02d}"
        if self.day is not None:
            text += f"-{self.day:02d}"
        if self.hour is not None:
            text += f"T{self.hour:02d}"
        return text

    def label(self) -> str:
        """The newsroom's way: "september 2023", "17. september 2023", "17. september 2023 kl. 14"."""
        month = f"{tuple(ICELANDIC_MONTHS)[self.month - 1]} {self.year}"
        if self.day is None:
            return month
        return f"{self.day}. {month}" + ("" if self.hour is None else f" kl. {self.hour:02d}")

    def span(self, zone: tzinfo) -> tuple[datetime, datetime]:
        """When it begins and when the next one of its kind begins, as aware UTC datetimes."""
        if self.day is None:
            year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
            start = datetime(self.year, self.month, 1, tzinfo=zone)
            return start.astimezone(UTC), datetime(year, month, 1, tzinfo=zone).astimezone(UTC)
        if self.hour is None:
            start = datetime(self.year, self.month, self.day, tzinfo=zone)
            # A day is midnight to midnight on the wall clock, whatever a change of clocks does.
            tomorrow = datetime.combine(start.date() + timedelta(days=1), start.time(), zone)
            return start.astimezone(UTC), tomorrow.astimezone(UTC)
        hour = datetime(self.year, self.month, self.day, self.hour, tzinfo=zone).astimezone(UTC)
        return hour, hour + timedelta(hours=1)

    def finer(self, zone: tzinfo) -> Iterator[Period]:
        """Its days, or a day's hours, in order."""
        start, end = self.span(zone)
        if self.day is None:
            day = start.astimezone(zone).date()
            while datetime.combine(day, datetime.min.time(), zone).astimezone(UTC) < end:
                yield Period(day.year, day.month, day.day)
                day += timedelta(days=1)
        elif self.hour is None:
            for hour in range(24):
                yield Period(self.year, self.month, self.day, hour)

    def parent(self) -> Period | None:
        if self.day is None:
            return None
        return Period(self.year, self.month) if self.hour is None else Period(self.year, self.month, self.day)


def parse(name: str) -> Period:
    """The period an archive URL names; raises ValueError for one that names none."""
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a period like 2023-09, 2023-09-17 or 2023-09-17T14")
    year, month = int(match[1]), int(match[2])
    if not FIRST_YEAR <= year <= LAST_YEAR:  # no article is dated there, and its end cannot be told
        raise ValueError(f"{name!r} is outside the years {FIRST_YEAR} to {LAST_YEAR}")
    day = None if match[3] is None else int(match[3])
    hour = None if match[4] is None else int(match[4])
    try:
        datetime(year, month, day or 1, hour or 0)
    except ValueError:
        raise ValueError(f"{name!r} names no day") from None
    return Period(year, month, day, hour)


def containing(moment: datetime, level: int, zone: tzinfo) -> Period:
    local = moment.astimezone(zone)
    if level == MONTH:
        return Period(local.year, local.month)
    if level == DAY:
        return Period(local.year, local.month, local.day)
    return Period(local.year, local.month, local.day, local.hour)


class Plan:
    """How one scope's archive is cut, as it stands now; counts are asked once each."""

    def __init__(self, count: Counter, zone: tzinfo, limit: int) -> None:
        self.zone = zone
        self.limit = limit
        self._count = count
        self._counts: dict[Period, int] = {}

    def count(self, period: Period) -> int:
        found = self._counts.get(period)
        if found is None:
            found = self._counts[period] = self._count(*period.span(self.zone))
        return found

    def period_of(self, moment: datetime) -> Period:
        """The period whose document holds an article published at `moment`."""
        period = containing(moment, MONTH, self.zone)
        while period.level < HOUR and self.count(period) > self.limit:
            period = containing(moment, period.level + 1, self.zone)
        return period

    def holds(self, period: Period) -> bool:
        """Whether the period has a document: it has articles, and is the one its articles' dates name."""
        parent = period.parent()
        if parent is not None and self.count(parent) <= self.limit:
            return False  # its month (or day) is one document
        if period.level < HOUR and self.count(period) > self.limit:
            return False  # cut finer
        return self.count(period) > 0

    def within(self, month: Period) -> list[Period]:
        """The periods with documents inside a month, in order."""
        if self.count(month) <= self.limit:
            return [month] if self.count(month) else []
        found: list[Period] = []
        for day in month.finer(self.zone):
            if self.count(day) > self.limit:
                found += [hour for hour in day.finer(self.zone) if self.count(hour)]
            elif self.count(day):
                found.append(day)
        return found
