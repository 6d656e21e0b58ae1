"""Scoring drift decisions against the workload's ground truth (numpy only).

A decision matrix `flags[w, f]` (window x feature, the workload's feature order) is compared
with `truth[w, f]`: a *detected* pair is flagged and drifted, a *false alarm* is flagged and
clean. Per scenario, `hits` counts the detected pairs in that scenario's windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Score:
    """Detection counts of one decision matrix."""

    detected: int
    drifted: int
    false_alarms: int
    clean: int
    per_scenario: dict[str, tuple[int, int]]

    @property
    def detected_text(self) -> str:
        """`detected/drifted`."""
        return f"{self.detected}/{self.drifted}"

    @property
    def false_alarm_text(self) -> str:
        """`false alarms/clean pairs`."""
        return f"{self.false_alarms}/{self.clean}"


def score(
    flags: npt.ArrayLike, truth: npt.NDArray[np.bool_], schedule: Sequence[str | None]
) -> Score:
    """Score `flags` (bool [windows, features], fewer windows allowed) against the truth.

    Only the windows present in `flags` are scored; `schedule[w]` names window w's scenario
    ("" or None for a clean window).
    """
    decided = np.asarray(flags, dtype=bool)
    if decided.ndim != 2 or decided.shape[1] != truth.shape[1]:
        raise ValueError(f"flags must have shape (windows, {truth.shape[1]}), got {decided.shape}")
    rows = decided.shape[0]
    if rows > truth.shape[0]:
        raise ValueError(f"{rows} windows of flags for {truth.shape[0]} windows of truth")
    expected = truth[:rows]
    per: dict[str, tuple[int, int]] = {}
    for w in range(rows):
        name = schedule[w]
        if not name:
            continue
        hit, total = per.get(name, (0, 0))
        per[name] = (
            hit + int((decided[w] & expected[w]).sum()),
            total + int(expected[w].sum()),
        )
    return Score(
        detected=int((decided & expected).sum()),
        drifted=int(expected.sum()),
        false_alarms=int((decided & ~expected).sum()),
        clean=int((~expected).sum()),
        per_scenario=per,
    )
