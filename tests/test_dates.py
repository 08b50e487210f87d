"""Dates as the newsroom writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from feeds.dates import format_icelandic, parse_date

REYKJAVIK = ZoneInfo("Atlantic/Reykjavik")
OSLO = ZoneInfo("Europe/Oslo")


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("17. september 2023", REYKJAVIK, datetime(2023, 9, 17, tzinfo=UTC)),
        ("16. mars 2024 kl. 20.23", REYKJAVIK, datetime(2024, 3, 16, 20, 23, tzinfo=UTC)),
        ("16. mars 2024 kl. 20:23", REYKJAVIK, datetime(2024, 3, 16, 20, 23, tzinfo=UTC)),
        ("1. ágúst 2025", REYKJAVIK, datetime(2025, 8, 1, tzinfo=UTC)),
        ("3. Nóvember 2026 kl. 9.05", REYKJAVIK, datetime(2026, 11, 3, 9, 5, tzinfo=UTC)),
        ("16. mars 2024 kl. 20.23", OSLO, datetime(2024, 3, 16, 19, 23, tzinfo=UTC)),
        ("16. júlí 2024 kl. 20.23", OSLO, datetime(2024, 7, 16, 18, 23, tzinfo=UTC)),
        ("2024-03-16T20:23:00Z", OSLO, datetime(2024, 3, 16, 20, 23, tzinfo=UTC)),
        ("2024-03-16T20:23:00+02:00", REYKJAVIK, datetime(2024, 3, 16, 18, 23, tzinfo=UTC)),
        ("2024-03-16T20:23:00.5-01:00", REYKJAVIK, datetime(2024, 3, 16, 21, 23, 0, 500000, tzinfo=UTC)),
        ("2024-03-16t20:23:00z", REYKJAVIK, datetime(2024, 3, 16, 20, 23, tzinfo=UTC)),
        ("2024-03-16T20:23", OSLO, datetime(2024, 3, 16, 19, 23, tzinfo=UTC)),
        ("2024-03-16", OSLO, datetime(2024, 3, 15, 23, 0, tzinfo=UTC)),
    ],
)
def test_readable_dates(text: str, zone: ZoneInfo, expected: datetime) -> None:
    assert parse_date(text, zone) == expected
    assert parse_date(text, zone).tzinfo == UTC


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("32. mars 2024", "day is out of range"),
        ("17. septembre 2023", "unknown month 'septembre'"),
        ("16. mars 2024 kl. 25.00", "hour must be in 0..23"),
        ("í gær", "expected RFC 3339"),
        ("2024-02-30T10:00:00Z", "day is out of range"),
        ("16/03/2024", "expected RFC 3339"),
        ("", "expected RFC 3339"),
    ],
)
def test_unreadable_dates_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_date(text, REYKJAVIK)


def test_format_icelandic_writes_the_newsroom_form() -> None:
    assert format_icelandic(datetime(2024, 3, 16, 20, 23, tzinfo=UTC), REYKJAVIK) == "16. mars 2024 kl. 20.23"
    assert format_icelandic(datetime(2024, 7, 16, 18, 5, tzinfo=UTC), OSLO) == "16. júlí 2024 kl. 20.05"


def test_every_rfc_3339_form_reads_as_dateutil_reads_it() -> None:
    """The standard library reads most of them (it is quicker); dateutil the rest, such as 24:00."""
    from dateutil.parser import isoparse

    for day in ("2023-09-17", "2000-02-29", "1999-12-31"):
        for clock in ("", "T00:00", " 23:59", "T12:30:45", "T12:30:45.1", "T12:30:45.123456789", "T24:00",
                      "T24:00:00", "t23:59:60"):  # fmt: skip
            for zone in ("", "Z", "z", "+00:00", "+0000", "-05:30", "-0930", "+14:00"):
                text = f"{day}{clock}{zone if clock else ''}"
                try:
                    expected = isoparse(text.upper().replace(" ", "T"))
                except ValueError:
                    with pytest.raises(ValueError, match="unreadable date"):
                        parse_date(text, REYKJAVIK)
                    continue
                if expected.tzinfo is None:
                    expected = expected.replace(tzinfo=REYKJAVIK)
                assert parse_date(text, REYKJAVIK) == expected.astimezone(UTC), text
