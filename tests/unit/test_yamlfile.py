"""monitor.yamlfile: the one YAML reader behind the config file and the web config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.errors import ConfigError
from monitor.http.webconfig import load_web_config
from monitor.yamlfile import read_yaml_mapping

SECRET = "hunter2-not-for-logs"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\na: 2\n", "YAML syntax error at line 2, column 1: duplicate key 'a'"),
        (f'a: "{SECRET}\nb: [\n', "YAML syntax error at line"),
        ("- a\n", "the top level must be a mapping"),
        ("a: " + "[" * 50_000 + "\n", "YAML nested too deeply"),
        ("a: " + "{b: " * 30_000 + "1" + "}" * 30_000 + "\n", "YAML nested too deeply"),
        ("a: " + "9" * 5_000 + "\n", "an integer of more than 4300 digits"),
    ],
)
def test_both_files_report_one_problem_the_same_way(
    tmp_path: Path, text: str, message: str
) -> None:
    """The config file and the web config file give the same message, never quoting a line."""
    path = tmp_path / "file.yml"
    path.write_text(text, encoding="utf-8")
    for read in (lambda: load_settings(path, {}), lambda: load_web_config(path)):
        with pytest.raises(ConfigError) as caught:
            read()
        assert str(caught.value).startswith(f"{path}: ")
        assert message in str(caught.value)
        assert SECRET not in str(caught.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    """A missing file names its label; an empty file is an empty mapping."""
    with pytest.raises(ConfigError, match=r"absent\.yml: web config file not found$"):
        read_yaml_mapping(tmp_path / "absent.yml", "web config file")
    empty = tmp_path / "empty.yml"
    empty.write_text("", encoding="utf-8")
    assert read_yaml_mapping(empty, "config file") == {}
