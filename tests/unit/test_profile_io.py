"""Tests for monitor.tools.profile_io: CSV / JSON Lines / Parquet columns, errors, progress bar."""

from __future__ import annotations

import gzip
import io
import math
import os
import stat
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.decode import INVALID_CATEGORY
from monitor.errors import ReferenceDataError
from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import fit_profile
from monitor.tools import profile_io
from monitor.tools.profile_discover import discover_features
from monitor.tools.profile_io import (
    ProfileInputError,
    ProfileOutputError,
    ProgressBar,
    detect_format,
    finite_shortfalls,
    invalid_warnings,
    listing,
    read_columns,
    shorten,
    write_output,
)
from monitor.tools.scenarios import DEMO_FEATURES, EventGenerator

NAN, INF = math.nan, math.inf
NUMERIC = [f.name for f in DEMO_FEATURES if f.kind is FeatureKind.NUMERIC]
CATEGORICAL = [f.name for f in DEMO_FEATURES if f.kind is FeatureKind.CATEGORICAL]

CSV_TEXT = (
    "\ufeffid, amount ,country,unused\n"
    "1,12.5,GB,x\n"
    "2,,US,x\n"
    "\n"
    "3,NA,,x\n"
    "4,abc,42,x\n"
    "5,-inf,FR,x\n"
    "6, 7 ,DE\n"
    "7,null\n"
)


def assert_floats(actual: np.ndarray, expected: list[float]) -> None:
    """float64 arrays equal, NaN matching NaN."""
    assert actual.dtype == np.float64
    np.testing.assert_array_equal(actual, np.asarray(expected, dtype=np.float64))


def write_jsonl(path: Path, records: list[Any], gz: bool = False) -> None:
    """One JSON document per line, optionally gzipped."""
    data = b"".join(msgspec.json.encode(r) + b"\n" for r in records)
    path.write_bytes(gzip.compress(data) if gz else data)


def test_csv_cells_follow_the_documented_rules(tmp_path: Path) -> None:
    """CSV: empty/NA/null -> NaN, text and -inf -> +inf; categorical text kept, empty -> None."""
    path = tmp_path / "ref.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    numeric, categorical, rows = read_columns(path, ["amount", "id"], ["country"])
    assert rows == 7
    assert_floats(numeric["amount"], [12.5, NAN, NAN, INF, INF, 7.0, NAN])
    assert_floats(numeric["id"], [1, 2, 3, 4, 5, 6, 7])
    assert categorical["country"].dtype == object
    assert categorical["country"].tolist() == ["GB", "US", None, "42", "FR", "DE", None]
    assert set(numeric) == {"amount", "id"}
    assert set(categorical) == {"country"}


def test_gzip_csv_reads_like_plain_csv(tmp_path: Path) -> None:
    """A .csv.gz file gives the same columns as the plain file."""
    plain, packed = tmp_path / "ref.csv", tmp_path / "ref.csv.gz"
    plain.write_text(CSV_TEXT, encoding="utf-8")
    packed.write_bytes(gzip.compress(CSV_TEXT.encode()))
    a = read_columns(plain, ["amount"], ["country"])
    b = read_columns(packed, ["amount"], ["country"])
    assert_floats(b[0]["amount"], a[0]["amount"].tolist())
    assert b[1]["country"].tolist() == a[1]["country"].tolist()
    assert b[2] == a[2]


def test_small_chunks_give_the_same_columns(tmp_path: Path) -> None:
    """Reading in chunks of 7 rows assembles exactly the columns of a single-chunk read."""
    path = tmp_path / "big.csv"
    lines = ["x,c"] + [f"{i * 0.5},{'abc'[i % 3]}" for i in range(100)]
    path.write_text("\n".join(lines) + "\n")
    small = read_columns(path, ["x"], ["c"], chunk_rows=7)
    whole = read_columns(path, ["x"], ["c"])
    assert small[2] == whole[2] == 100
    assert_floats(small[0]["x"], [i * 0.5 for i in range(100)])
    assert small[1]["c"].tolist() == whole[1]["c"].tolist()


