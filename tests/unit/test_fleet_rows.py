"""The fleet fold with rows: rings per layout (`ring_key`) and their features carried by name.

A model whose features change counts into a ring named after its new rows; the fold checks
an increment against its own rows and its ring's, never against the replica's configured
feature count, and keeps the rows through a snapshot; `carried_window` gives a layout every
count its features have in the other layouts' rings of the same reference, checked here
against per-feature counts kept from first principles.
"""

from __future__ import annotations

import numpy as np
import pytest

from monitor.errors import CommitResult, StateRejectReason
from monitor.fleet import EXTRA_ROWS, FleetFold, carried_window
from monitor.fleet_records import (
    ModelIncrement,
    encode_claim,
    encode_commit,
    model_increment,
    ring_key,
    ring_reference,
)
from monitor.schema_change import Row
from monitor.window import EventTimeWindow

R = StateRejectReason
BUCKET, LENGTH, LATENESS = 10.0, 60.0, 10.0
CONFIGURED = 3
#: Two layouts of one model: z removed, y added, c's bins the same in both; x's bins changed
#: in neither. Slots differ, so the matrices differ in width too (value slots + MISSING, INVALID).
OLD = (Row("x", "dx", 4), Row("z", "dz", 3), Row("c", "dc", 5))
NEW = (Row("x", "dx", 4), Row("y", "dy", 6), Row("c", "dc", 5))


def _width(rows: tuple[Row, ...]) -> int:
    return max(r.slots for r in rows) + 2


def _fold() -> FleetFold:
    fold = FleetFold()
    fold.declare("m", EventTimeWindow((CONFIGURED, 1), BUCKET, LENGTH, LATENESS))
    for p in range(2):
        fold.apply(encode_claim(f"t:{p}", 1, "r0")[1])
    return fold


def _commit(fold: FleetFold, p: int, lo: int, hi: int, increments: list[ModelIncrement]) -> object:
    return [fold.apply(v) for _, v in encode_commit(f"t:{p}", 1, "r0", lo, hi, increments)][-1]


def _random_counts(
    rng: np.random.Generator, rows: tuple[Row, ...], buckets: list[int]
) -> dict[int, np.ndarray]:
    """Counts per bucket in the layout of `rows`: only a row's own slots, MISSING and INVALID."""
    width = _width(rows)
    out = {}
    for bucket in buckets:
        counts = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            counts[i, : row.slots] = rng.integers(0, 5, row.slots)
            counts[i, width - 2 :] = rng.integers(0, 3, 2)
        out[bucket] = counts
    return out


