"""Kafka over TLS end to end: a real `driftmon run` against tansu behind stunnel.

The TLS endpoint, its CA and a wrong-host endpoint come from tests/support/kafka_tls.py. Every event
is produced with kafka-python through TLS, never through tansu's plaintext port.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from monitor.source import ensure_topic
from monitor.tlsprobe import tls_problem
from tests.support.daemon_harness import DaemonProcess, daemon_config, model_entry, write_config
from tests.support.kafka_tls import TlsKafka

pytestmark = pytest.mark.broker

FEATURES = (("amount", "numeric"), ("country", "categorical"))


@pytest.fixture(scope="module")
def tls_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    """tansu advertising a stunnel TLS port, shared by this module."""
    with TlsKafka(tmp_path_factory.mktemp("tls-kafka")) as kafka:
        yield kafka


def tls_topic(kafka: TlsKafka) -> str:
    """A fresh topic, created through the TLS endpoint."""
    name = f"tls-{uuid.uuid4().hex[:10]}"
    ensure_topic(kafka.client_kwargs(), name)
    return name


def events(n: int, start: float) -> list[bytes]:
    """`n` valid events of model `fraud`, one second apart from `start`."""
    return [
        json.dumps(
            {
                "ts": start + i,
                "model": "fraud",
                "features": {"amount": float(i % 97), "country": "GB" if i % 3 else "US"},
            }
        ).encode()
        for i in range(n)
    ]


def produce_tls(kafka: TlsKafka, topic: str, values: list[bytes]) -> None:
    """Send every value through the TLS endpoint and check each delivery."""
    producer = KafkaProducer(**kafka.client_kwargs(), bootstrap_timeout_ms=10_000)
    try:
        futures = [producer.send(topic, value=v) for v in values]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=10)
    finally:
        producer.close()


def tls_daemon_config(
    tmp_path: Path, bootstrap: str, topic: str, cafile: Path, **kafka: Any
) -> Path:
    """A daemon config speaking TLS to `bootstrap`, trusting `cafile`."""
    config = daemon_config(
        bootstrap=bootstrap,
        topics=[topic],
        models=[model_entry("fraud", FEATURES, {"mode": "warmup", "warmup_events": 100})],
        state_dir=tmp_path / "state",
        evaluation={"interval": "1s", "min_samples": 100},
        kafka={"security_protocol": "SSL", "ssl_cafile": str(cafile), **kafka},
    )
    return write_config(tmp_path / "driftmon.yaml", config)


def connect_failures(daemon: DaemonProcess) -> list[str]:
    """The daemon's own `kafka connect failed` log messages, in order."""
    return [
        str(line.get("event"))
        for line in daemon.log_lines()
        if str(line.get("event", "")).startswith("kafka connect failed")
    ]


def test_daemon_counts_every_event_over_tls(tls_kafka: TlsKafka, tmp_path: Path) -> None:
    """With the right CA the daemon consumes through TLS, counts 300 events exactly and is ready."""
    topic = tls_topic(tls_kafka)
    produce_tls(tls_kafka, topic, events(300, time.time() - 400))
    config = tls_daemon_config(tmp_path, tls_kafka.bootstrap, topic, tls_kafka.pki.ca)
    with DaemonProcess(config, tmp_path) as daemon:
        daemon.start()
        daemon.wait_metric("driftmon_records_consumed_total", 300, timeout=60, topic=topic)
        scraped = daemon.wait_metric("driftmon_events_accepted_total", 300, model="fraud")
        assert scraped.value("driftmon_kafka_connected") == 1
        daemon.wait_ready(timeout=60)
        assert daemon.stop() == 0
    assert connect_failures(daemon) == []


