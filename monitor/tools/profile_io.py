"""Read reference data files into feature columns for `driftmon reference fit`.

`read_columns` streams a CSV, JSON Lines or Parquet file in chunks of rows and returns the
columns `monitor.reference.fit_profile` takes: float64 numeric columns (NaN = missing,
+inf = invalid) and object categorical columns (str, None = missing). Formats come from the
suffix unless `fmt` is given: `.csv`, `.jsonl` / `.ndjson` / `.json-lines` (each also with
`.gz`), `.parquet` / `.pq` (Parquet needs the optional `pyarrow`).

Cell rules, per format:

- CSV (UTF-8, header row required, no (non-empty) name twice in it, blank lines skipped,
  short rows padded with empty cells, at most `MAX_CSV_FIELDS` fields a row):
  numeric cells that are empty or one of `NULL_TOKENS` (case-insensitive, after stripping)
  are missing; cells Python's `float()` cannot parse are invalid, as are +-inf; "nan" is
  missing. Categorical cells are kept as text (a number stays its string form); only an
  empty cell is missing.
- JSON Lines (one JSON object per line; blank lines skipped): the features are the object at
  `features_path` (a dotted path, "" = the record itself; "features" for events of the
  documented shape). Values follow the daemon's decoder exactly (`monitor.decode.numeric_column` and
  `categorical_column`): numbers feed numeric features, strings and booleans categorical
  ones, null or an absent key is missing, any other type is invalid. A number literal beyond
  the float range (`1e400`) is +-inf, as in the daemon, so an invalid value of its feature (and
  ignored in other keys); so is an integer literal of more than 4300 digits (which the daemon
  counts as `invalid_json` when the key is a feature it reads). A line that is not valid JSON
  (nesting too deep included), not an object, or has no object at `features_path` is an error
  naming the line.
- Parquet: numeric columns of integer, floating or decimal type are converted to float64
  (null = missing), string columns are parsed like CSV cells, any other type is invalid.
  Categorical string columns are kept, nulls are missing, booleans become "true"/"false" and
  other values their string form.

A column requested but absent (from the CSV header, from every JSON record, from the Parquet
schema) is an error naming it. A line (CSV: a physical line, in characters; JSON Lines: in
bytes, without its line break) longer than `max_line_bytes` (default: the daemon's default
`kafka.max_message_bytes`, 1 MiB) is an error naming it, read no further, so memory stays
bounded whatever a (gzipped) file expands to: rows are parsed in chunks of at most
`chunk_rows` rows, `_CHUNK_CELLS` CSV cells or `_CHUNK_BYTES` of JSON. Errors are
`ProfileInputError`, a `ReferenceDataError`; they quote at most ~300 characters of the input
(`shorten`, `listing`).

`write_output` writes the profile: see its docstring for how it treats links and devices.
`finite_shortfalls` (numeric columns too sparse to fit) and `invalid_warnings` (features with
more than 5 % invalid values) are the checks `reference fit` reports.

With `progress`, a one-line progress bar (bytes read of the file size, or rows for Parquet;
rate; ETA) is redrawn on the stream at most every 0.1 s, and finished with a newline.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gzip
import io
import json
import math
import os
import stat
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast

import msgspec
import numpy as np
import numpy.typing as npt

from monitor.decode import EventFields, categorical_column, numeric_column
from monitor.errors import MonitorError, ReferenceDataError
from monitor.model import FeatureKind
from monitor.reference import ReferenceProfile, build_profile
from monitor.segment_slices import fit_slices, top_segments

__all__ = [
    "FORMATS",
    "INVALID_WARNING_SHARE",
    "MAX_CSV_FIELDS",
    "MAX_LINE_BYTES",
    "NULL_TOKENS",
    "ProfileInputError",
    "ProfileOutputError",
    "ProgressBar",
    "detect_format",
    "finite_shortfalls",
    "invalid_warnings",
    "listing",
    "output_target",
    "read_columns",
    "shorten",
    "write_output",
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
MAX_LINE_BYTES = EventFields().max_message_bytes
"""Default bound of one input line: the daemon's default `kafka.max_message_bytes` (1 MiB)."""
MAX_CSV_FIELDS = 100_000
"""A CSV row with more fields is an error naming its line."""
_CHUNK_BYTES = 1 << 23
"""JSON Lines: a chunk ends once its lines reach 8 MiB (or `chunk_rows` lines)."""
_CHUNK_CELLS = 1 << 21
"""CSV: a chunk ends once its rows hold 2 Mi cells (or `chunk_rows` rows), ~130 MB of str."""
_QUOTE_CHARS = 100
_LIST_CHARS = 300


