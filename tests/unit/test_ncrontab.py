"""NCRONTAB parsing and next-occurrence computation (Azure Functions timer semantics)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from devhost.ncrontab import NCrontab, expand_settings, next_occurrence


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def occurrences(expression: str, start: datetime, count: int) -> list[datetime]:
    schedule = NCrontab.parse(expression)
    found, t = [], start
    for _ in range(count):
        t = schedule.next_after(t)
        found.append(t)
    return found


def test_monthly_at_two_am_on_the_first() -> None:
    assert occurrences("0 0 2 1 * *", at(2024, 1, 15, 12), 3) == [
        at(2024, 2, 1, 2),
        at(2024, 3, 1, 2),
        at(2024, 4, 1, 2),
    ]


def test_every_five_seconds() -> None:
    assert occurrences("*/5 * * * * *", at(2024, 1, 1, 0, 0, 3), 3) == [
        at(2024, 1, 1, 0, 0, 5),
        at(2024, 1, 1, 0, 0, 10),
        at(2024, 1, 1, 0, 0, 15),
    ]


def test_next_is_strictly_after_the_given_time() -> None:
    assert next_occurrence("0 * * * * *", at(2024, 1, 1, 0, 1)) == at(2024, 1, 1, 0, 2)
    assert next_occurrence("0 * * * * *", at(2024, 1, 1, 0, 1, 0) + timedelta(microseconds=1)) == (
        at(2024, 1, 1, 0, 2)
    )


def test_ranges_lists_and_steps() -> None:
    assert occurrences("0 0,30 9-10 * * *", at(2024, 1, 1), 5) == [
        at(2024, 1, 1, 9, 0),
        at(2024, 1, 1, 9, 30),
        at(2024, 1, 1, 10, 0),
        at(2024, 1, 1, 10, 30),
        at(2024, 1, 2, 9, 0),
    ]
    assert occurrences("0 10-30/10 * * * *", at(2024, 1, 1), 3) == [
        at(2024, 1, 1, 0, 10),
        at(2024, 1, 1, 0, 20),
        at(2024, 1, 1, 0, 30),
    ]
    assert occurrences("0 45/5 0 * * *", at(2024, 1, 1), 4)[-1] == at(2024, 1, 1, 0, 0, 0) + (
        timedelta(days=1, minutes=45)
    )


def test_month_and_day_names_case_insensitive() -> None:
    # 2024-01-01 is a Monday.
    assert occurrences("0 30 9 * JAN,Mar mon-WED", at(2024, 1, 1), 4) == [
        at(2024, 1, 1, 9, 30),
        at(2024, 1, 2, 9, 30),
        at(2024, 1, 3, 9, 30),
        at(2024, 1, 8, 9, 30),
    ]
    assert next_occurrence("0 0 0 1 FEB *", at(2024, 1, 1)) == at(2024, 2, 1)
    assert next_occurrence("0 0 0 * * Sunday", at(2024, 1, 1)) == at(2024, 1, 7)


def test_day_of_week_zero_is_sunday() -> None:
    assert next_occurrence("0 0 12 * * 0", at(2024, 1, 1)) == at(2024, 1, 7, 12)
    assert next_occurrence("0 0 12 * * 6", at(2024, 1, 1)) == at(2024, 1, 6, 12)


def test_day_of_month_and_weekday_must_both_match() -> None:
    # NCrontab ANDs the two fields: Friday the 13th, not "every Friday and every 13th".
    assert next_occurrence("0 0 0 13 * FRI", at(2024, 1, 1)) == at(2024, 9, 13)


def test_leap_day_and_year_rollover() -> None:
    assert next_occurrence("0 0 0 29 2 *", at(2023, 3, 1)) == at(2024, 2, 29)
    assert next_occurrence("59 59 23 31 12 *", at(2024, 6, 1)) == at(2024, 12, 31, 23, 59, 59)
    assert next_occurrence("0 0 0 1 1 *", at(2024, 12, 31, 23, 59, 59)) == at(2025, 1, 1)


def test_naive_and_non_utc_inputs_are_handled_as_utc() -> None:
    assert next_occurrence("0 0 * * * *", datetime(2024, 1, 1, 10, 30)) == at(2024, 1, 1, 11)
    plus_two = datetime(2024, 1, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    assert next_occurrence("0 0 * * * *", plus_two) == at(2024, 1, 1, 11)


def test_setting_references_are_expanded() -> None:
    settings = {"TRAINING_SCHEDULE": "0 0 2 1 * *"}
    assert next_occurrence("%TRAINING_SCHEDULE%", at(2024, 1, 15), settings) == at(2024, 2, 1, 2)
    assert expand_settings("0 %M% * * * *", {"M": "*/5"}) == "0 */5 * * * *"


def test_unknown_setting_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="TRAINING_SCHEDULE"):
        NCrontab.parse("%TRAINING_SCHEDULE%", {})


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 */5 * * *", "6"),
        ("0 0 */5 * * * *", "6"),
        ("", "6"),
        ("60 * * * * *", "out of range"),
        ("0 0 24 * * *", "out of range"),
        ("0 0 0 0 * *", "out of range"),
        ("0 0 0 * 13 *", "out of range"),
        ("0 0 0 * * 7", "out of range"),
        ("0 0 0 * FOO *", "invalid month"),
        ("*/0 * * * * *", "step"),
        ("5-1 * * * * *", "descending"),
        ("0 0 0 30 2 *", "no day"),
        ("0 0 0 ? * *", "invalid"),
        ("0 0 0 1,,2 * *", "empty"),
    ],
)
def test_bad_expressions(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NCrontab.parse(expression)


def test_matches() -> None:
    schedule = NCrontab.parse("0 0 2 1 * *")
    assert schedule.matches(at(2024, 5, 1, 2))
    assert not schedule.matches(at(2024, 5, 1, 2, 0, 1))