def test_jsonl_top_level_follows_the_decoder_rules(tmp_path: Path) -> None:
    """Top-level JSON Lines: null/absent -> missing, wrong types -> invalid, bools -> text."""
    path = tmp_path / "ref.jsonl"
    records = [
        {"amount": 1.5, "country": "GB", "flag": True},
        {"amount": None, "country": None},
        {"amount": "2.5", "country": 7, "flag": False},
        {"amount": True, "country": "US", "flag": "yes"},
        {"amount": 3},
    ]
    write_jsonl(path, records)
    path.write_bytes(path.read_bytes() + b"\n   \n")  # trailing blank lines are skipped
    numeric, categorical, rows = read_columns(path, ["amount"], ["country", "flag"])
    assert rows == 5
    assert_floats(numeric["amount"], [1.5, NAN, INF, INF, 3.0])
    assert categorical["country"].tolist() == ["GB", None, INVALID_CATEGORY, "US", None]
    assert categorical["flag"].tolist() == ["true", None, "false", "yes", None]


def test_jsonl_events_with_nested_features_match_the_generator(tmp_path: Path) -> None:
    """Documented-shape events read with features_path="features" equal the generated columns."""
    generator = EventGenerator("fraud", seed=4)
    cols = EventGenerator("fraud", seed=4).columns(3000, 1e9, 10.0)
    path = tmp_path / "events.ndjson.gz"
    write_jsonl(path, generator.events(3000, 1e9, 10.0), gz=True)
    numeric, categorical, rows = read_columns(
        path, NUMERIC, CATEGORICAL, features_path="features", chunk_rows=1000
    )
    assert rows == 3000
    for name in NUMERIC:
        np.testing.assert_array_equal(numeric[name], cols.numeric[name])
    for name in CATEGORICAL:
        assert categorical[name].tolist() == cols.categorical[name].tolist()
    profile = fit_profile("fraud", DEMO_FEATURES, numeric, categorical)
    assert profile.events == 3000
    assert [f.name for f in profile.features] == NUMERIC + CATEGORICAL


def test_jsonl_dotted_features_path(tmp_path: Path) -> None:
    """A dotted features_path walks nested objects."""
    path = tmp_path / "ref.json-lines"
    write_jsonl(path, [{"payload": {"features": {"x": 1}}}, {"payload": {"features": {"x": 2}}}])
    numeric, _, rows = read_columns(path, ["x"], [], features_path="payload.features")
    assert rows == 2
    assert_floats(numeric["x"], [1.0, 2.0])


def make_parquet(path: Path) -> None:
    """A Parquet file with integer, float, string, bool and dictionary columns."""
    table = pa.table(
        {
            "count": pa.array([1, None, 3, 4], type=pa.int64()),
            "amount": pa.array([1.5, float("-inf"), None, 2.0], type=pa.float64()),
            "text_num": pa.array(["1.5", "", "bad", None]),
            "flag": pa.array([True, False, None, True]),
            "country": pa.array(["GB", None, "US", "GB"]).dictionary_encode(),
            "zip": pa.array([75001, 10115, None, 2000], type=pa.int32()),
        }
    )
    pq.write_table(table, path, row_group_size=2)


def test_parquet_columns_are_converted_by_type(tmp_path: Path) -> None:
    """Parquet: numbers -> float64, strings parsed, bools invalid; categories as text."""
    path = tmp_path / "ref.parquet"
    make_parquet(path)
    numeric, categorical, rows = read_columns(
        path, ["count", "amount", "text_num", "flag"], ["country", "zip"]
    )
    assert rows == 4
    assert_floats(numeric["count"], [1, NAN, 3, 4])
    assert_floats(numeric["amount"], [1.5, INF, NAN, 2.0])
    assert_floats(numeric["text_num"], [1.5, NAN, INF, NAN])
    assert_floats(numeric["flag"], [INF, INF, NAN, INF])
    assert categorical["country"].tolist() == ["GB", None, "US", "GB"]
    assert categorical["zip"].tolist() == ["75001", "10115", None, "2000"]