class ProfileInputError(ReferenceDataError):
    """The reference data file cannot be read: missing, unknown format, missing column, empty,
    or malformed (the message names the file, and the line or column when known)."""


class ProfileOutputError(MonitorError):
    """The output path exists and is not a regular file (nor a link to one)."""


def shorten(text: str, limit: int = _QUOTE_CHARS) -> str:
    """`text`, or its first `limit` characters, "..." and its length when it is longer."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def listing(items: Sequence[str], limit: int = _LIST_CHARS) -> str:
    """`items` joined by ", ", each `shorten`ed, as many as fit in about `limit` characters
    (at least one), then ", ... N more"; "none" when empty."""
    shown: list[str] = []
    size = 0
    for item in items:
        text = shorten(item)
        if shown and size + len(text) > limit:
            break
        shown.append(text)
        size += len(text) + 2
    rest = len(items) - len(shown)
    return (", ".join(shown) or "none") + (f", ... {rest} more" if rest else "")


def _not_regular(mode: int) -> str:
    """What a non-regular file is, from its `st_mode`: "a directory", "a FIFO", ..."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


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


def check_file(path: Path) -> int:
    """The size of the regular, non-empty file `path` (a link followed); ProfileInputError
    saying what it is otherwise (missing, a directory, a FIFO, a device, empty)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ProfileInputError(f"{path}: no such file") from None
    except OSError as exc:
        raise ProfileInputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = _not_regular(info.st_mode)
        raise ProfileInputError(f"{path}: is {kind}, not a regular file")
    if info.st_size == 0:
        raise ProfileInputError(f"{path}: the file is empty")
    return info.st_size


def _missing(path: Path, names: Sequence[str], available: Sequence[str]) -> ProfileInputError:
    listed = listing([repr(n) for n in names])
    word = "column" if len(names) == 1 else "columns"
    return ProfileInputError(f"{path}: {word} {listed} not found (available: {listing(available)})")


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


def _bounded_lines(path: Path, text: TextIO, max_chars: int) -> Iterator[str]:
    """The lines of `text`; ProfileInputError for one longer than `max_chars` characters
    (without its line break), which is read no further."""
    read = functools.partial(text.readline, max_chars + 2)
    for n, line in enumerate(iter(read, ""), start=1):
        if len(line) > max_chars and len(line.rstrip("\r\n")) > max_chars:
            raise ProfileInputError(
                f"{path}: line {n}: longer than {max_chars} characters (one row is bounded"
                " like one message: kafka.max_message_bytes)"
            )
        yield line


def csv_chunks(
    path: Path, stream: BinaryIO, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES
) -> tuple[list[str], Iterator[list[list[str]]]]:
    """The stripped header and the non-blank rows after it, in chunks of at most `chunk_rows`
    rows or about `_CHUNK_CELLS` cells, to the end of the file (blank lines never end it).
    ProfileInputError naming the line for an empty file, malformed CSV, a line longer than
    `max_line_bytes` characters or a row of more than `MAX_CSV_FIELDS` fields; naming the
    column for a (non-empty, stripped) header name that appears twice, since which of its
    columns is meant cannot be told."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(_bounded_lines(path, text, max_line_bytes))

    def rows_of() -> Iterator[list[str]]:
        try:
            for row in reader:
                if len(row) > MAX_CSV_FIELDS:
                    raise ProfileInputError(
                        f"{path}: line {reader.line_num}: more than {MAX_CSV_FIELDS} fields"
                    )
                yield row
        except csv.Error as exc:
            raise ProfileInputError(f"{path}: line {reader.line_num}: {exc}") from None

    rows = rows_of()
    header = next(rows, None)
    if header is None:
        raise ProfileInputError(f"{path}: the file is empty")
    names = [h.strip() for h in header]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ProfileInputError(
                f"{path}: column {shorten(repr(name))} appears twice in the header"
            )
        if name:  # unnamed columns (trailing commas) can never be requested
            seen.add(name)

    def chunks() -> Iterator[list[list[str]]]:
        chunk: list[list[str]] = []
        cells = 0
        for row in rows:
            if row:
                chunk.append(row)
                cells += len(row)
                if len(chunk) >= chunk_rows or cells >= _CHUNK_CELLS:
                    yield chunk
                    chunk, cells = [], 0
        if chunk:
            yield chunk

    return names, chunks()


