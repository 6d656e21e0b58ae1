"""`driftmon reference fit --features auto`: the features of a data file, discovered.

The daemon's rules (monitor.discovery) applied to every row of a file: a column (CSV,
Parquet) or a key of the feature objects (JSON Lines) is a feature when it holds a usable
value in at least 1 % of the rows (and in 2 of them), matches no `exclude` glob and is among
the `max_features` most frequent; its kind is the majority kind of its values. Value kinds:
JSON Lines as the event contract says (numbers numeric, strings and bools categorical);
CSV cells by their text (a cell that parses as a finite number is numeric, any other
non-null text categorical; `NULL_TOKENS` are missing); Parquet by the column type
(integer, float and decimal numeric; string and bool categorical; every value of a column
counts as that kind).
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast

from monitor.discovery import FeatureDiscovery
from monitor.model import FeatureSpec
from monitor.tools.profile_io import (
    DEFAULT_CHUNK_ROWS,
    FORMATS,
    MAX_LINE_BYTES,
    NULL_TOKENS,
    ProfileInputError,
    _features,
    _records,
    check_file,
    csv_chunks,
    detect_format,
    shorten,
)


def discover_features(
    path: Path,
    *,
    max_features: int,
    exclude: Sequence[str] = (),
    fmt: str | None = None,
    features_path: str = "",
    max_line_bytes: int = MAX_LINE_BYTES,
) -> tuple[FeatureSpec, ...]:
    """The discovered features of the file (numeric first, by name); ProfileInputError when
    the file cannot be read (as `profile_io.read_columns`: not a regular file, a line longer
    than `max_line_bytes`, invalid JSON, ...) or holds no feature."""
    path = Path(path)
    if fmt is None:
        fmt, gzipped = detect_format(path)
    elif fmt not in FORMATS:
        raise ProfileInputError(f"unknown format {shorten(repr(fmt))}; valid: {', '.join(FORMATS)}")
    else:
        gzipped = path.suffix.lower() == ".gz"
    check_file(path)
    discovery = FeatureDiscovery(2**62, max_features, exclude)
    if fmt == "parquet":
        for rows in _parquet_rows(path):
            discovery.observe(rows)
    else:
        with path.open("rb") as raw:
            data = cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb")) if gzipped else raw
            try:
                rows_of = (
                    _csv_rows(path, data, max_line_bytes)
                    if fmt == "csv"
                    else _jsonl_rows(path, data, features_path, max_line_bytes)
                )
                for chunk in rows_of:
                    discovery.observe(chunk)
            except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
                raise ProfileInputError(f"{path}: cannot read the file ({exc})") from None
    specs = discovery.choose()
    if not specs:
        raise ProfileInputError(
            f"{path}: no feature found in {discovery.events} rows (a feature needs a usable "
            "value in at least 1 % of the rows)"
        )
    return specs


def _jsonl_rows(
    path: Path, stream: BinaryIO, features_path: str, max_line_bytes: int
) -> Iterator[list[dict[str, Any]]]:
    keys = [k for k in features_path.split(".") if k] if features_path else []
    for records, numbers in _records(path, stream, DEFAULT_CHUNK_ROWS, max_line_bytes):
        yield _features(path, records, numbers, keys)


def _cell(text: str) -> float | str | None:
    """A CSV cell as the value it stands for: None (null token), a finite number, or text."""
    stripped = text.strip()
    if stripped.lower() in NULL_TOKENS:
        return None
    try:
        number = float(stripped)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _csv_rows(path: Path, stream: BinaryIO, max_line_bytes: int) -> Iterator[list[dict[str, Any]]]:
    header, chunks = csv_chunks(path, stream, DEFAULT_CHUNK_ROWS, max_line_bytes)
    for chunk in chunks:
        yield [
            {name: _cell(cell) for name, cell in zip(header, row, strict=False)} for row in chunk
        ]


def _parquet_rows(path: Path) -> Iterator[list[Mapping[str, Any]]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ProfileInputError(f"{path}: reading Parquet needs pyarrow") from None
    table = pq.ParquetFile(path)
    for batch in table.iter_batches(batch_size=DEFAULT_CHUNK_ROWS):
        columns: dict[str, list[Any]] = {}
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            array = column.dictionary_decode() if pa.types.is_dictionary(column.type) else column
            kind = array.type
            numeric = (
                pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
            )
            text = (
                pa.types.is_string(kind)
                or pa.types.is_large_string(kind)
                or pa.types.is_boolean(kind)
            )
            if not numeric and not text:
                continue
            token: float | str = 0.0 if numeric else ""
            columns[name] = [None if v is None else token for v in array.to_pylist()]
        yield [
            dict(zip(columns, values, strict=True))
            for values in zip(*columns.values(), strict=True)
        ]
