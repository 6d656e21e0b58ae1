"""`driftmon reference fit --features auto`: the daemon's discovery rules applied to a file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from monitor.reference import profile_from_json
from monitor.tools.profile_discover import discover_features
from monitor.tools.profile_io import ProfileInputError
from tests.support.daemon_harness import run_cli

N = 600


def rows(seed: int = 1) -> list[dict[str, object]]:
    """Rows with 2 numeric, 1 text, 1 bool, 1 mostly-numeric and one one-off name each."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, object]] = []
    for i in range(N):
        row: dict[str, object] = {
            "amount": round(float(rng.lognormal(3, 1)), 2),
            "age": int(rng.integers(18, 90)),
            "country": str(rng.choice(["GB", "FR", "DE"])),
            "vip": bool(i % 3 == 0),
            "mostly": "n/a?" if i % 10 == 0 else float(i),
            f"once_{i}": 1,
        }
        if i % 7 == 0:
            del row["age"]
        out.append(row)
    return out


EXPECTED = {
    "amount": "numeric",
    "age": "numeric",
    "mostly": "numeric",
    "country": "categorical",
    "vip": "categorical",
}


def kinds(path: Path, **kw: object) -> dict[str, str]:
    """{name: kind} discovered in `path`."""
    return {s.name: s.kind.value for s in discover_features(path, max_features=100, **kw)}  # type: ignore[arg-type]


def test_json_lines_kinds_follow_the_values_and_one_offs_are_left_out(tmp_path: Path) -> None:
    """JSON Lines under a features path: kinds by majority, one-off names never features."""
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"features": r}) + "\n" for r in rows()))
    assert kinds(path, features_path="features") == EXPECTED
    assert set(kinds(path, features_path="features", exclude=("a*",))) == {
        "mostly",
        "country",
        "vip",
    }


def test_csv_cells_are_numbers_when_they_parse_and_text_otherwise(tmp_path: Path) -> None:
    """CSV: finite numbers numeric, other text categorical, null tokens missing."""
    path = tmp_path / "train.csv"
    data = rows()
    names = ["amount", "age", "country", "vip", "mostly"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for row in data:
            writer.writerow([row.get(n, "") for n in names])
    assert kinds(path) == EXPECTED


def test_parquet_columns_take_their_type(tmp_path: Path) -> None:
    """Parquet: numeric types numeric, strings and bools categorical, nested types ignored."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "amount": [1.5, 2.5, None] * 200,
            "age": [30, 40, 50] * 200,
            "country": ["GB", "FR", None] * 200,
            "vip": [True, False, True] * 200,
            "tags": [[1], [2], []] * 200,
        }
    )
    path = tmp_path / "train.parquet"
    pq.write_table(table, path)
    assert kinds(path) == {
        "amount": "numeric",
        "age": "numeric",
        "country": "categorical",
        "vip": "categorical",
    }


def test_a_file_without_features_is_an_error(tmp_path: Path) -> None:
    """Only one-off names: nothing to monitor, a clear error."""
    path = tmp_path / "junk.jsonl"
    path.write_text("".join(json.dumps({f"k{i}": i}) + "\n" for i in range(300)))
    with pytest.raises(ProfileInputError, match="no feature found in 300 rows"):
        kinds(path)


def test_the_cli_fits_a_profile_of_the_discovered_features(tmp_path: Path) -> None:
    """`reference fit --features auto --max-features 3 --exclude vip`: the 3 most frequent."""
    data = tmp_path / "events.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    out = tmp_path / "ref.json"
    result = run_cli(
        "reference",
        "fit",
        str(data),
        "--model",
        "m",
        "--features",
        "auto",
        "--max-features",
        "3",
        "--exclude",
        "vip",
        "-o",
        str(out),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    assert "discovered 2 numeric and 1 categorical features" in result.stdout
    profile = profile_from_json(out.read_text())
    # age is absent from 1 row in 7: the 3 most frequent are amount, mostly, country
    assert {f.name: f.kind.value for f in profile.features} == {
        "amount": "numeric",
        "mostly": "numeric",
        "country": "categorical",
    }


def sparse_events(path: Path, *, with_dense: bool = True) -> None:
    """2,000 JSON Lines rows: `coupon` in 2 % of them (40 values), plus amount and country."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(2000):
        row: dict[str, object] = (
            {"amount": float(rng.normal()), "country": "ABC"[i % 3]} if with_dense else {}
        )
        if i % 50 == 0:
            row["coupon"] = float(rng.random())
        lines.append(json.dumps(row) + "\n")
    path.write_text("".join(lines))


def fit_cli(data: Path, out: Path, features: str) -> tuple[int, str]:
    """Exit code and stderr of `reference fit DATA --model m --features FEATURES -o OUT`."""
    result = run_cli(
        "reference", "fit", str(data), "--model", "m", "--features", features, "-o", str(out)
    )
    return result.returncode, result.stderr


def test_auto_leaves_out_a_discovered_feature_too_sparse_to_fit(tmp_path: Path) -> None:
    """With --features auto a feature of 40 finite values is left out with one line; exit 0."""
    data, out = tmp_path / "sparse.jsonl", tmp_path / "ref.json"
    sparse_events(data)
    code, stderr = fit_cli(data, out, "auto")
    assert (code, stderr) == (
        0,
        "driftmon reference fit: feature 'coupon' left out: 40 finite values, "
        "at least 50 are needed\n",
    )
    profile = profile_from_json(out.read_text())
    assert sorted(f.name for f in profile.features) == ["amount", "country"]


def test_auto_with_every_feature_too_sparse_exits_2_and_explicit_ones_are_refused(
    tmp_path: Path,
) -> None:
    """Nothing left after leaving out sparse features exits 2; an explicit sparse one exits 2."""
    only, out = tmp_path / "only.jsonl", tmp_path / "ref.json"
    sparse_events(only, with_dense=False)
    code, stderr = fit_cli(only, out, "auto")
    assert code == 2
    assert stderr.splitlines() == [
        "driftmon reference fit: feature 'coupon' left out: 40 finite values, "
        "at least 50 are needed",
        f"driftmon reference fit: {only}: no discovered feature is left to fit",
    ]
    both = tmp_path / "both.jsonl"
    sparse_events(both)
    code, stderr = fit_cli(both, out, "amount:numeric,coupon:numeric")
    assert code == 2
    assert "'coupon': only 40 finite values, at least 50 are needed" in stderr
    assert not out.exists()


def test_a_csv_header_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    """`a,b,a`: discovery refuses the file instead of taking the kind from the last `a`."""
    path = tmp_path / "dup.csv"
    path.write_text("a,b, a\n" + "".join(f"{i},x,y{i}\n" for i in range(100)))
    with pytest.raises(ProfileInputError, match=r"column 'a' appears twice in the header$"):
        kinds(path)
