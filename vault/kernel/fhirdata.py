"""FHIR data types every layer needs, without the FHIR models.

References, dates as half-open microsecond ranges, and instants. The registry of search
parameters, the consent engine, the access log and notifications read and write these;
only ``vault/fhir/`` loads ``fhir.resources``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

__all__ = [
    "MAX_MICROS",
    "MIN_MICROS",
    "format_instant",
    "parse_date_range",
    "split_reference",
]

MIN_MICROS = -(2**62)
MAX_MICROS = 2**62

_REFERENCE = re.compile(r"^(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def split_reference(reference: Any) -> tuple[str, str] | None:
    """``Patient/123`` or ``https://host/fhir/Patient/123`` -> ``("Patient", "123")``."""
    if not isinstance(reference, str):
        return None
    match = _REFERENCE.match(reference)
    if match is None:
        return None
    return match.group(1), match.group(2)


# -- dates -------------------------------------------------------------------------------

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _month_start(year: int, month: int) -> int:
    # The month after December 9999 lies beyond datetime: the range is open there.
    if year > 9999:
        return MAX_MICROS
    return _micros(datetime(year, month, 1, tzinfo=UTC))


def _plus(start: datetime, step: timedelta) -> int:
    try:
        return _micros(start + step)
    except OverflowError:  # the last day or second of 9999
        return MAX_MICROS


def parse_date_range(text: str) -> tuple[int, int]:
    """A FHIR date, dateTime or instant as the half-open range [low, high) it denotes.

    ``2024`` is the whole year, ``2024-03-01`` the whole day, ``2024-03-01T10:00:00Z`` that
    second. Times without a zone (only allowed in search values) are read as UTC.
    """
    match = _DATE.match(text.strip())
    if match is None:
        raise ValueError(f"not a FHIR date: {text!r}")
    parts = match.groupdict()
    year = int(parts["y"])
    try:
        if parts["m"] is None:
            start = datetime(year, 1, 1, tzinfo=UTC)
            return _micros(start), _month_start(year + 1, 1)
        month = int(parts["m"])
        if parts["d"] is None:
            start = datetime(year, month, 1, tzinfo=UTC)
            return _micros(start), _month_start(year + (month == 12), month % 12 + 1)
        day = date(year, month, int(parts["d"]))
        if parts["H"] is None:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return _micros(start), _plus(start, timedelta(days=1))
        tz: timezone = UTC
        if parts["tz"] and parts["tz"] != "Z":
            sign = 1 if parts["tz"][0] == "+" else -1
            hours, minutes = int(parts["tz"][1:3]), int(parts["tz"][4:6])
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        fraction = parts["f"] or ""
        micro = int((fraction + "000000")[:6]) if fraction else 0
        # FHIR's time allows the leap second 60; Python's datetime does not: count it as 59.
        second = 59 if parts["S"] == "60" else int(parts["S"] or 0)
        start = datetime(
            day.year,
            day.month,
            day.day,
            int(parts["H"]),
            int(parts["M"]),
            second,
            micro,
            tzinfo=tz,
        )
    except ValueError as exc:
        raise ValueError(f"not a valid date: {text!r}") from exc
    if parts["S"] is None:
        step = timedelta(minutes=1)
    elif fraction:
        step = timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
    else:
        step = timedelta(seconds=1)
    return _micros(start), _plus(start, step)


def format_instant(micros: int) -> str:
    """``2026-11-01T10:00:00.123Z``: a FHIR instant in milliseconds, UTC.

    Every access-log record formats two (``recorded``, ``meta.lastUpdated``): the part up
    to the second is kept from the last call, which is nearly always the same second, so
    ``strftime`` runs once a second instead of each time."""
    global _last_second  # one tuple: threads read and replace it whole
    seconds, fraction = divmod(micros, 1_000_000)
    last = _last_second
    if last[0] != seconds:
        moment = _EPOCH + timedelta(seconds=seconds)
        last = (seconds, moment.strftime("%Y-%m-%dT%H:%M:%S."))
        _last_second = last
    return f"{last[1]}{fraction // 1000:03d}Z"


_last_second: tuple[int | None, str] = (None, "")