def _per_feature(rows: tuple[Row, ...], by_bucket: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    """First principles: each feature's summed value slots, then MISSING and INVALID."""
    width = _width(rows)
    out: dict[str, np.ndarray] = {}
    for counts in by_bucket.values():
        for i, row in enumerate(rows):
            vector = np.concatenate([counts[i, : row.slots], counts[i, width - 2 :]])
            out[row.name] = out.get(row.name, 0) + vector
    return out


def test_a_layout_gets_every_count_its_features_have_in_the_other_layouts_ring() -> None:
    """x and c sum over both layouts' rings, y has the new ring's only, z is gone, and the
    new layout's rings of another reference are left out."""
    rng = np.random.default_rng(3)
    fold = _fold()
    old_counts = _random_counts(rng, OLD, [100, 101, 102])
    new_counts = _random_counts(rng, NEW, [102, 103])
    elsewhere = _random_counts(rng, NEW, [103])
    old_key, new_key = ring_key("ref", OLD), ring_key("ref", NEW)
    increments = [
        model_increment("m", (3, _width(OLD)), 1025.0, old_counts, old_key, OLD),
        model_increment("m", (3, _width(NEW)), 1039.0, new_counts, new_key, NEW),
        model_increment("m", (3, _width(NEW)), 1039.0, elsewhere, ring_key("other", NEW), NEW),
    ]
    for p, increment in enumerate(increments[:2]):
        assert _commit(fold, p, 0, 10, [increment]).result is CommitResult.ACCEPTED  # type: ignore[attr-defined]
    assert _commit(fold, 0, 10, 20, increments[2:]).result is CommitResult.ACCEPTED  # type: ignore[attr-defined]
    assert fold.rows_of("m", old_key) == OLD and fold.rows_of("m", new_key) == NEW
    assert ring_reference(new_key) == "ref" and ring_reference("ref") == "ref"

    ring = fold.ring("m", new_key)
    old = fold.ring("m", old_key)
    assert ring is not None and old is not None
    window = carried_window(ring, NEW, [(old, OLD)])

    want_old, want_new = _per_feature(OLD, old_counts), _per_feature(NEW, new_counts)
    got = _per_feature(NEW, {0: window.current()})
    np.testing.assert_array_equal(got["x"], want_old["x"] + want_new["x"])
    np.testing.assert_array_equal(got["c"], want_old["c"] + want_new["c"])
    np.testing.assert_array_equal(got["y"], want_new["y"])
    assert window.watermark == ring.watermark == 1039.0
    assert window.total.shape == ring.total.shape
    assert np.array_equal(ring.current(), sum(new_counts.values())), "the ring itself is unchanged"
    for bucket, counts in new_counts.items():
        held = window.ring.get(bucket)
        assert held is not None
        assert np.array_equal(held[1], counts[1]), "bucket by bucket, y is the new ring's"


def test_rows_decide_the_shape_not_the_configured_feature_count() -> None:
    """With rows, 4 features fold although 3 are configured; rows of another count, a ring
    held with other rows, too many rows, and rows-less increments of another count are refused."""
    fold = _fold()
    four = (*NEW, Row("w", "dw", 2))
    key = ring_key("ref", four)

    def one(rows: tuple[Row, ...], name: str, features: int | None = None) -> ModelIncrement:
        n = len(rows) if features is None else features
        counts = {100: np.ones((n, _width(rows or NEW)), dtype=np.int64)}
        return model_increment("m", (n, _width(rows or NEW)), 1005.0, counts, name, rows)

    assert _commit(fold, 0, 0, 5, [one(four, key)]).result is CommitResult.ACCEPTED  # type: ignore[attr-defined]
    refused = {
        "other rows, same ring": one(tuple(reversed(four)), key),
        "rows-less, 4 features": one((), "legacy", 4),
        "too many rows": one(
            tuple(Row(f"f{i}", "d", 1) for i in range(2 * CONFIGURED + EXTRA_ROWS + 1)), "big"
        ),
    }
    for why, increment in refused.items():
        outcome = _commit(fold, 0, 5, 9, [increment])
        assert outcome.rejected is not None and outcome.rejected.reason is R.SHAPE_MISMATCH, why  # type: ignore[attr-defined]
    bad = one(NEW, ring_key("ref", NEW))
    torn = ModelIncrement(
        **{f: getattr(bad, f) for f in bad.__struct_fields__} | {"rows": list(NEW[:2])}
    )
    outcome = _commit(fold, 0, 5, 9, [torn])
    assert outcome.rejected is not None and outcome.rejected.reason is R.INVALID_RECORD  # type: ignore[attr-defined]
    assert fold.head("t:0").next == 5, "no refused commit moved the chain"


@pytest.mark.parametrize("rows", [OLD, ()])
def test_a_snapshot_keeps_each_ring_s_rows(rows: tuple[Row, ...]) -> None:
    """Restored from a snapshot, a ring has the rows it was made with (none for one made by
    increments written before rows were carried)."""
    fold = _fold()
    key = ring_key("ref", rows) if rows else "ref"
    counts = {100: np.ones((3, _width(OLD)), dtype=np.int64)}
    increment = model_increment("m", (3, _width(OLD)), 1005.0, counts, key, rows)
    assert _commit(fold, 0, 0, 5, [increment]).result is CommitResult.ACCEPTED  # type: ignore[attr-defined]
    restored = _fold()
    assert restored.restore(fold.snapshot_body()) is None
    assert restored.rows_of("m", key) == rows
    ring = restored.ring("m", key)
    assert ring is not None and int(ring.total.sum()) == 3 * _width(OLD)


def test_rows_whose_slots_do_not_fit_their_width_are_refused() -> None:
    """A row claiming more value slots than its matrix holds (or none) is an invalid record:
    carried into a replica's window it would fail every replica at every fold."""
    for slots in (_width(NEW) - 1, 0, 10**6):
        fold = _fold()
        rows = (Row("x", "dx", slots), *NEW[1:])
        counts = {100: np.ones((3, _width(NEW)), dtype=np.int64)}
        increment = model_increment(
            "m", (3, _width(NEW)), 1005.0, counts, ring_key("r", rows), rows
        )
        outcome = _commit(fold, 0, 0, 5, [increment])
        assert outcome.rejected is not None and outcome.rejected.reason is R.INVALID_RECORD  # type: ignore[attr-defined]
        assert fold.head("t:0").next is None


def test_another_ring_s_row_with_other_slots_under_the_same_bins_digest_is_not_carried() -> None:
    """A ring whose x row claims x's name and bins digest with other slots (a bad record that
    fits its width): x is not carried from it, c still is, and nothing raises."""
    fold = _fold()
    odd = (Row("x", "dx", 2), Row("z", "dz", 3), Row("c", "dc", 5))
    old_counts = _random_counts(np.random.default_rng(4), odd, [100])
    increment = model_increment(
        "m", (3, _width(odd)), 1005.0, old_counts, ring_key("ref", odd), odd
    )
    assert _commit(fold, 0, 0, 5, [increment]).result is CommitResult.ACCEPTED  # type: ignore[attr-defined]
    old = fold.ring("m", ring_key("ref", odd))
    assert old is not None
    empty = EventTimeWindow((3, _width(NEW)), BUCKET, LENGTH, LATENESS)
    got = _per_feature(NEW, {0: carried_window(empty, NEW, [(old, odd)]).current()})
    assert not got["x"].any() and not got["y"].any()
    np.testing.assert_array_equal(got["c"], _per_feature(odd, old_counts)["c"])