def test_parquet_boolean_categorical_becomes_true_false(tmp_path: Path) -> None:
    """A boolean Parquet column read as categorical gives "true"/"false"/None."""
    path = tmp_path / "ref.pq"
    make_parquet(path)
    _, categorical, _ = read_columns(path, [], ["flag"])
    assert categorical["flag"].tolist() == ["true", "false", None, "true"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.csv", ("csv", False)),
        ("a.CSV.gz", ("csv", True)),
        ("a.jsonl", ("jsonl", False)),
        ("a.ndjson.gz", ("jsonl", True)),
        ("a.json-lines", ("jsonl", False)),
        ("a.parquet", ("parquet", False)),
    ],
)
def test_detect_format_from_suffix(name: str, expected: tuple[str, bool]) -> None:
    """The format and gzip flag come from the file name's suffixes."""
    assert detect_format(Path(name)) == expected


def test_explicit_format_overrides_the_suffix(tmp_path: Path) -> None:
    """fmt="csv" reads a file whose name says nothing about its format."""
    path = tmp_path / "reference.data"
    path.write_text("x\n1\n2\n")
    numeric, _, rows = read_columns(path, ["x"], [], fmt="csv")
    assert rows == 2
    assert_floats(numeric["x"], [1.0, 2.0])


@pytest.mark.parametrize(
    ("filename", "content", "kwargs", "message"),
    [
        ("absent.csv", None, {}, "no such file"),
        ("data.txt", b"x\n1\n", {}, "cannot tell the format"),
        ("data.parquet.gz", b"x", {}, "cannot tell the format"),
        ("data.csv", b"x\n1\n", {"fmt": "xml"}, "unknown format 'xml'"),
        ("empty.csv", b"", {}, "empty"),
        ("header.csv", b"x,country\n", {}, "no data rows"),
        ("blank.jsonl", b"\n\n", {}, "no JSON record"),
        ("bad.jsonl", b'{"x": 1}\n{"x": \n', {}, "line 2: invalid JSON"),
        ("scalar.jsonl", b'{"x": 1}\n\n[1]\n', {}, "line 3: the line is not a JSON object"),
        ("events.jsonl", b'{"features": 3}\n', {"features_path": "features"}, "line 1: 'features'"),
        ("bad.csv.gz", b"not gzip at all", {}, "cannot read the file"),
        ("latin.csv", "x,country\n1,Zürich\n".encode("latin-1"), {}, "not UTF-8"),
        ("not.parquet", b"PAR1 but not really", {}, "not a readable Parquet file"),
    ],
)
def test_unusable_inputs_raise_clear_errors(
    tmp_path: Path, filename: str, content: bytes | None, kwargs: dict[str, Any], message: str
) -> None:
    """Each unusable input raises ProfileInputError (a ReferenceDataError) with a clear cause."""
    path = tmp_path / filename
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ProfileInputError, match=message) as info:
        read_columns(path, ["x"], ["country"], **kwargs)
    assert isinstance(info.value, ReferenceDataError)
    assert "\n" not in str(info.value)


def test_missing_csv_column_is_named(tmp_path: Path) -> None:
    """A requested column absent from the CSV header is named, with the available ones."""
    path = tmp_path / "ref.csv"
    path.write_text(CSV_TEXT)
    with pytest.raises(ProfileInputError, match=r"column 'age' not found \(available: id, amount"):
        read_columns(path, ["amount", "age"], ["country"])


def test_missing_jsonl_column_is_named(tmp_path: Path) -> None:
    """A feature no JSON record has is named; present-but-null counts as present."""
    path = tmp_path / "ref.jsonl"
    write_jsonl(path, [{"features": {"x": None}}, {"features": {"x": 2}}])
    numeric, _, _ = read_columns(path, ["x"], [], features_path="features")
    assert_floats(numeric["x"], [NAN, 2.0])
    with pytest.raises(ProfileInputError, match="'device' not found in any record at 'features'"):
        read_columns(path, ["x"], ["device"], features_path="features")


def test_missing_parquet_column_is_named(tmp_path: Path) -> None:
    """A requested column absent from the Parquet schema is named."""
    path = tmp_path / "ref.parquet"
    make_parquet(path)
    with pytest.raises(ProfileInputError, match="columns 'age', 'device' not found"):
        read_columns(path, ["amount", "age"], ["device"])


