"""WarmupBuffer: bounded, per chosen feature rows, and a checkpoint form that round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.errors import StateError
from monitor.warmup import WarmupBuffer


def _columns(n: int, offset: float = 0.0) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    numeric = np.vstack([np.arange(n) + offset, -np.arange(n) - offset, np.full(n, np.nan)])
    categorical = (
        np.asarray([f"a{i}" for i in range(n)], dtype=object),
        np.asarray(["x\x00"] * n, dtype=object),
    )
    return numeric, categorical


def test_only_the_chosen_rows_are_kept_and_capacity_bounds_the_count() -> None:
    """Rows 2 and 1 of 5 events each, until 8 events: then nothing more is taken."""
    buffer = WarmupBuffer(8, [2], [1])
    assert buffer.add(*_columns(5), start=1) == 4
    assert buffer.add(*_columns(5), start=0) == 4
    assert buffer.add(*_columns(5), start=0) == 0
    assert buffer.full and buffer.count == 8
    assert list(buffer.numeric()) == [2] and buffer.numeric()[2].shape == (8,)
    assert buffer.categorical()[1].tolist() == ["x\x00"] * 8


def test_state_round_trips_including_trailing_nul_characters() -> None:
    """restore(state()) gives the same values per row."""
    buffer = WarmupBuffer(10, [0, 1], [0, 1])
    buffer.add(*_columns(6, 0.5), start=0)
    numeric, meta = buffer.state()
    again = WarmupBuffer.restore(10, numeric, meta)
    assert again.count == 6
    assert np.array_equal(again.numeric()[1], buffer.numeric()[1])
    assert again.categorical()[1].tolist() == ["x\x00"] * 6


@pytest.mark.parametrize(
    "meta",
    [
        {"count": 7, "numeric_rows": [0], "categorical_rows": [], "categorical": []},
        {"count": 6, "numeric_rows": [0], "categorical_rows": [0], "categorical": []},
        {"count": 6, "numeric_rows": [0]},
    ],
    ids=["count does not match", "categorical column missing", "keys missing"],
)
def test_restore_refuses_parts_that_do_not_fit(meta: dict[str, object]) -> None:
    """A damaged buffer is a StateError, never an exception from deep inside numpy."""
    with pytest.raises(StateError):
        WarmupBuffer.restore(10, np.zeros((1, 6)), meta)
