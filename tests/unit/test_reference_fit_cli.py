"""`driftmon reference fit` as a command: output path checks and bounded error messages."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.support.daemon_harness import run_cli


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A small CSV with one numeric column of 200 values."""
    path = tmp_path / "data.csv"
    path.write_text("amount\n" + "".join(f"{i * 0.5}\n" for i in range(200)))
    return path


def fit(data: Path, output: str, features: str = "amount:numeric") -> tuple[int, str]:
    """Exit code and stderr of `reference fit DATA --features FEATURES -o OUTPUT`."""
    result = run_cli(
        "reference", "fit", str(data), "--model", "m", "--features", features, "-o", output
    )
    return result.returncode, result.stderr


def test_empty_output_path_is_a_usage_error(data: Path) -> None:
    """`-o ""` exits 2 with argparse's usage message, not a traceback."""
    code, stderr = fit(data, "")
    assert code == 2
    assert "argument --output/-o: an empty path" in stderr
    assert "Traceback" not in stderr


def test_device_output_is_refused_and_left_in_place(tmp_path: Path, data: Path) -> None:
    """An output that is a device node (a FIFO when not root) exits 1 and stays what it was."""
    node = tmp_path / "null"
    if os.geteuid() == 0:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        kind, check = "a character device", stat.S_ISCHR
    else:
        os.mkfifo(node)
        kind, check = "a FIFO", stat.S_ISFIFO
    code, stderr = fit(data, str(node))
    assert code == 1
    assert stderr == f"driftmon reference fit: cannot write {node}: is {kind}, not a regular file\n"
    assert check(node.lstat().st_mode)


def test_a_planted_temporary_path_is_never_followed(tmp_path: Path, data: Path) -> None:
    """A symlink planted at OUTPUT.tmp does not redirect the write; the profile is written."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "ref.json.tmp").symlink_to(victim)
    code, stderr = fit(data, str(tmp_path / "ref.json"))
    assert (code, stderr) == (0, "")
    assert victim.read_text() == "precious"
    assert (tmp_path / "ref.json").read_text().startswith("{")


def test_errors_are_one_bounded_line(tmp_path: Path, data: Path) -> None:
    """A 1,000-deep JSON line and a 100,000-character feature name give one short error line."""
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"a": 1}\n' + '{"x":' * 1000 + "1" + "}" * 1000 + "\n")
    for features in ("a:numeric", "auto"):
        code, stderr = fit(deep, str(tmp_path / "x.json"), features)
        assert code == 1
        assert stderr == f"driftmon reference fit: {deep}: line 2: invalid JSON (nested too deep)\n"
    code, stderr = fit(data, str(tmp_path / "x.json"), "f" * 100_000 + ":numeric")
    assert code == 1
    assert len(stderr) < 400 and "(100002 characters)" in stderr


def fit_args(data: Path, tmp_path: Path, *extra: str) -> tuple[int, str]:
    """Exit code and stderr of `reference fit DATA -o TMP/x.json EXTRA...`."""
    result = run_cli("reference", "fit", str(data), "-o", str(tmp_path / "x.json"), *extra)
    return result.returncode, result.stderr


def test_max_segments_below_one_is_a_usage_error(tmp_path: Path) -> None:
    """`--max-segments 0` exits 2 with a usage error instead of silently meaning 10."""
    data = tmp_path / "seg.csv"
    data.write_text("a,s\n" + "".join(f"{i},{'xyz'[i % 3]}\n" for i in range(200)))
    code, stderr = fit_args(
        data, tmp_path, "--model", "m", "--features", "a:numeric", "--segment-by", "s",
        "--max-segments", "0",
    )  # fmt: skip
    assert code == 2
    assert "argument --max-segments: must be between 1 and 100, not 0" in stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--model", "a\nb", "argument --model: 'a\\nb' is not a model name"),
        ("--model", "m" * 65, "is not a model name"),
        ("--model", "m" * 100_000, "(100002 characters) is not a model name"),
        ("--model-version", "v" * 129, "argument --model-version: longer than 128 characters"),
    ],
    ids=["newline", "65-chars", "100k-chars", "long-version"],
)
def test_model_name_and_version_are_bounded(
    tmp_path: Path, data: Path, flag: str, value: str, message: str
) -> None:
    """A --model a config could not name, or a --model-version over 128 characters, exits 2."""
    flags = {"--model": "m", "--model-version": "v1", flag: value}
    code, stderr = fit_args(
        data, tmp_path, "--features", "amount:numeric", *(x for kv in flags.items() for x in kv)
    )
    assert code == 2
    assert message in stderr
    assert len(stderr.splitlines()[-1]) < 300
    assert not (tmp_path / "x.json").exists()


def test_a_csv_header_naming_a_column_twice_exits_1(tmp_path: Path) -> None:
    """`a,b,a` is refused with exit 1 and one line naming the column."""
    data = tmp_path / "dup.csv"
    data.write_text("a,b,a\n" + "".join(f"{i},x,{i + 100}\n" for i in range(200)))
    code, stderr = fit_args(data, tmp_path, "--model", "m", "--features", "a:numeric")
    assert (code, stderr) == (
        1,
        f"driftmon reference fit: {data}: column 'a' appears twice in the header\n",
    )


def test_mostly_invalid_values_are_written_with_one_warning_per_feature(tmp_path: Path) -> None:
    """95 % unparseable text in a numeric column: exit 0, the profile, one warning line."""
    data = tmp_path / "garbage.csv"
    data.write_text(
        "amount,country\n"
        + "".join(f"{i if i % 20 == 0 else 'garbage'},{'AB'[i % 2]}\n" for i in range(2000))
    )
    code, stderr = fit_args(
        data, tmp_path, "--model", "m", "--features", "amount:numeric,country:categorical"
    )
    assert (code, stderr) == (
        0,
        "driftmon reference fit: feature 'amount': 1,900 of 2,000 values (95 %) are invalid "
        "(not numbers)\n",
    )
    assert (tmp_path / "x.json").read_text().startswith("{")