def test_requesting_nothing_or_a_name_twice_is_an_error(tmp_path: Path) -> None:
    """No requested column, or one name both numeric and categorical, is refused."""
    path = tmp_path / "ref.csv"
    path.write_text(CSV_TEXT)
    with pytest.raises(ProfileInputError, match="no feature column"):
        read_columns(path, [], [])
    with pytest.raises(ProfileInputError, match="requested twice: amount"):
        read_columns(path, ["amount"], ["amount"])


def test_progress_bar_is_drawn_on_a_given_stream(tmp_path: Path) -> None:
    """progress=<stream> draws a bar ending at 100 % of the file size, then a newline."""
    path = tmp_path / "ref.csv"
    path.write_text("x\n" + "".join(f"{i}\n" for i in range(20_000)))
    size = path.stat().st_size
    out = io.StringIO()
    read_columns(path, ["x"], [], progress=out, chunk_rows=1000)
    text = out.getvalue()
    assert text.startswith("\rref.csv")
    assert text.endswith("\n")
    final = text.rstrip("\n").split("\r")[-1]
    assert "100% |####################|" in final
    assert f"{size / 1000:.1f} kB/{size / 1000:.1f} kB" in final
    assert "ETA 0s" in final


def test_parquet_progress_counts_rows(tmp_path: Path) -> None:
    """For Parquet the bar counts rows out of the row count in the file metadata."""
    path = tmp_path / "ref.parquet"
    make_parquet(path)
    out = io.StringIO()
    read_columns(path, ["amount"], [], progress=out)
    assert "4 rows/4 rows" in out.getvalue()


def test_progress_true_stays_quiet_when_stderr_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """progress=True draws nothing when stderr is not a TTY (as under pytest capture)."""
    path = tmp_path / "ref.csv"
    path.write_text(CSV_TEXT)
    assert not sys.stderr.isatty()
    read_columns(path, ["amount"], [], progress=True)
    assert capsys.readouterr().err == ""


def test_progress_bar_redraws_at_most_every_tenth_of_a_second() -> None:
    """Updates closer than 0.1 s to the last draw are not drawn; rate and ETA are computed."""
    now = [0.0]
    out = io.StringIO()
    bar = ProgressBar(1000, out, label="f", clock=lambda: now[0])
    for t, done in ((0.0, 0), (0.05, 50), (0.09, 90), (0.15, 150), (0.2, 200), (1.0, 500)):
        now[0] = t
        bar.update(done)
    assert bar.draws == 3  # at 0.0, 0.15 and 1.0
    last = out.getvalue().split("\r")[-1]
    assert last.startswith("f   50% |##########          | 500 B/1.0 kB  500 B/s  ETA 1s")
    now[0] = 2.0
    bar.update(1000)
    bar.close()
    assert out.getvalue().split("\r")[-1].startswith("f  100%")
    assert out.getvalue().endswith("\n")


def test_deeply_nested_jsonl_line_is_an_invalid_json_error(tmp_path: Path) -> None:
    """A line nested 1,000 deep is one invalid-JSON error naming it, for fit and discovery."""
    path = tmp_path / "deep.jsonl"
    path.write_text('{"x": 1}\n' + '{"y":' * 1000 + "1" + "}" * 1000 + "\n")
    with pytest.raises(ProfileInputError, match=r"line 2: invalid JSON \(nested too deep\)"):
        read_columns(path, ["x"], [])
    with pytest.raises(ProfileInputError, match=r"line 2: invalid JSON \(nested too deep\)"):
        discover_features(path, max_features=10)


