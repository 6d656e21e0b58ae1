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
