"""`make demo` runs unattended and ends showing drift on `fraud` only (acceptance criterion 7).

Runs `python -m monitor.dev.demo --duration 90 --no-clear --port 0` exactly as a user would (it
starts its own embedded broker, the daemon and the producer), with `--status-json` so the
final /status document can be checked, and parses the final printed view as well.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.tools.scenarios import affected_features
from tests.support.daemon_harness import REPO, clean_environ

DURATION_S = 90
HEADER = re.compile(r"^model (\S+) .* drifted (\d+)/(\d+)$", re.MULTILINE)


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.timeout(DURATION_S + 90)
def test_demo_runs_unattended_and_shows_drift_on_fraud_only(tmp_path: Path) -> None:
    """The 90 s demo exits 0; its final view and /status show drift on fraud, none on churn."""
    status_path = tmp_path / "status.json"
    env = {**clean_environ(), "TMPDIR": str(tmp_path)}  # the demo's work dir lands here
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor.dev.demo",
            "--duration",
            str(DURATION_S),
            "--no-clear",
            "--port",
            "0",
            "--status-json",
            str(status_path),
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its broker and daemon children share our kill below
    )
    try:
        output, _ = proc.communicate(timeout=DURATION_S + 60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output[-3000:]
    assert "driftmon demo: stopped broker, daemon and producer." in output

    status = json.loads(status_path.read_text(encoding="utf-8"))
    models = {m["model"]: m for m in status["models"]}
    assert set(models) == {"fraud", "churn"}
    fraud = {f["name"] for f in models["fraud"]["features"] if f["drift_detected"]}
    churn = {f["name"] for f in models["churn"]["features"] if f["drift_detected"]}
    assert fraud and fraud <= affected_features("mean-shift"), fraud
    assert churn == set()
    assert models["fraud"]["drifted_features"] == len(fraud)

    # The last view printed (after the last demo header) says the same.
    final_view = output.rsplit("driftmon demo —", 1)[1]
    drifted = {name: int(n) for name, n, _ in HEADER.findall(final_view)}
    assert drifted == {"fraud": len(fraud), "churn": 0}, final_view