def test_runs_of_blank_lines_longer_than_a_chunk_do_not_end_the_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blank lines are skipped to the end of the file, however many follow each other."""
    blanks = "\n" * 20
    jsonl, csv_path = tmp_path / "gap.jsonl", tmp_path / "gap.csv"
    jsonl.write_text(blanks + '{"x": 1}\n' + blanks + '{"x": 2}\n{"x": 3}\n' + blanks)
    csv_path.write_text("x\n" + blanks + "1\n" + blanks + "2\n3\n" + blanks)
    monkeypatch.setattr("monitor.tools.profile_discover.DEFAULT_CHUNK_ROWS", 4)
    for path in (jsonl, csv_path):
        numeric, _, rows = read_columns(path, ["x"], [], chunk_rows=4)
        assert rows == 3
        assert_floats(numeric["x"], [1.0, 2.0, 3.0])
        assert [s.name for s in discover_features(path, max_features=10)] == ["x"]


def test_a_line_of_two_json_values_is_invalid_not_two_rows(tmp_path: Path) -> None:
    """`{...}, {...}` on one line is invalid JSONL (the chunk's joined parse read it as two
    rows, and every line number after it was off by one)."""
    path = tmp_path / "two.jsonl"
    path.write_text('{"x": 1}\n{"x": 2}, {"x": 3}\n{"x": 4}\n')
    with pytest.raises(ProfileInputError, match="line 2: invalid JSON"):
        read_columns(path, ["x"], [])


def test_a_gzipped_line_beyond_the_bound_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    """A .gz holding one 16 MiB line is refused, naming the line, without holding the line."""
    jsonl, csv_path = tmp_path / "bomb.jsonl.gz", tmp_path / "bomb.csv.gz"
    jsonl.write_bytes(gzip.compress(b'{"x": 1}\n{"x": 1, "s": "' + b"a" * (16 << 20) + b'"}\n'))
    csv_path.write_bytes(gzip.compress(b"x,y\n1,2\n1," + b"1," * (8 << 20) + b"\n"))
    for path, message in (
        (jsonl, "line 2: longer than 1048576 bytes"),
        (csv_path, "line 3: longer"),
    ):
        tracemalloc.start()
        try:
            with pytest.raises(ProfileInputError, match=message):
                read_columns(path, ["x"], [])
            with pytest.raises(ProfileInputError, match=message):
                discover_features(path, max_features=10)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 << 20


def test_csv_rows_with_too_many_fields_and_chunk_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CSV row beyond MAX_CSV_FIELDS is refused; cell and byte budgets only split chunks."""
    path = tmp_path / "wide.csv"
    path.write_text("x,y\n1,2\n3,4,5,6\n")
    monkeypatch.setattr(profile_io, "MAX_CSV_FIELDS", 3)
    with pytest.raises(ProfileInputError, match="line 3: more than 3 fields"):
        read_columns(path, ["x"], [])
    monkeypatch.setattr(profile_io, "MAX_CSV_FIELDS", 4)
    monkeypatch.setattr(profile_io, "_CHUNK_CELLS", 3)
    monkeypatch.setattr(profile_io, "_CHUNK_BYTES", 5)
    assert_floats(read_columns(path, ["x"], [])[0]["x"], [1.0, 3.0])
    jsonl = tmp_path / "small.jsonl"
    write_jsonl(jsonl, [{"x": i} for i in range(5)])
    chunks = list(profile_io._records(jsonl, io.BytesIO(jsonl.read_bytes()), 1000))
    assert [numbers for _, numbers in chunks] == [[1], [2], [3], [4], [5]]


def test_error_messages_quote_at_most_about_300_characters(tmp_path: Path) -> None:
    """Long column and feature names are cut with an ellipsis and counted in messages."""
    path = tmp_path / "names.csv"
    names = [f"col{i}_" + "k" * 40_000 for i in range(20)]
    path.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    wanted = "f" * 100_000
    with pytest.raises(ProfileInputError) as info:
        read_columns(path, [wanted], [])
    message = str(info.value)
    assert len(message) < 300 + 200 + len(str(path))
    assert "(100002 characters)" in message and "... 18 more)" in message
    assert shorten("abc") == "abc" and listing([]) == "none"
    assert listing(["a", "b", "c"], limit=3) == "a, ... 2 more"


def test_a_directory_or_fifo_input_says_what_it_is(tmp_path: Path) -> None:
    """A directory or FIFO given as data is named as such, by fit and by discovery."""
    folder, fifo = tmp_path / "dir.jsonl", tmp_path / "fifo.jsonl"
    folder.mkdir()
    os.mkfifo(fifo)
    for path, kind in ((folder, "a directory"), (fifo, "a FIFO")):
        with pytest.raises(ProfileInputError, match=f"is {kind}, not a regular file"):
            read_columns(path, ["x"], [])
        with pytest.raises(ProfileInputError, match=f"is {kind}, not a regular file"):
            discover_features(path, max_features=10)


