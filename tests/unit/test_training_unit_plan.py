"""How a partitioned spec's rows are cut into queue units (shared.training.units.pack and
shared.training.staging.plan_units): pure functions, no storage."""

from __future__ import annotations

from shared.training.staging import SPREAD_UNITS, TAIL_AFTER_UNITS, plan_units
from shared.training.units import MAX_PARTITIONS_PER_UNIT, pack


def rooms(n: int, rows: int) -> tuple[dict[str, int], dict[str, str]]:
    keys = [f"k{i:04d}" for i in range(n)]
    return {k: rows for k in keys}, {k: f"room-{i:04d}" for i, k in enumerate(keys)}


def flat(units: list[list[str]]) -> list[str]:
    return [key for unit in units for key in unit]


def test_pack_fills_units_in_order_up_to_the_row_budget() -> None:
    sized = [("a", 30), ("b", 30), ("c", 50), ("d", 10), ("e", 200)]
    assert pack(sized, 60) == [["a", "b"], ["c", "d"], ["e"]]  # e alone: over the budget


def test_pack_with_a_tail_cuts_smaller_units_from_the_end() -> None:
    sized = [(f"p{i}", 10) for i in range(20)]
    units = pack(sized, 50, tail=(10, 20))
    assert [len(u) for u in units] == [2, 5, 5, 5, 2, 1]
    assert flat(units) == [key for key, _ in sized]  # same partitions, same order


def test_pack_never_exceeds_the_partition_cap() -> None:
    sized = [(f"p{i}", 1) for i in range(3 * MAX_PARTITIONS_PER_UNIT)]
    for tail in ((), (5, 10)):
        units = pack(sized, 10**9, tail=tail)
        assert max(len(u) for u in units) == MAX_PARTITIONS_PER_UNIT
        assert flat(units) == [key for key, _ in sized]


def test_a_long_spec_ends_on_a_quarter_then_a_half_unit() -> None:
    counts, values = rooms(1_000, 1_000)  # the 1,000 rooms of 1,000 rows
    units, skipped = plan_units(counts, values, min_rows=50, row_budget=50_000)
    sizes = [len(u) for u in units]
    assert skipped == []
    assert sizes[-2:] == [25, 12]  # half, then a quarter of a 50-room unit
    assert set(sizes[1:-2]) == {50} and sizes[0] == 1_000 - 37 - 50 * (len(units) - 3)
    assert flat(units) == sorted(counts, key=lambda k: values[k])


def test_a_spec_of_few_units_keeps_them_even() -> None:
    counts, values = rooms(200, 2_000)  # 8 units of 25 rooms: spread, no tail
    units, _ = plan_units(counts, values, min_rows=50, row_budget=50_000)
    assert [len(u) for u in units] == [25] * SPREAD_UNITS
    counts, values = rooms(TAIL_AFTER_UNITS * 10, 100)  # exactly the threshold: no tail
    units, _ = plan_units(counts, values, min_rows=50, row_budget=1_000)
    assert [len(u) for u in units] == [10] * TAIL_AFTER_UNITS


def test_small_partitions_are_skipped_and_kept_out_of_units() -> None:
    counts, values = rooms(30, 100)
    counts["k0003"] = 5
    units, skipped = plan_units(counts, values, min_rows=50, row_budget=1_000)
    assert skipped == ["k0003"] and "k0003" not in flat(units)
