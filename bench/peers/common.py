"""Helpers the peer scripts share: untyped imports, versions and DataFrames of a window."""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from bench.dataset import Dataset
from bench.workload import Batch


def load(module: str) -> Any:
    """Import a peer module (peers are untyped and absent from the project's environment)."""
    warnings.filterwarnings("ignore")
    return importlib.import_module(module)


def version_of(distribution: str) -> str:
    """`name version` of an installed distribution ("name ?" if unknown)."""
    try:
        return f"{distribution} {version(distribution)}"
    except PackageNotFoundError:
        return f"{distribution} ?"


def frame(data: Dataset, batch: Batch) -> Any:
    """A pandas DataFrame of a batch: float columns (NaN = missing), then str categories."""
    pandas = load("pandas")
    df = pandas.DataFrame(batch.numeric, columns=list(data.numeric_names))
    for j, name in enumerate(data.categorical_names):
        df[name] = data.strings(batch.categorical[:, j], j)
    return df
