"""The benchmark table writer: Markdown and JSON contents, machine info, RESULT lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.harness import RESULT_PREFIX, parse_result, stats_result
from bench.report import (
    Table,
    cpu_model,
    format_value,
    machine_info,
    to_markdown,
    to_text,
    write_markdown_page,
    write_report,
)


def _table() -> Table:
    table = Table("speed", "Speed | per window", ["tool", "ms", "events/s", "note"])
    table.add("driftmon", 1.234, 702_983, "a|b")
    table.add("peer", None, 1500.0, None)
    table.notes.append("medians of 3 runs")
    return table


def test_add_checks_the_row_length() -> None:
    """A row with the wrong number of values is refused."""
    with pytest.raises(ValueError, match="2 values for 4 columns"):
        _table().add("x", 1)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "–"),
        (True, "yes"),
        (702_983, "702,983"),
        (1500.0, "1,500"),
        (1.234, "1.23"),
        (0.01234, "0.0123"),
        (12.5, "12.5"),
        (0.0, "0"),
        (float("nan"), "–"),
        ("x", "x"),
    ],
)
def test_format_value(value: object, text: str) -> None:
    """Cells print with separators and three significant digits below 100."""
    assert format_value(value) == text


def test_markdown_has_title_header_alignment_rows_and_notes() -> None:
    """Numeric columns are right-aligned, pipes escaped, notes listed after the table."""
    lines = to_markdown(_table()).splitlines()
    assert lines[0] == "### Speed | per window"
    assert lines[2] == "| tool | ms | events/s | note |"
    assert lines[3] == "|---|---:|---:|---|"
    assert lines[4] == "| driftmon | 1.23 | 702,983 | a\\|b |"
    assert lines[5] == "| peer | – | 1,500 | – |"
    assert lines[-1] == "- medians of 3 runs"


def test_text_rendering_aligns_columns() -> None:
    """The terminal rendering pads every column to its widest cell."""
    lines = to_text(_table()).splitlines()
    assert lines[0] == "Speed | per window"
    header, rule, first = lines[2], lines[3], lines[4]
    assert header.index("ms") == first.index("1.23")
    assert set(rule.replace(" ", "")) == {"-"}
    assert lines[-1] == "  * medians of 3 runs"


def test_machine_info_has_versions_cores_cpu_load_and_date() -> None:
    """The machine block names what the numbers depend on."""
    info = machine_info()
    for key in ("date", "python", "cores", "cpu_model", "memory_gib", "load_average"):
        assert key in info
    assert set(info["versions"]) == {"numpy", "scipy", "kafka-python", "msgspec", "driftmon"}
    assert info["versions"]["numpy"]
    assert info["cores"] >= 1
    assert info["date"].endswith("+00:00")


def test_cpu_model_is_read_from_cpuinfo(tmp_path: Path) -> None:
    """The first 'model name' line of a cpuinfo file is the CPU model."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000 @ 3.0GHz\nflags\t: x\n")
    assert cpu_model(cpuinfo) == "Test CPU 9000 @ 3.0GHz"


def test_write_report_writes_markdown_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both files hold every table; the JSON keeps raw values and the machine block."""
    machine = {**machine_info(), "load_during_run": {"start": [1.0, 2.0, 3.0]}}
    md_path, json_path = write_report([_table()], machine, tmp_path / "out", "bench")
    markdown = md_path.read_text()
    assert markdown.startswith("## driftmon benchmarks\n")
    assert "### Speed | per window" in markdown
    assert "### Machine" in markdown and machine["cpu_model"] in markdown
    assert "load during run: {'start': [1.0, 2.0, 3.0]}" in markdown
    document = json.loads(json_path.read_text())
    assert document["machine"]["cores"] == machine["cores"]
    assert document["machine"]["versions"]["scipy"] == machine["versions"]["scipy"]
    [table] = document["tables"]
    assert table["key"] == "speed"
    assert table["rows"][0] == ["driftmon", 1.234, 702_983, "a|b"]
    assert table["notes"] == ["medians of 3 runs"]
    printed = capsys.readouterr().out
    assert "Speed | per window" in printed and str(json_path) in printed


def test_a_markdown_page_holds_the_machine_the_loads_and_the_tables(tmp_path: Path) -> None:
    """The page written for a standalone benchmark has the machine, both loads and each table."""
    out = tmp_path / "results" / "page.md"
    text = write_markdown_page([_table()], machine_info(), [0.5, 0.25, 0.125], out)
    assert out.read_text(encoding="utf-8") == text
    assert text.startswith("### Machine\n")
    assert "Load average at start [0.5, 0.25, 0.125], end [" in text
    assert text.index("Load average") < text.index("### Speed | per window")
    assert "| driftmon | 1.23 |" in text


def test_result_lines_round_trip() -> None:
    """parse_result finds the last RESULT line; a stats payload keeps flags as booleans."""
    payload = stats_result(
        tool="t",
        version="t 1",
        method="m",
        kind="batch",
        fit_s=0.5,
        window_s=[0.001, 0.002],
        flags=[[True, False]],
        covered=["a", "b"],
        events_per_window=10,
        import_rss_mib=50.0,
    )
    output = "noise\n" + RESULT_PREFIX + json.dumps({"old": 1}) + "\n"
    output += RESULT_PREFIX + json.dumps(payload) + "\nmore noise\n"
    parsed = parse_result(output)
    assert parsed is not None
    assert parsed["window_ms"] == [1.0, 2.0]
    assert parsed["flags"] == [[True, False]]
    assert parse_result("no result here") is None
