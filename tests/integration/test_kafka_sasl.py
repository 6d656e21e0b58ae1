"""The SASL password never reaches the daemon's log, even when the login fails at debug level.

tansu answers every SASL handshake with "unsupported mechanism", which is exactly the failing
login this test needs.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
import yaml

from tests.support.broker import TansuBroker
from tests.support.daemon_harness import DaemonProcess, daemon_config, model_entry

PASSWORD = "Pa55-w0rd!with,comma=and\u00e9"


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_daemon_log_never_holds_the_password(
    broker: TansuBroker, topic: str, tmp_path: Path, mechanism: str
) -> None:
    """A daemon at debug level whose SASL login fails (tansu has no SASL) retries and logs the
    failure, never the password."""
    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        models=[model_entry("m", [("x", "numeric")], {"mode": "warmup", "warmup_events": 100})],
        state_dir=tmp_path / "state",
        kafka={
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": mechanism,
            "sasl_username": "driftmon",
        },
        log_level="debug",
    )
    path = tmp_path / "driftmon.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {"DRIFTMON_KAFKA__SASL_PASSWORD": PASSWORD}
    with DaemonProcess(path, tmp_path, env=env) as daemon:
        daemon.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            failures = [
                line
                for line in daemon.log_lines()
                if str(line.get("event", "")).startswith("kafka connect failed")
            ]
            if failures:
                break
            time.sleep(0.2)
        assert failures, daemon.tail()
        assert daemon.running and not daemon.ready()
        assert daemon.stop() == 0
    text = daemon.log_path.read_text(errors="replace")
    assert PASSWORD not in text
    assert base64.b64encode(PASSWORD.encode()).decode() not in text
