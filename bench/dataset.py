"""The workload written once to an .npz file, and read back one window at a time (numpy only).

The peers run in their own virtualenvs, some with numpy 1.x: numpy's random streams are not
guaranteed identical across versions, so the workload is drawn once (by the runner, in the
project's environment) and every tool reads the same arrays from this file.

Keys: `ref_num` float64[100000, 20], `ref_cat` int32[100000, 2], `wNN_num` / `wNN_cat` for
each window NN, `truth` bool[60, 22], `schedule` (scenario per window, "" = clean),
`numeric_names`, `categorical_names`, `levels0` / `levels1` (level names of the c10 and c1000
shapes). `np.load` reads npz members lazily, so a reader holds the reference and one window.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import workload


def write(path: Path, windows: int | None = None) -> Path:
    """Draw the workload (the first `windows` windows if given) and save it uncompressed to
    `path`; returns the path."""
    count = workload.N_WINDOWS if windows is None else min(windows, workload.N_WINDOWS)
    arrays: dict[str, Any] = {}
    ref = workload.reference()
    arrays["ref_num"], arrays["ref_cat"] = ref.numeric, ref.categorical
    for w, batch in workload.windows():
        if w >= count:
            break
        arrays[f"w{w:02d}_num"], arrays[f"w{w:02d}_cat"] = batch.numeric, batch.categorical
    arrays["truth"] = workload.ground_truth()[:count]
    arrays["schedule"] = np.asarray([s or "" for s in workload.SCHEDULE[:count]])
    arrays["numeric_names"] = np.asarray(workload.NUMERIC_FEATURES)
    arrays["categorical_names"] = np.asarray(workload.CATEGORICAL_FEATURES)
    arrays["levels0"] = np.asarray(workload.LEVELS[0])
    arrays["levels1"] = np.asarray(workload.LEVELS[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.savez(handle, **arrays)
    return path


class Dataset:
    """Read access to a file written by `write` (no pickles are loaded)."""

    def __init__(self, path: Path | str) -> None:
        self._npz = np.load(str(path), allow_pickle=False)
        self.truth: npt.NDArray[np.bool_] = np.asarray(self._npz["truth"], dtype=bool)
        self.schedule: tuple[str, ...] = tuple(str(s) for s in self._npz["schedule"])
        self.numeric_names: tuple[str, ...] = tuple(str(s) for s in self._npz["numeric_names"])
        self.categorical_names: tuple[str, ...] = tuple(
            str(s) for s in self._npz["categorical_names"]
        )
        self.levels: tuple[tuple[str, ...], ...] = tuple(
            tuple(str(s) for s in self._npz[f"levels{k}"]) for k in range(2)
        )

    @property
    def features(self) -> tuple[str, ...]:
        """All feature names: numeric, then categorical (the order of `truth`'s columns)."""
        return self.numeric_names + self.categorical_names

    @property
    def n_windows(self) -> int:
        """Number of current windows."""
        return len(self.schedule)

    def reference(self) -> workload.Batch:
        """The reference events."""
        return workload.Batch(self._npz["ref_num"], self._npz["ref_cat"])

    def window(self, w: int) -> workload.Batch:
        """Current window w."""
        return workload.Batch(self._npz[f"w{w:02d}_num"], self._npz[f"w{w:02d}_cat"])

    def windows(self, limit: int | None = None) -> Iterator[tuple[int, workload.Batch]]:
        """Windows 0.. in order (the first `limit` of them if given), one loaded at a time."""
        count = self.n_windows if limit is None else min(limit, self.n_windows)
        for w in range(count):
            yield w, self.window(w)

    def strings(self, codes: npt.ArrayLike, column: int) -> npt.NDArray[np.object_]:
        """Level names (str objects) of categorical column `column`'s codes."""
        levels = np.asarray(self.levels[column % 2], dtype=object)
        return np.asarray(levels[np.asarray(codes, dtype=np.int64)], dtype=object)