def test_out_of_range_numbers_are_invalid_values_as_in_the_daemon(tmp_path: Path) -> None:
    """1e400 and a 5,000-digit integer are invalid values of their feature, ignored elsewhere."""
    path = tmp_path / "overflow.jsonl"
    huge = "1" + "0" * 5000
    path.write_text(
        '{"x": 1.5, "c": "a"}\n'
        '{"x": 1e400, "c": 1e400, "other": -1e400}\n'
        f'{{"x": {huge}, "c": {huge}, "other": {huge}}}\n'
        '{"x": 2, "c": "b", "other": 18446744073709551616}\n'
    )
    numeric, categorical, rows = read_columns(path, ["x"], ["c"])
    assert rows == 4
    assert_floats(numeric["x"], [1.5, INF, INF, 2.0])
    assert categorical["c"].tolist() == ["a", INVALID_CATEGORY, INVALID_CATEGORY, "b"]
    path.write_text('{"x": 1e400, "y": NaN}\n')
    with pytest.raises(ProfileInputError, match="line 1: invalid JSON"):
        read_columns(path, ["x"], [])


def test_write_output_refuses_non_regular_files_and_never_follows_a_planted_path(
    tmp_path: Path,
) -> None:
    """A FIFO output is refused untouched; a link's target is replaced; no planted path is used."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(ProfileOutputError, match="is a FIFO, not a regular file"):
        write_output(fifo, "{}")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "ref.json"
    for planted in ("ref.json.tmp", ".ref.json.tmp"):
        (tmp_path / planted).symlink_to(victim)
    target = tmp_path / "real.json"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert write_output(out, "{}") == out
    assert write_output(link, '{"a": 1}') == target
    assert out.read_text() == "{}" and victim.read_text() == "precious"
    assert link.is_symlink() and target.read_text() == '{"a": 1}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == [
        ".ref.json.tmp",
        "ref.json.tmp",
    ]


def test_a_csv_header_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    """`a,b,a` is an error naming `a`, not its first column used; blank names may repeat."""
    path = tmp_path / "dup.csv"
    path.write_text("a,b, a \n1,2,100\n")
    with pytest.raises(
        ProfileInputError, match=r"dup\.csv: column 'a' appears twice in the header$"
    ):
        read_columns(path, ["a"], [])
    path.write_text("a,b,,\n1,x,,\n")
    numeric, categorical, _ = read_columns(path, ["a"], ["b"])
    assert_floats(numeric["a"], [1.0])
    assert list(categorical["b"]) == ["x"]


def test_finite_shortfalls_names_the_columns_too_sparse_to_fit() -> None:
    """Columns with fewer than `min_values` finite values are returned with their count."""
    sparse = np.array([1.0, NAN, INF, 2.0])
    dense = np.arange(5, dtype=np.float64)
    assert finite_shortfalls({"s": sparse, "d": dense}, 5) == {"s": 2}


def test_invalid_warnings_report_features_over_5_percent_invalid() -> None:
    """A feature with more than 5 % invalid values gets one line; 5 % exactly gets none."""
    numeric = {
        "x": np.array([*range(500), *[INF] * 9_500], dtype=np.float64),
        "y": np.array([*range(95), *[INF] * 5], dtype=np.float64),
    }
    categorical = {"c": np.array(["a", INVALID_CATEGORY, None, "b"], dtype=object)}
    specs = [
        FeatureSpec("x", FeatureKind.NUMERIC),
        FeatureSpec("y", FeatureKind.NUMERIC),
        FeatureSpec("c", FeatureKind.CATEGORICAL),
    ]
    profile = fit_profile("m", specs, numeric, categorical)
    assert invalid_warnings(profile) == [
        "feature 'x': 9,500 of 10,000 values (95 %) are invalid (not numbers)",
        "feature 'c': 1 of 4 values (25 %) are invalid "
        "(not strings or booleans, or unusable strings)",
    ]