def _read_csv(
    path: Path,
    stream: BinaryIO,
    numeric: Sequence[str],
    categorical: Sequence[str],
    chunk_rows: int,
    tick: Callable[[], None],
    max_line_bytes: int,
) -> Columns:
    header, chunks = csv_chunks(path, stream, chunk_rows, max_line_bytes)
    index = {name: i for i, name in enumerate(header)}  # names are unique (`csv_chunks`)
    absent = [n for n in (*numeric, *categorical) if n not in index]
    if absent:
        raise _missing(path, absent, header)
    num_parts: dict[str, list[FloatArray]] = {n: [] for n in numeric}
    cat_parts: dict[str, list[ObjectArray]] = {n: [] for n in categorical}
    rows_total = 0
    for rows in chunks:
        for name in numeric:
            num_parts[name].append(parse_numeric_text(_take(rows, index[name])))
        for name in categorical:
            cat_parts[name].append(_text_categories(_take(rows, index[name])))
        rows_total += len(rows)
        tick()
    return _assemble(num_parts, cat_parts, rows_total)


# --- JSON Lines --------------------------------------------------------------------------------


_JSON_ERRORS = (msgspec.DecodeError, ValueError, RecursionError)
"""What decoding a line raises on bad input (as `monitor.decode._PARSE_ERRORS`): too deep
nesting is a RecursionError, invalid UTF-8 a ValueError."""
_OVERFLOW_DECODER = msgspec.json.Decoder(float_hook=float)


def _int_or_inf(text: str) -> float | int:
    """An integer literal, or +inf when it has more digits than Python parses."""
    try:
        return int(text)
    except ValueError:
        return math.inf


def _no_constant(name: str) -> float:
    """Refuse NaN / Infinity / -Infinity, as msgspec (RFC 8259) does."""
    raise ValueError(f"{name} is not JSON")


def _decode_out_of_range(line: bytes) -> Any:
    """`line`, which msgspec refused only for a number out of range, decoded as the daemon
    does (`float_hook=float`: `1e400` -> inf); an integer of more than 4300 digits becomes
    +inf. ValueError / RecursionError when the line is not valid JSON."""
    try:
        return _OVERFLOW_DECODER.decode(line)
    except msgspec.ValidationError as exc:
        if "out of range" not in str(exc):
            raise
    value = json.loads(line.decode("utf-8"), parse_int=_int_or_inf, parse_constant=_no_constant)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # lone surrogates, as msgspec
    return value


def _decode_line(path: Path, n: int, line: bytes, decoder: msgspec.json.Decoder[Any]) -> Any:
    """One line's JSON value; ProfileInputError naming line `n` when it is not valid JSON."""
    try:
        return decoder.decode(line)
    except msgspec.ValidationError as exc:
        if "out of range" not in str(exc):
            raise ProfileInputError(f"{path}: line {n}: invalid JSON ({exc})") from None
        try:
            return _decode_out_of_range(line)
        except _JSON_ERRORS:
            raise ProfileInputError(f"{path}: line {n}: invalid JSON ({exc})") from None
    except RecursionError:
        raise ProfileInputError(f"{path}: line {n}: invalid JSON (nested too deep)") from None
    except _JSON_ERRORS as exc:
        raise ProfileInputError(f"{path}: line {n}: invalid JSON ({exc})") from None


