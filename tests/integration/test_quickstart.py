"""The README's quick start, run as written: every command of its code block, in order.

The commands are parsed from the first ```sh block under "## Quick start". Only the ports
change (9092 and 9108 become free ports, in the commands and, through DRIFTMON_* variables, in
examples/driftmon.yaml), so a broker or daemon already running on this machine cannot
interfere. `driftmon` is this environment's console script; `python` is this interpreter.
Commands ending in `&` run in the background until the end; `driftmon status` is repeated
(as a reader would) until it shows what the comment above it promises.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.dev.broker import free_port, stop_process
from tests.support.daemon_harness import REPO, clean_environ

README = REPO / "README.md"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.broker


@dataclass(frozen=True)
class Step:
    """One command of the block: argv, background or not, stdout redirect, the comment above."""

    argv: list[str]
    background: bool
    stdout: str | None
    comment: str


def quickstart_block(text: str) -> str:
    """The first ```sh block after the "## Quick start" heading."""
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "no ```sh block in the Quick start section"
    return match.group(1)


def parse_steps(block: str) -> list[Step]:
    """Commands of the block; `. .venv/bin/activate` is checked to exist and otherwise skipped."""
    steps: list[Step] = []
    comment = ""
    for raw in block.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            comment = line.lstrip("# ")
            continue
        tokens = shlex.split(line)
        if tokens[0] in (".", "source"):
            assert (REPO / tokens[1]).is_file(), tokens[1]
            continue
        background = tokens[-1] == "&"
        tokens = tokens[:-1] if background else tokens
        stdout = None
        if "2>&1" in tokens:
            tokens.remove("2>&1")
        if ">" in tokens:
            at = tokens.index(">")
            stdout = tokens[at + 1]
            tokens = tokens[:at] + tokens[at + 2 :]
        steps.append(Step(tokens, background, stdout, comment))
    return steps


def localise(argv: list[str], broker_port: int, http_port: int) -> list[str]:
    """Free ports for 9092/9108; `driftmon` and `python` from this environment."""
    out = [a.replace("9092", str(broker_port)).replace("9108", str(http_port)) for a in argv]
    if out[0] == "driftmon":
        out[0] = str(BIN / "driftmon")
    elif out[0] == "python":
        out[0] = sys.executable
    else:
        raise AssertionError(f"unexpected program in the quick start: {argv[0]}")
    return out


def test_readme_block_parses_into_the_expected_commands() -> None:
    """The block is six commands: broker &, simulate, run &, status, simulate --drift, status."""
    steps = parse_steps(quickstart_block(README.read_text()))
    programs = [(s.argv[0], s.argv[1], s.background) for s in steps]
    assert programs == [
        ("python", "-m", True),
        ("driftmon", "simulate", False),
        ("driftmon", "run", True),
        ("driftmon", "status", False),
        ("driftmon", "simulate", False),
        ("driftmon", "status", False),
    ]
    assert steps[2].argv[-2:] == ["--config", "examples/driftmon.yaml"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory laid out like the repository root for the block: examples/driftmon.yaml."""
    (tmp_path / "examples").mkdir()
    shutil.copy2(REPO / "examples" / "driftmon.yaml", tmp_path / "examples" / "driftmon.yaml")
    return tmp_path


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started with `&`; stopped in reverse order (SIGTERM, broker SIGINT) at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in reversed(procs):
        stop_process(
            proc, signal.SIGINT if "monitor.dev.broker" in str(proc.args) else signal.SIGTERM
        )


def status_shows(output: str, model: str, drifted: str) -> bool:
    """True when the status table of `model` is evaluated and reports `drifted N/7`."""
    header = next((ln for ln in output.splitlines() if ln.startswith(f"model {model} ")), "")
    return f"drifted {drifted}" in header and "reference sha256:" in header


def test_quick_start_runs_as_written(
    workdir: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    """Broker, clean stream, daemon, status 0/7, drifted stream, status: fraud 2/7 (amount and
    score), churn 0/7 — with exactly the README's commands and examples/driftmon.yaml."""
    broker_port, http_port = free_port(), free_port()
    env = {
        **clean_environ(),
        "DRIFTMON_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}",
        "DRIFTMON_HTTP__PORT": str(http_port),
    }
    statuses: list[str] = []
    for step in parse_steps(quickstart_block(README.read_text())):
        argv = localise(step.argv, broker_port, http_port)
        out = (workdir / step.stdout).open("wb") if step.stdout else subprocess.DEVNULL
        if step.background:
            proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out, stderr=out)
            background.append(proc)
            if "monitor.dev.broker" in argv:
                wait_for_port(proc, broker_port)
            continue
        if step.argv[1] == "status":
            expected = (
                [("fraud", "0/7"), ("churn", "0/7")]
                if not statuses
                else [
                    ("fraud", "2/7"),
                    ("churn", "0/7"),
                ]
            )
            statuses.append(wait_for_status(argv, workdir, env, expected, background))
            continue
        proc_done = subprocess.run(
            argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert proc_done.returncode == 0, f"{argv}:\n{proc_done.stderr}"
    assert len(statuses) == 2
    rows = [ln.split() for ln in statuses[1].splitlines()]
    drifting = [r[0] for r in rows if len(r) > 2 and r[0] != "FEATURE" and r[2] == "DRIFT"]
    assert sorted(drifting) == ["amount", "score"], statuses[1]


def wait_for_port(proc: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> None:
    """Wait until the broker accepts connections on `port` (what `&` plus a moment gives)."""
    from monitor.dev.broker import port_open

    deadline = time.monotonic() + timeout
    while not port_open(port):
        assert proc.poll() is None, "the broker exited"
        assert time.monotonic() < deadline, "the broker did not open its port"
        time.sleep(0.1)
    time.sleep(1.0)  # the topic is created right after the port opens


def wait_for_status(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    expected: list[tuple[str, str]],
    background: list[subprocess.Popen[bytes]],
    timeout: float = 90.0,
) -> str:
    """Run `driftmon status` until every (model, drifted) holds; its last output."""
    deadline = time.monotonic() + timeout
    output = ""
    while time.monotonic() < deadline:
        for proc in background:
            assert proc.poll() is None, f"{proc.args!r} exited with {proc.returncode}"
        done = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=30, check=False
        )
        output = done.stdout + done.stderr
        if done.returncode == 0 and all(status_shows(output, m, d) for m, d in expected):
            return output
        time.sleep(1.0)
    log = cwd / "driftmon.log"
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise AssertionError(f"status never showed {expected}:\n{output}\n{tail}")


def test_example_config_matches_what_simulate_produces() -> None:
    """examples/driftmon.yaml has simulate's models, each with exactly simulate's features and
    kinds (monitor/tools/scenarios.py DEMO_FEATURES)."""
    import yaml

    from monitor.tools.scenarios import DEMO_FEATURES

    config = yaml.safe_load((REPO / "examples" / "driftmon.yaml").read_text())
    block = quickstart_block(README.read_text())
    models = re.search(r"--models (\S+)", block)
    assert models
    assert [m["name"] for m in config["models"]] == models.group(1).split(",")
    expected = sorted((f.name, f.kind.value) for f in DEMO_FEATURES)
    for model in config["models"]:
        assert sorted((f["name"], f["kind"]) for f in model["features"]) == expected
    assert os.path.basename(config["state"]["dir"]) == "state"
