"""The benchmark's table writer: prints tables, writes them as Markdown and JSON.

A `Table` is a title, column names, rows of plain values and free-text notes. `write_report`
writes `<stem>.md` (every table as a GitHub table, its notes as a list, then the machine) and
`<stem>.json` (`{"machine": {...}, "tables": [{key, title, columns, rows, notes}]}`) into a
results folder. `machine_info()` records what the numbers depend on: the Python, numpy,
scipy, kafka-python, msgspec and driftmon versions, the cores and CPU model (from
/proc/cpuinfo), the memory, the load average and the date.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

VERSIONED = ("numpy", "scipy", "kafka-python", "msgspec", "driftmon")


@dataclass
class Table:
    """One result table: `rows` hold plain values (str, int, float, None), one per column."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *values: Any) -> None:
        """Append one row (as many values as columns; ValueError otherwise)."""
        if len(values) != len(self.columns):
            raise ValueError(f"{self.key}: {len(values)} values for {len(self.columns)} columns")
        self.rows.append(list(values))


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info() -> dict[str, Any]:
    """Versions, machine and date the numbers were taken with."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "versions": {name: _package_version(name) for name in VERSIONED},
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": _memory_gib(),
        "load_average": load_average(),
    }


def format_value(value: Any) -> str:
    """How a cell prints: thousands separators, 3 significant digits below 100, '–' for None."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if value == 0:
            return "0"
        digits = max(0, 2 - math.floor(math.log10(abs(value))))
        return f"{value:.{digits}f}"
    return str(value)


def _cell(value: Any) -> str:
    return format_value(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table) -> str:
    """A table as GitHub Markdown: title, header, rows, then its notes as a list."""
    numeric = [
        bool(table.rows) and all(isinstance(r[i], int | float) or r[i] is None for r in table.rows)
        for i in range(len(table.columns))
    ]
    lines = [f"### {table.title}", ""]
    lines.append("| " + " | ".join(_cell(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.rows]
    if table.notes:
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def to_text(table: Table) -> str:
    """A table as aligned plain text (for the terminal)."""
    cells = [table.columns] + [[format_value(v) for v in row] for row in table.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.columns))]
    lines = [table.title, "-" * len(table.title)]
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += [f"  * {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def machine_markdown(machine: Mapping[str, Any]) -> str:
    """The machine section of the Markdown report."""
    versions = ", ".join(f"{k} {v or 'not installed'}" for k, v in machine["versions"].items())
    load = machine.get("load_average") or []
    lines = [
        "### Machine",
        "",
        f"- date: {machine['date']}",
        f"- CPU: {machine['cpu_model']}, {machine['cores']} cores; memory "
        f"{machine.get('memory_gib')} GiB; {machine['platform']}",
        f"- {machine['implementation']} {machine['python']}; {versions}",
        f"- load average (1/5/15 min) when the report was written: {load}",
    ]
    shown = {"date", "cpu_model", "cores", "memory_gib", "platform", "implementation"}
    shown |= {"python", "versions", "load_average"}
    for key, value in machine.items():
        if key not in shown:
            lines.append(f"- {key.replace('_', ' ')}: {value}")
    return "\n".join(lines) + "\n"


def write_markdown_page(
    tables: Sequence[Table], machine: Mapping[str, Any], start_load: Sequence[float], out: Path
) -> str:
    """Write the machine, the load average at the start and now, and the tables as one
    Markdown page to `out` (its folder created); the page's text."""
    lines = [
        machine_markdown(machine),
        f"Load average at start {list(start_load)}, end {load_average()}.",
    ]
    lines += [to_markdown(table) for table in tables]
    text = "\n\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return text


def write_report(
    tables: Sequence[Table],
    machine: Mapping[str, Any],
    out_dir: Path,
    stem: str = "bench",
    *,
    title: str = "driftmon benchmarks",
    echo: bool = True,
) -> tuple[Path, Path]:
    """Write `<stem>.md` and `<stem>.json` into out_dir (created); print the tables if echo."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = f"## {title}\n\n" + "\n".join(to_markdown(t) for t in tables)
    markdown += "\n" + machine_markdown(machine)
    md_path = out_dir / f"{stem}.md"
    json_path = out_dir / f"{stem}.json"
    md_path.write_text(markdown, encoding="utf-8")
    document = {
        "machine": dict(machine),
        "tables": [
            {
                "key": t.key,
                "title": t.title,
                "columns": t.columns,
                "rows": t.rows,
                "notes": t.notes,
            }
            for t in tables
        ],
    }
    json_path.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
    if echo:
        for table in tables:
            sys.stdout.write("\n" + to_text(table))
        sys.stdout.write(f"\nwritten: {md_path} and {json_path}\n")
        sys.stdout.flush()
    return md_path, json_path
