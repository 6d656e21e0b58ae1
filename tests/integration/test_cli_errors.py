"""Clear errors and exit codes instead of tracebacks from `reference fit` and `simulate`, and
`simulate`'s Kafka security options (flags or a daemon config's `kafka:` section)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from kafka import KafkaConsumer

from monitor.cli import build_parser, simulate_kafka
from monitor.errors import ConfigError
from tests.support.broker import TansuBroker, free_port
from tests.support.daemon_harness import run_cli


def _csv(path: Path, rows: int) -> Path:
    path.write_text("amount,country\n" + "".join(f"{i * 0.5},c{i % 3}\n" for i in range(rows)))
    return path


def _fit(
    data: Path, out: str, features: str = "amount:numeric,country:categorical"
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "reference", "fit", str(data), "--model", "m", "--features", features,
        "--no-progress", "-o", out,
    )  # fmt: skip


def test_reference_fit_refuses_three_rows_with_exit_2(tmp_path: Path) -> None:
    """A 3-row CSV no longer becomes a 3-edge profile: exit 2 naming the feature and minimum."""
    out = tmp_path / "ref.json"
    result = _fit(_csv(tmp_path / "tiny.csv", 3), str(out))
    assert result.returncode == 2, result.stderr
    assert "'amount'" in result.stderr and "at least 50" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_reference_fit_accepts_the_minimum(tmp_path: Path) -> None:
    """Exactly 50 rows is enough."""
    out = tmp_path / "ref.json"
    result = _fit(_csv(tmp_path / "fifty.csv", 50), str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["events"] == 50


def test_reference_fit_to_an_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    """`-o /proc/x.json`: exit 1 with a one-line reason, no traceback."""
    result = _fit(_csv(tmp_path / "ok.csv", 100), "/proc/driftmon-test/x.json")
    assert result.returncode == 1, result.stderr
    assert "cannot write /proc/driftmon-test/x.json" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ['amo"unt', "amo\\unt"])
def test_reference_fit_refuses_names_the_daemon_could_not_decode(tmp_path: Path, name: str) -> None:
    """A feature name with a quote or backslash is a usage error (exit 2) naming --features."""
    result = _fit(_csv(tmp_path / "ok.csv", 100), str(tmp_path / "r.json"), f"{name}:numeric")
    assert result.returncode == 2, result.stderr
    assert "--features" in result.stderr


def test_simulate_with_a_negative_rate_is_a_usage_error() -> None:
    """`simulate --rate -5` exits 2 with the reason, no traceback."""
    result = run_cli("simulate", "--rate", "-5", "--bootstrap", "127.0.0.1:1")
    assert result.returncode == 2, result.stderr
    assert "rate" in result.stderr and "Traceback" not in result.stderr


def test_simulate_against_a_dead_broker_exits_1_without_traceback() -> None:
    """No broker listening: one clear line naming the address, exit 1."""
    address = f"127.0.0.1:{free_port()}"
    result = run_cli("simulate", "--bootstrap", address, "--events", "10", timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"cannot produce to 'features' at {address}" in result.stderr
    assert "Traceback" not in result.stderr


def test_simulate_security_flags_map_to_the_kafka_client(tmp_path: Path) -> None:
    """TLS and SASL flags (password from DRIFTMON_KAFKA__SASL_PASSWORD) reach the producer."""
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    args = build_parser().parse_args(
        [
            "simulate", "--bootstrap", "b1:9093", "--security-protocol", "SASL_SSL",
            "--ssl-cafile", str(ca), "--sasl-mechanism", "SCRAM-SHA-512",
            "--sasl-username", "producer", "--no-ssl-check-hostname", "--topic", "t1",
        ]
    )  # fmt: skip
    settings, topic = simulate_kafka(args, {"DRIFTMON_KAFKA__SASL_PASSWORD": "pw"})
    kwargs = settings.client_kwargs()
    assert topic == "t1"
    assert kwargs["bootstrap_servers"] == ["b1:9093"]
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["ssl_cafile"] == str(ca)
    assert kwargs["ssl_check_hostname"] is False
    assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"]) == (
        "SCRAM-SHA-512",
        "producer",
    )
    assert kwargs["sasl_plain_password"] == "pw"


def test_simulate_security_flags_are_validated_like_the_config(tmp_path: Path) -> None:
    """SASL without credentials, or a CA file that does not exist, names the kafka key."""
    parser = build_parser()
    args = parser.parse_args(["simulate", "--security-protocol", "SASL_PLAINTEXT"])
    with pytest.raises(ConfigError, match=r"kafka\.sasl_mechanism"):
        simulate_kafka(args, {})
    args = parser.parse_args(["simulate", "--ssl-cafile", str(tmp_path / "missing.pem")])
    with pytest.raises(ConfigError, match=r"kafka\.ssl_cafile"):
        simulate_kafka(args, {})
    result = run_cli("simulate", "--security-protocol", "SASL_SSL", "--events", "1")
    assert result.returncode == 2 and "kafka.sasl_username" in result.stderr


def test_simulate_takes_the_connection_and_topic_from_a_daemon_config(
    tmp_path: Path, broker: TansuBroker, topic: str
) -> None:
    """`simulate --config FILE` produces to the config's broker and first topic."""
    config = tmp_path / "driftmon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": broker.bootstrap, "topics": [topic]},
                "models": [{"name": "fraud", "features": [{"name": "a", "kind": "numeric"}]}],
            }
        )
    )
    result = run_cli("simulate", "--config", str(config), "--events", "200", "--rate", "0")
    assert result.returncode == 0, result.stderr
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    try:
        values = [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()
    assert len(values) == 200 and {v["model"] for v in values} == {"fraud"}
