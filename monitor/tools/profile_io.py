"""Read reference data files into feature columns for `driftmon reference fit`.

`read_columns` streams a CSV, JSON Lines or Parquet file in chunks of rows and returns the
columns `monitor.reference.fit_profile` takes: float64 numeric columns (NaN = missing,
+inf = invalid) and object categorical columns (str, None = missing). Formats come from the
suffix unless `fmt` is given: `.csv`, `.jsonl` / `.ndjson` / `.json-lines` (each also with
`.gz`), `.parquet` / `.pq` (Parquet needs the optional `pyarrow`).

Cell rules, per format:

- CSV (UTF-8, header row required, blank lines skipped, short rows padded with empty cells):
  numeric cells that are empty or one of `NULL_TOKENS` (case-insensitive, after stripping)
  are missing; cells Python's `float()` cannot parse are invalid, as are +-inf; "nan" is
  missing. Categorical cells are kept as text (a number stays its string form); only an
  empty cell is missing.
- JSON Lines (one JSON object per line; blank lines skipped): the features are the object at
  `features_path` (a dotted path, "" = the record itself; "features" for events of the
  documented shape). Values follow the daemon's decoder exactly (`monitor.decode.numeric_column` and
  `categorical_column`): numbers feed numeric features, strings and booleans categorical
  ones, null or an absent key is missing, any other type is invalid. A line that is not valid
  JSON, not an object, or has no object at `features_path` is an error naming the line.
- Parquet: numeric columns of integer, floating or decimal type are converted to float64
  (null = missing), string columns are parsed like CSV cells, any other type is invalid.
  Categorical string columns are kept, nulls are missing, booleans become "true"/"false" and
  other values their string form.

A column requested but absent (from the CSV header, from every JSON record, from the Parquet
schema) is an error naming it. Errors are `ProfileInputError`, a `ReferenceDataError`.

With `progress`, a one-line progress bar (bytes read of the file size, or rows for Parquet;
rate; ETA) is redrawn on the stream at most every 0.1 s, and finished with a newline.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import math
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast

import msgspec
import numpy as np
import numpy.typing as npt

from monitor.decode import categorical_column, numeric_column
from monitor.errors import ReferenceDataError
from monitor.reference import ReferenceProfile, build_profile
from monitor.segment_slices import fit_slices, top_segments

__all__ = [
    "FORMATS",
    "NULL_TOKENS",
    "ProfileInputError",
    "ProgressBar",
    "detect_format",
    "read_columns",
]

FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]
Columns = tuple[dict[str, FloatArray], dict[str, ObjectArray], int]

FORMATS = ("csv", "jsonl", "parquet")
NULL_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
"""Numeric CSV / Parquet-string cells that mean "missing" (compared lower-cased, stripped)."""

_SUFFIXES = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json-lines": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
DEFAULT_CHUNK_ROWS = 65_536


class ProfileInputError(ReferenceDataError):
    """The reference data file cannot be read: missing, unknown format, missing column, empty,
    or malformed (the message names the file, and the line or column when known)."""


# --- progress bar ------------------------------------------------------------------------------


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(seconds + 0.5)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class ProgressBar:
    """A one-line progress bar: `label  42% |########            | 1.2 MB/2.9 MB  3.1 MB/s  ETA 1s`.

    `update(done)` redraws (with a leading carriage return) only when `min_interval_s` has
    passed since the last draw; `close()` draws the final state and ends the line. `unit` is
    "bytes" (sizes like 1.2 MB) or anything else (plain counts followed by the unit).
    """

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        label: str = "",
        unit: str = "bytes",
        min_interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(0, int(total))
        self._stream = stream
        self._label = label
        self._unit = unit
        self._min_interval = min_interval_s
        self._clock = clock
        self._start = clock()
        self._last_draw = -math.inf
        self._done = 0
        self._width = 0
        self.draws = 0

    def _amount(self, n: float) -> str:
        return _size(n) if self._unit == "bytes" else f"{n:,.0f} {self._unit}"

    def _render(self, now: float) -> str:
        fraction = min(1.0, self._done / self.total) if self.total else 1.0
        filled = int(fraction * 20)
        elapsed = now - self._start
        rate = self._done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self._done) / rate if rate > 0 else math.inf
        label = f"{self._label}  " if self._label else ""
        return (
            f"{label}{fraction * 100:3.0f}% |{'#' * filled}{' ' * (20 - filled)}| "
            f"{self._amount(self._done)}/{self._amount(self.total)}  "
            f"{self._amount(rate)}/s  ETA {_duration(eta)}"
        )

    def _draw(self, now: float) -> None:
        text = self._render(now)
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width = len(text)
        self._last_draw = now
        self.draws += 1

    def update(self, done: int) -> None:
        """Record progress; redraw if the last draw is at least `min_interval_s` old."""
        self._done = done
        now = self._clock()
        if now - self._last_draw >= self._min_interval:
            self._draw(now)

    def close(self) -> None:
        """Draw the final state and end the line."""
        self._draw(self._clock())
        self._stream.write("\n")
        self._stream.flush()


def _progress_stream(progress: bool | TextIO) -> TextIO | None:
    if progress is True:
        return sys.stderr if sys.stderr.isatty() else None
    if progress is False:
        return None
    return progress


# --- format detection and opening --------------------------------------------------------------


def detect_format(path: Path) -> tuple[str, bool]:
    """(format, gzipped) from the file name; ProfileInputError for an unknown suffix."""
    suffixes = [s.lower() for s in path.suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    if gzipped:
        suffixes = suffixes[:-1]
    fmt = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if fmt is None or (gzipped and fmt == "parquet"):
        known = ", ".join(sorted(_SUFFIXES))
        raise ProfileInputError(
            f"{path}: cannot tell the format from the name (known suffixes: {known}, "
            "and .gz for csv/jsonl); give the format explicitly"
        )
    return fmt, gzipped


def _check_file(path: Path) -> int:
    if not path.exists():
        raise ProfileInputError(f"{path}: no such file")
    if not path.is_file():
        raise ProfileInputError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise ProfileInputError(f"{path}: the file is empty")
    return size


def _missing(path: Path, names: Sequence[str], available: Sequence[str]) -> ProfileInputError:
    shown = ", ".join(list(available)[:20]) + (", ..." if len(available) > 20 else "")
    listed = ", ".join(repr(n) for n in names)
    word = "column" if len(names) == 1 else "columns"
    return ProfileInputError(f"{path}: {word} {listed} not found (available: {shown or 'none'})")


# --- CSV ---------------------------------------------------------------------------------------


def _parse_cell(cell: str) -> float:
    text = cell.strip()
    if text.lower() in NULL_TOKENS:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.inf


def parse_numeric_text(cells: Sequence[str | None]) -> FloatArray:
    """float64 from text cells: NULL_TOKENS / None -> NaN, unparseable or +-inf -> +inf."""
    try:
        column = np.array(cells, dtype=np.float64)
    except (ValueError, TypeError):
        column = np.array(
            [math.nan if c is None else _parse_cell(c) for c in cells], dtype=np.float64
        )
    column[np.isinf(column)] = math.inf
    return column


def _text_categories(cells: Sequence[str]) -> ObjectArray:
    column: ObjectArray = np.empty(len(cells), dtype=object)
    column[:] = [c if c != "" else None for c in cells]
    return column


def _take(rows: list[list[str]], index: int) -> list[str]:
    try:
        return list(map(itemgetter(index), rows))
    except IndexError:  # a short row: its absent trailing cells are empty
        return [row[index] if index < len(row) else "" for row in rows]


def _read_csv(
    path: Path,
    stream: BinaryIO,
    numeric: Sequence[str],
    categorical: Sequence[str],
    chunk_rows: int,
    tick: Callable[[], None],
) -> Columns:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ProfileInputError(f"{path}: the file is empty") from None
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        index.setdefault(name, i)
    absent = [n for n in (*numeric, *categorical) if n not in index]
    if absent:
        raise _missing(path, absent, header)
    num_parts: dict[str, list[FloatArray]] = {n: [] for n in numeric}
    cat_parts: dict[str, list[ObjectArray]] = {n: [] for n in categorical}
    rows_total = 0
    while True:
        try:
            rows = [r for r in itertools.islice(reader, chunk_rows) if r]
        except csv.Error as exc:
            raise ProfileInputError(f"{path}: line {reader.line_num}: {exc}") from None
        if not rows:
            break
        for name in numeric:
            num_parts[name].append(parse_numeric_text(_take(rows, index[name])))
        for name in categorical:
            cat_parts[name].append(_text_categories(_take(rows, index[name])))
        rows_total += len(rows)
        tick()
    return _assemble(num_parts, cat_parts, rows_total)


# --- JSON Lines --------------------------------------------------------------------------------


def _records(
    path: Path, stream: BinaryIO, chunk_rows: int
) -> Iterator[tuple[list[Any], list[int]]]:
    """Chunks of (decoded records, their 1-based line numbers); blank lines skipped."""
    decoder = msgspec.json.Decoder()
    numbered = enumerate(stream, start=1)
    while True:
        chunk = [(n, line) for n, line in itertools.islice(numbered, chunk_rows) if line.strip()]
        if not chunk:
            return
        lines = [line for _, line in chunk]
        try:
            records = decoder.decode(b"[" + b",".join(lines) + b"]")
        except msgspec.DecodeError:
            records = []
            for n, line in chunk:
                try:
                    records.append(decoder.decode(line))
                except msgspec.DecodeError as exc:
                    raise ProfileInputError(f"{path}: line {n}: invalid JSON ({exc})") from None
        yield records, [n for n, _ in chunk]


def _features(
    path: Path, records: list[Any], numbers: list[int], keys: Sequence[str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for record, n in zip(records, numbers, strict=True):
        value = record
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, dict):
            where = "the line" if not keys else f"{'.'.join(keys)!r}"
            raise ProfileInputError(f"{path}: line {n}: {where} is not a JSON object")
        out.append(value)
    return out


def _read_jsonl(
    path: Path,
    stream: BinaryIO,
    numeric: Sequence[str],
    categorical: Sequence[str],
    features_path: str,
    chunk_rows: int,
    tick: Callable[[], None],
) -> Columns:
    keys = [k for k in features_path.split(".") if k] if features_path else []
    num_parts: dict[str, list[FloatArray]] = {n: [] for n in numeric}
    cat_parts: dict[str, list[ObjectArray]] = {n: [] for n in categorical}
    seen: set[str] = set()
    rows_total = 0
    for records, numbers in _records(path, stream, chunk_rows):
        features = _features(path, records, numbers, keys)
        for name in (*numeric, *categorical):
            if name not in seen and any(name in f for f in features):
                seen.add(name)
        for name in numeric:
            num_parts[name].append(numeric_column([f.get(name) for f in features]))
        for name in categorical:
            cat_parts[name].append(categorical_column([f.get(name) for f in features]))
        rows_total += len(features)
        tick()
    if rows_total == 0:
        raise ProfileInputError(f"{path}: no JSON record in the file")
    absent = [n for n in (*numeric, *categorical) if n not in seen]
    if absent:
        where = f" at {features_path!r}" if features_path else ""
        listed = ", ".join(repr(n) for n in absent)
        raise ProfileInputError(f"{path}: {listed} not found in any record{where}")
    return _assemble(num_parts, cat_parts, rows_total)


# --- Parquet -----------------------------------------------------------------------------------


def _arrow_numeric(array: Any) -> FloatArray:
    import pyarrow as pa

    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        column = np.asarray(
            array.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False),
            dtype=np.float64,
        ).copy()
        column[np.isinf(column)] = math.inf
        return column
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return parse_numeric_text(array.to_pylist())
    nulls = np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return np.where(nulls, math.nan, math.inf)


def _category_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _arrow_categorical(array: Any) -> ObjectArray:
    column: ObjectArray = np.empty(len(array), dtype=object)
    column[:] = [_category_text(v) for v in array.to_pylist()]
    return column


def _read_parquet(
    path: Path,
    numeric: Sequence[str],
    categorical: Sequence[str],
    chunk_rows: int,
    bar: ProgressBar | None,
) -> Columns:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ProfileInputError(
            f"{path}: reading Parquet needs pyarrow (pip install 'driftmon[parquet]')"
        ) from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError subclasses
        raise ProfileInputError(f"{path}: not a readable Parquet file ({exc})") from None
    with parquet:
        names = list(parquet.schema_arrow.names)
        absent = [n for n in (*numeric, *categorical) if n not in names]
        if absent:
            raise _missing(path, absent, names)
        total = int(parquet.metadata.num_rows)
        if total == 0:
            raise ProfileInputError(f"{path}: the file has no rows")
        if bar is not None:
            bar.total = total
        num_parts: dict[str, list[FloatArray]] = {n: [] for n in numeric}
        cat_parts: dict[str, list[ObjectArray]] = {n: [] for n in categorical}
        rows_total = 0
        wanted = list(dict.fromkeys((*numeric, *categorical)))
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=wanted):
            for name in numeric:
                num_parts[name].append(_arrow_numeric(batch.column(name)))
            for name in categorical:
                cat_parts[name].append(_arrow_categorical(batch.column(name)))
            rows_total += batch.num_rows
            if bar is not None:
                bar.update(rows_total)
    return _assemble(num_parts, cat_parts, rows_total)


# --- entry point -------------------------------------------------------------------------------


def _assemble(
    num_parts: dict[str, list[FloatArray]], cat_parts: dict[str, list[ObjectArray]], rows: int
) -> Columns:
    numeric = {
        n: np.concatenate(p) if p else np.empty(0, dtype=np.float64) for n, p in num_parts.items()
    }
    categorical = {
        n: np.concatenate(p) if p else np.empty(0, dtype=object) for n, p in cat_parts.items()
    }
    return numeric, categorical, rows


def read_columns(
    path: Path,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    fmt: str | None = None,
    features_path: str = "",
    progress: bool | TextIO = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Columns:
    """Stream `path` and return (numeric columns, categorical columns, row count).

    See the module docstring for the formats and cell rules. `fmt` is one of `FORMATS` (then
    a `.gz` suffix still means gzip for csv/jsonl). `progress`: False for none, True for a
    bar on stderr when stderr is a terminal, or a text stream to draw it on. Every returned
    column has exactly `row count` entries. Raises ProfileInputError.
    """
    path = Path(path)
    names = [*numeric, *categorical]
    if not names:
        raise ProfileInputError("no feature column requested")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ProfileInputError(f"feature(s) requested twice: {', '.join(duplicated)}")
    if fmt is None:
        fmt, gzipped = detect_format(path)
    else:
        if fmt not in FORMATS:
            raise ProfileInputError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
        gzipped = path.suffix.lower() == ".gz"
    size = _check_file(path)
    stream = _progress_stream(progress)
    unit = "rows" if fmt == "parquet" else "bytes"
    bar = ProgressBar(size, stream, label=path.name, unit=unit) if stream is not None else None

    if fmt == "parquet":
        result = _read_parquet(path, numeric, categorical, chunk_rows, bar)
    else:
        with path.open("rb") as raw:
            data = cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb")) if gzipped else raw

            def tick() -> None:
                if bar is not None:
                    bar.update(raw.tell())

            try:
                if fmt == "csv":
                    result = _read_csv(path, data, numeric, categorical, chunk_rows, tick)
                else:
                    result = _read_jsonl(
                        path, data, numeric, categorical, features_path, chunk_rows, tick
                    )
            except (OSError, EOFError, zlib.error) as exc:  # bad gzip data, read errors
                raise ProfileInputError(f"{path}: cannot read the file ({exc})") from None
            except UnicodeDecodeError as exc:
                raise ProfileInputError(f"{path}: not UTF-8 text ({exc})") from None
    if result[2] == 0:
        raise ProfileInputError(f"{path}: the file has no data rows")
    if bar is not None:
        bar.update(bar.total)
        bar.close()
    return result


def with_segments(
    profile: ReferenceProfile,
    segment_by: str,
    max_segments: int,
    numeric: Mapping[str, FloatArray],
    categorical: Mapping[str, ObjectArray],
) -> ReferenceProfile:
    """`profile` with the slices of its `max_segments` most frequent `segment_by` values.

    The columns are the ones the profile was fitted from (`read_columns`), the segment
    column among the categorical ones (monitor/segment_slices.py).
    """
    column = categorical[segment_by]
    names = top_segments(column, max_segments)
    bins = [(f.name, f.bins) for f in profile.features]
    slices = fit_slices(segment_by, names, bins, numeric, categorical, column)
    return build_profile(
        profile.model,
        profile.features,
        profile.events,
        model_version=profile.model_version,
        created_at=profile.created_at,
        source=profile.source,
        segments=slices,
        joint=json.loads(profile.joint) if profile.joint else None,
    )