def test_dead_letters_are_written_through_tls(tls_kafka: TlsKafka, tmp_path: Path) -> None:
    """The dead-letter producer uses the same TLS settings: a rejected record lands in the DLQ."""
    topic, dlq = tls_topic(tls_kafka), tls_topic(tls_kafka)
    produce_tls(tls_kafka, topic, [b"not json", *events(150, time.time() - 400)])
    config = tls_daemon_config(
        tmp_path, tls_kafka.bootstrap, topic, tls_kafka.pki.ca, dead_letter_topic=dlq
    )
    with DaemonProcess(config, tmp_path) as daemon:
        daemon.start()
        daemon.wait_metric("driftmon_records_consumed_total", 151, timeout=60, topic=topic)
        assert daemon.stop() == 0
    consumer = KafkaConsumer(
        dlq,
        **tls_kafka.client_kwargs(),
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    try:
        values = [record.value for record in consumer]
    finally:
        consumer.close()
    assert values == [b"not json"]


def wait_for_failures(daemon: DaemonProcess, count: int, timeout: float = 60.0) -> list[str]:
    """Wait until the daemon logged `count` failed connects (it must stay alive meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.running, daemon.tail()
        failures = connect_failures(daemon)
        if len(failures) >= count:
            return failures
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} connect failures logged:\n{daemon.tail()}")


def assert_alive_not_ready_and_clear(daemon: DaemonProcess, *expected: str) -> None:
    """Alive, not ready, retrying with a one-line reason that names the problem; no traceback."""
    failures = wait_for_failures(daemon, 2)
    for message in failures:
        for text in expected:
            assert text in message, message
    assert daemon.live()
    assert not daemon.ready()
    assert daemon.metrics().value("driftmon_kafka_connected") == 0
    log_text = daemon.log_path.read_text()
    assert "Traceback" not in log_text


def test_wrong_ca_is_a_clear_retried_error(tls_kafka: TlsKafka, tmp_path: Path) -> None:
    """A CA that did not sign the broker's certificate: the daemon stays alive, not ready, and
    logs the certificate error with a hint at kafka.ssl_cafile on every retry."""
    topic = tls_topic(tls_kafka)
    config = tls_daemon_config(tmp_path, tls_kafka.bootstrap, topic, tls_kafka.pki.other_ca)
    with DaemonProcess(config, tmp_path) as daemon:
        daemon.start()
        assert_alive_not_ready_and_clear(
            daemon,
            f"TLS handshake with {tls_kafka.bootstrap} failed",
            "certificate verify failed: unable to get local issuer certificate",
            "kafka.ssl_cafile",
        )
        assert daemon.stop() == 0


def test_host_name_mismatch_is_a_clear_retried_error(tls_kafka: TlsKafka, tmp_path: Path) -> None:
    """A certificate issued for another host name: alive, not ready, the mismatch is named."""
    topic = tls_topic(tls_kafka)
    config = tls_daemon_config(tmp_path, tls_kafka.wrong_host_bootstrap, topic, tls_kafka.pki.ca)
    with DaemonProcess(config, tmp_path) as daemon:
        daemon.start()
        assert_alive_not_ready_and_clear(
            daemon,
            f"TLS handshake with {tls_kafka.wrong_host_bootstrap} failed",
            "IP address mismatch",
            "does not name the host",
        )
        assert daemon.stop() == 0


def test_probe_accepts_the_right_ca(tls_kafka: TlsKafka) -> None:
    """The probe's handshake with the right CA succeeds (None: no TLS problem)."""
    assert tls_problem(tls_kafka.client_kwargs()) is None


def test_probe_names_a_plaintext_listener(tls_kafka: TlsKafka) -> None:
    """security_protocol SSL against tansu's plaintext port is reported as a non-TLS endpoint."""
    kwargs = {**tls_kafka.client_kwargs(), "bootstrap_servers": [tls_kafka.plaintext_bootstrap]}
    problem = tls_problem(kwargs, timeout_s=2.0)
    assert problem is not None
    assert problem == (
        f"TLS handshake with {tls_kafka.plaintext_bootstrap} failed: the TLS handshake timed out "
        "(the endpoint does not answer TLS: is it a PLAINTEXT listener?)"
    )


def test_probe_accepts_a_mismatch_when_host_check_is_off(tls_kafka: TlsKafka) -> None:
    """ssl_check_hostname false (as kafka-python) makes the wrong-host certificate acceptable."""
    kwargs = {
        **tls_kafka.client_kwargs(),
        "bootstrap_servers": [tls_kafka.wrong_host_bootstrap],
        "ssl_check_hostname": False,
    }
    assert tls_problem(kwargs) is None


def test_probe_reports_an_unloadable_ca_file(tls_kafka: TlsKafka, tmp_path: Path) -> None:
    """A CA file that is not PEM is reported as a certificate loading problem."""
    garbage = tmp_path / "ca.pem"
    garbage.write_text("this is not a certificate\n")
    problem = tls_problem(tls_kafka.client_kwargs(cafile=garbage))
    assert problem is not None and problem.startswith("cannot load the TLS certificates")


def test_probe_ignores_plaintext_and_unreachable_brokers(tls_kafka: TlsKafka) -> None:
    """PLAINTEXT settings and a closed port are not TLS problems (None)."""
    assert tls_problem({**tls_kafka.client_kwargs(), "security_protocol": "PLAINTEXT"}) is None
    from monitor.dev.broker import free_port

    closed = {**tls_kafka.client_kwargs(), "bootstrap_servers": [f"127.0.0.1:{free_port()}"]}
    assert tls_problem(closed) is None
