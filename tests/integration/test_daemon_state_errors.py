"""A read-only state directory holding a corrupt checkpoint: `driftmon run` reports it, runs
without it, counts every failed checkpoint write, and starts again the same way.

Before the fix, moving the corrupt file aside raised PermissionError outside any handler:
exit 1 on every start. Under root the daemon runs without the capabilities that bypass file
modes (setpriv), so the directory's mode binds as it does for an unprivileged user.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tests.support.broker import TansuBroker
from tests.support.daemon_harness import (
    DaemonProcess,
    daemon_config,
    model_entry,
    produce,
    write_config,
)
from tests.support.waiting import wait_until

NO_DAC_BYPASS = ("setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--")
GARBAGE = b"PK\x03\x04 this is not a checkpoint"


def test_corrupt_checkpoint_in_a_read_only_state_dir_is_counted_and_skipped(
    tmp_path: Path, broker: TansuBroker, topic: str
) -> None:
    """Two starts: each counts corrupt=1, logs why, consumes events and counts write failures."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "checkpoint.npz").write_bytes(GARBAGE)
    state.chmod(0o555)
    config = write_config(
        tmp_path / "driftmon.yaml",
        daemon_config(
            bootstrap=broker.bootstrap,
            topics=[topic],
            models=[model_entry("m", [("x", "numeric")], {"mode": "warmup", "warmup_events": 100})],
            state_dir=state,
        ),
    )
    rng = np.random.default_rng(1)
    values = [
        json.dumps({"ts": 1_790_000_000.0 + i, "model": "m", "features": {"x": float(v)}}).encode()
        for i, v in enumerate(rng.normal(size=300))
    ]
    produce(broker.bootstrap, topic, values)
    prefix = NO_DAC_BYPASS if os.geteuid() == 0 else ()
    try:
        run_twice(DaemonProcess(config, tmp_path / "run", prefix=prefix))
    finally:
        state.chmod(0o755)
    assert (state / "checkpoint.npz").read_bytes() == GARBAGE


def run_twice(daemon: DaemonProcess) -> None:
    """Start, check, SIGTERM; twice over the same state directory."""
    with daemon:
        for run in (1, 2):
            daemon.start()
            scrape = daemon.wait_metric("driftmon_checkpoints_total", 1, result="corrupt")
            daemon.wait_metric("driftmon_events_accepted_total", 300, model="m")
            wait_until(
                lambda: daemon.metrics().value("driftmon_checkpoints_total", result="failure") >= 2,
                15,
                message="failed checkpoint writes counted",
                on_timeout=daemon.tail,
            )
            assert scrape.value("driftmon_checkpoints_total", result="success") == 0
            events = [line["event"] for line in daemon.log_lines()]
            assert any("cannot be moved aside" in event for event in events), daemon.tail()
            assert "checkpoint failed" in events
            assert daemon.stop() == 0, f"run {run}:\n{daemon.tail()}"