def _lines(path: Path, stream: BinaryIO, max_line_bytes: int) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines of `stream` with their 1-based numbers, to the end of the file;
    ProfileInputError for a line longer than `max_line_bytes` (without its line break),
    which is read no further."""
    read = functools.partial(stream.readline, max_line_bytes + 2)
    for n, line in enumerate(iter(read, b""), start=1):
        if len(line) > max_line_bytes and len(line.rstrip(b"\r\n")) > max_line_bytes:
            raise ProfileInputError(
                f"{path}: line {n}: longer than {max_line_bytes} bytes (the daemon's"
                " kafka.max_message_bytes refuses such a message)"
            )
        if not line.isspace():
            yield n, line


def _records(
    path: Path, stream: BinaryIO, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[list[Any], list[int]]]:
    """Chunks of (decoded records, their 1-based line numbers) of at most `chunk_rows` lines
    or about `_CHUNK_BYTES`; blank lines skipped. ProfileInputError naming the line for a
    line too long (`_lines`) or not valid JSON (`_decode_line`)."""
    decoder = msgspec.json.Decoder()
    lines = _lines(path, stream, max_line_bytes)
    while True:
        chunk: list[bytes] = []
        numbers: list[int] = []
        size = 0
        for n, line in lines:
            chunk.append(line)
            numbers.append(n)
            size += len(line)
            if len(chunk) >= chunk_rows or size >= _CHUNK_BYTES:
                break
        if not chunk:
            return
        try:
            records = decoder.decode(b"[" + b",".join(chunk) + b"]")
        except _JSON_ERRORS:
            records = []
        if len(records) != len(chunk):  # invalid, or a line of two values ("{...}, {...}")
            records = [
                _decode_line(path, n, line, decoder) for n, line in zip(numbers, chunk, strict=True)
            ]
        yield records, numbers


def _features(
    path: Path, records: list[Any], numbers: list[int], keys: Sequence[str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for record, n in zip(records, numbers, strict=True):
        value = record
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, dict):
            where = "the line" if not keys else shorten(repr(".".join(keys)))
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
    max_line_bytes: int,
) -> Columns:
    keys = [k for k in features_path.split(".") if k] if features_path else []
    num_parts: dict[str, list[FloatArray]] = {n: [] for n in numeric}
    cat_parts: dict[str, list[ObjectArray]] = {n: [] for n in categorical}
    seen: set[str] = set()
    rows_total = 0
    for records, numbers in _records(path, stream, chunk_rows, max_line_bytes):
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
        where = f" at {shorten(repr(features_path))}" if features_path else ""
        listed = listing([repr(n) for n in absent])
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
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Columns:
    """Stream `path` and return (numeric columns, categorical columns, row count).

    See the module docstring for the formats and cell rules. `fmt` is one of `FORMATS` (then
    a `.gz` suffix still means gzip for csv/jsonl). `progress`: False for none, True for a
    bar on stderr when stderr is a terminal, or a text stream to draw it on. `max_line_bytes`
    bounds one line (see the module docstring). Every returned column has exactly `row count`
    entries. Raises ProfileInputError.
    """
    path = Path(path)
    names = [*numeric, *categorical]
    if not names:
        raise ProfileInputError("no feature column requested")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ProfileInputError(f"feature(s) requested twice: {listing(duplicated)}")
    if fmt is None:
        fmt, gzipped = detect_format(path)
    else:
        if fmt not in FORMATS:
            raise ProfileInputError(
                f"unknown format {shorten(repr(fmt))}; valid: {', '.join(FORMATS)}"
            )
        gzipped = path.suffix.lower() == ".gz"
    size = check_file(path)
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
                    result = _read_csv(
                        path, data, numeric, categorical, chunk_rows, tick, max_line_bytes
                    )
                else:
                    result = _read_jsonl(
                        path,
                        data,
                        numeric,
                        categorical,
                        features_path,
                        chunk_rows,
                        tick,
                        max_line_bytes,
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


# --- checks of the fitted data -----------------------------------------------------------------


INVALID_WARNING_SHARE = 0.05
"""`invalid_warnings` reports a feature when more than this share of its rows is invalid."""
_INVALID_MEANING = {
    FeatureKind.NUMERIC: "not numbers",
    FeatureKind.CATEGORICAL: "not strings or booleans, or unusable strings",
}


def finite_shortfalls(numeric: Mapping[str, FloatArray], min_values: int) -> dict[str, int]:
    """The numeric columns with fewer than `min_values` finite values, with that count (in
    the order of `numeric`): features `fit_profile(min_values=...)` would refuse."""
    counts = {name: int(np.isfinite(column).sum()) for name, column in numeric.items()}
    return {name: n for name, n in counts.items() if n < min_values}


def invalid_warnings(profile: ReferenceProfile, share: float = INVALID_WARNING_SHARE) -> list[str]:
    """One line per feature of `profile` whose invalid values (the last slot of its counts)
    are more than `share` of its rows (all its counts), in the profile's order: "feature 'x':
    9,500 of 10,000 values (95 %) are invalid (not numbers)". The name is `shorten`ed."""
    lines: list[str] = []
    for feature in profile.features:
        total = sum(feature.counts)
        invalid = feature.counts[-1]
        if total and invalid > share * total:
            lines.append(
                f"feature {shorten(repr(feature.name))}: {invalid:,} of {total:,} values "
                f"({100 * invalid / total:.3g} %) are invalid ({_INVALID_MEANING[feature.kind]})"
            )
    return lines


# --- output ------------------------------------------------------------------------------------


def output_target(path: Path) -> Path:
    """The file `write_output(path, ...)` replaces: `path`, or for a symbolic link its final
    target (the link itself is kept). ProfileOutputError when that exists and is not a
    regular file (a directory, a device such as /dev/null, a FIFO, ...)."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise ProfileOutputError(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise ProfileOutputError(f"{path}: is {_not_regular(mode)}, not a regular file")
    return target


def write_output(path: Path, text: str) -> Path:
    """Write `text` (UTF-8) to `output_target(path)` atomically and return that target.

    The text goes to a new temporary file created exclusively (`tempfile.mkstemp`, never a
    pre-existing path) in the target's directory (made if missing), which then replaces the
    target; it gets the mode of the file it replaces, or 0666 minus the umask. On failure the
    temporary file is removed. ProfileOutputError (see `output_target`) or OSError.
    """
    target = output_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:64]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            os.fchmod(out.fileno(), mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target
