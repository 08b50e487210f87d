"""Dates as the newsroom writes them: RFC 3339 or Icelandic ("16. mars 2024 kl. 20.23")."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, tzinfo

from dateutil import parser as dateutil_parser

ICELANDIC_MONTHS = {
    name: number
    for number, name in enumerate(
        (
            "janúar",
            "febrúar",
            "mars",
            "apríl",
            "maí",
            "júní",
            "júlí",
            "ágúst",
            "september",
            "október",
            "nóvember",
            "desember",
        ),
        start=1,
    )
}

_ICELANDIC = re.compile(
    r"^(?P<day>\d{1,2})\.\s*(?P<month>[^\W\d_]+)\.?\s+(?P<year>\d{4})"
    r"(?:\s*,?\s*(?:kl\.?\s*)?(?P<hour>\d{1,2})[.:](?P<minute>\d{2}))?$"
)
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$",
    re.IGNORECASE,
)


#: The years an article may be dated in. Python's dates end at years 1 and 9999, and a date there
#: cannot be moved into another zone or have its month's end found (an archive period).
FIRST_YEAR, LAST_YEAR = 1000, 9998


def parse_date(text: str, zone: tzinfo) -> datetime:
    """An aware UTC datetime; a time written without a zone is read in `zone`.

    Raises ValueError naming what could not be read.
    """
    text = " ".join(text.split())
    try:
        local = _read(text)
    except ValueError as error:
        raise ValueError(f"unreadable date {text!r}: {error}") from None
    if not FIRST_YEAR <= local.year <= LAST_YEAR:
        raise ValueError(f"date {text!r} is out of range: the year must be from {FIRST_YEAR} to {LAST_YEAR}")
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone)
    return local.astimezone(UTC)


def _read(text: str) -> datetime:
    match = _ICELANDIC.match(text)
    if match:
        month = ICELANDIC_MONTHS.get(match["month"].lower())
        if month is None:
            raise ValueError(f"unknown month {match['month']!r}")
        at = time(int(match["hour"] or 0), int(match["minute"] or 0))
        return datetime.combine(date(int(match["year"]), month, int(match["day"])), at)
    if _RFC3339.match(text):
        iso = text.upper().replace(" ", "T")
        try:
            # The standard library's reader is several times quicker and agrees on every form
            # above; dateutil's also takes 24:00 (midnight at the day's end).
            return datetime.fromisoformat(iso)
        except ValueError:
            return dateutil_parser.isoparse(iso)
    raise ValueError("expected RFC 3339 or a form like '16. mars 2024 kl. 20.23'")


def format_icelandic(moment: datetime, zone: tzinfo) -> str:
    """The newsroom's own way of writing a moment: "16. mars 2024 kl. 20.23"."""
    local = moment.astimezone(zone)
    month = tuple(ICELANDIC_MONTHS)[local.month - 1]
    return f"{local.day}. {month} {local.year} kl. {local.hour:02d}.{local.minute:02d}"


def month_of(moment: datetime, zone: tzinfo) -> str:
    """The month a moment falls in, in `zone`, as archives name it: "2023-09"."""
    local = moment.astimezone(zone)
    return f"{local.year:04d}-{local.month:02d}"


def month_span(month: str, zone: tzinfo) -> tuple[datetime, datetime]:
    """When a month ("2023-09") begins and when the next begins, in `zone`, as aware UTC datetimes.

    Raises ValueError for a text that names no month.
    """
    match = re.fullmatch(r"([0-9]{4})-(0[1-9]|1[0-2])", month)
    if match is None:
        raise ValueError(f"{month!r} is not a month like 2023-09")
    year, number = int(match[1]), int(match[2])
    following = (year + 1, 1) if number == 12 else (year, number + 1)
    start = datetime(year, number, 1, tzinfo=zone)
    return start.astimezone(UTC), datetime(*following, 1, tzinfo=zone).astimezone(UTC)


def month_name(month: str) -> str:
    """An archive month the newsroom's way: "september 2023"."""
    year, number = month.split("-")
    return f"{tuple(ICELANDIC_MONTHS)[int(number) - 1]} {year}"
