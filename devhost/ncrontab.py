"""NCRONTAB schedules as Azure Functions timer triggers understand them.

Six fields: ``second minute hour day month day-of-week``. Each field accepts ``*``, numbers,
ranges ``a-b``, lists ``a,b``, steps ``*/n``, ``a-b/n`` and ``a/n``; months accept ``JAN``..``DEC``
and day-of-week accepts ``SUN``..``SAT`` (0 = Sunday, 7 is rejected as Azure does).

Unlike Vixie cron, NCrontab requires *both* day-of-month and day-of-week to match when both are
restricted (``0 0 0 13 * FRI`` is every Friday the 13th); we follow NCrontab because that is what
runs in Azure. Times are UTC (WEBSITE_TIME_ZONE is not emulated).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MONTHS = [
    "JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE",
    "JULY", "AUGUST", "SEPTEMBER", "OCTOBER", "NOVEMBER", "DECEMBER",
]  # fmt: skip
_DAYS = ["SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY"]


def _names(full_names: list[str], first: int) -> dict[str, int]:
    """Both ``JAN`` and ``JANUARY`` style names, as NCrontab accepts."""
    out = {n: i + first for i, n in enumerate(full_names)}
    out.update({n[:3]: i + first for i, n in enumerate(full_names)})
    return out


# (name, lowest, highest, names mapped to values)
_FIELDS: list[tuple[str, int, int, dict[str, int]]] = [
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _names(_MONTHS, 1)),
    ("day-of-week", 0, 6, _names(_DAYS, 0)),
]

# A schedule that matches nothing in this window never will (leap days recur within 28 years).
_SEARCH_LIMIT = timedelta(days=366 * 29)

_SETTING_REF = re.compile(r"%([^%\s]+)%")


def expand_settings(expression: str, settings: Mapping[str, str]) -> str:
    """Replace ``%NAME%`` with ``settings[NAME]``, as the host resolves app-setting references."""

    def lookup(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in settings:
            raise ValueError(f"schedule {expression!r} references app setting {name!r}, not set")
        return settings[name]

    return _SETTING_REF.sub(lookup, expression)


def _value(text: str, field: tuple[str, int, int, dict[str, int]], expr: str) -> int:
    name, low, high, names = field
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ValueError(f"invalid {name} value {text!r} in NCRONTAB {expr!r}")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name} value {value} out of range {low}-{high} in NCRONTAB {expr!r}")
    return value


def _parse_field(
    text: str, field: tuple[str, int, int, dict[str, int]], expr: str
) -> frozenset[int]:
    name, low, high, _ = field
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"invalid step {step_text!r} in {name} of NCRONTAB {expr!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, field, expr), _value(last, field, expr)
            if start > end:
                raise ValueError(f"descending range {base!r} in {name} of NCRONTAB {expr!r}")
        elif base:
            start = _value(base, field, expr)
            end = high if step_text else start
        else:
            raise ValueError(f"empty {name} field element in NCRONTAB {expr!r}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class NCrontab:
    """A parsed six-field NCRONTAB expression."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]

    @classmethod
    def parse(cls, expression: str, settings: Mapping[str, str] | None = None) -> NCrontab:
        """Parse ``expression`` after expanding ``%SETTING%`` references from ``settings``."""
        expanded = expand_settings(expression, settings or {})
        parts = expanded.split()
        if len(parts) != 6:
            raise ValueError(
                f"NCRONTAB {expanded!r} has {len(parts)} fields; Azure Functions timers need 6: "
                "second minute hour day month day-of-week (e.g. '0 */5 * * * *')"
            )
        fields = [_parse_field(p, f, expanded) for p, f in zip(parts, _FIELDS, strict=True)]
        schedule = cls(expanded, *fields)
        if not any(d <= _max_days(m) for m in schedule.months for d in schedule.days):
            raise ValueError(f"NCRONTAB {expanded!r} names no day that exists in its months")
        return schedule

    def matches(self, moment: datetime) -> bool:
        return (
            moment.second in self.seconds
            and moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.day in self.days
            and moment.month in self.months
            and _ncrontab_weekday(moment) in self.days_of_week
        )

    def next_after(self, moment: datetime) -> datetime:
        """First occurrence strictly after ``moment`` (naive datetimes are taken as UTC)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        t = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = t + _SEARCH_LIMIT
        while t < limit:
            if t.month not in self.months:
                t = _start_of_next_month(t)
            elif t.day not in self.days or _ncrontab_weekday(t) not in self.days_of_week:
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        raise ValueError(f"NCRONTAB {self.expression!r} never occurs after {moment.isoformat()}")


def _max_days(month: int) -> int:
    return 29 if month == 2 else calendar.monthrange(2001, month)[1]


def _ncrontab_weekday(moment: datetime) -> int:
    return (moment.weekday() + 1) % 7


def _start_of_next_month(t: datetime) -> datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)


def next_occurrence(
    expression: str, after: datetime, settings: Mapping[str, str] | None = None
) -> datetime:
    """Convenience: parse ``expression`` (expanding ``%SETTING%``) and return the next UTC time."""
    return NCrontab.parse(expression, settings).next_after(after)
