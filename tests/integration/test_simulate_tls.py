"""`driftmon simulate` over TLS: tansu behind stunnel (tansu has no TLS of its own), with a
throw-away CA made by openssl; the broker advertises the TLS port, so every connection of the
producer goes through TLS."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from monitor.dev.broker import LoggedProcess, port_open
from monitor.source import ensure_topic
from tests.support.broker import TansuBroker, free_port
from tests.support.daemon_harness import run_cli
from tests.support.waiting import wait_until


class AdvertisingTansu(TansuBroker):
    """tansu listening on `port` but advertising `advertised` (the TLS port in front of it)."""

    def __init__(self, port: int, advertised: int) -> None:
        super().__init__(port)
        self.advertised = advertised

    def start(self) -> None:
        """Start tansu with the advertised listener on the TLS port."""
        self._spawn(
            [
                str(self._binary), "broker",
                "--listener-url", f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised}",
                "--storage-engine", "memory://tansu/",
            ]
        )  # fmt: skip
        wait_until(lambda: port_open(self.port), 10, message="tansu port", on_timeout=self.log_tail)


class Stunnel(LoggedProcess):
    """stunnel accepting TLS on `accept` and forwarding plain TCP to `connect`."""

    def __init__(self, config: Path, accept: int) -> None:
        super().__init__(config.with_suffix(".log"))
        self.config = config
        self.accept = accept

    def start(self) -> None:
        """Run stunnel in the foreground and wait until the TLS port accepts connections."""
        self._spawn(["stunnel4", str(self.config)])
        wait_until(lambda: port_open(self.accept), 10, message="stunnel", on_timeout=self.log_tail)


@dataclass(frozen=True)
class TlsBroker:
    """Where a TLS client connects and the CA that signed the server certificate."""

    bootstrap: str
    cafile: Path

    def client(self) -> dict[str, object]:
        """kafka-python connection kwargs for this endpoint."""
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SSL",
            "ssl_cafile": str(self.cafile),
        }


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, key)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "1", "-subj", "/CN=driftmon-test-ca")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1")  # fmt: skip
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "1",
            "-extfile", "san.cnf")  # fmt: skip
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    """tansu on a plain port, stunnel in front of it on the advertised TLS port."""
    ca, cert, key = _certificates(tmp_path)
    plain, tls = free_port(), free_port()
    config = tmp_path / "stunnel.conf"
    config.write_text(
        f"foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls}\n"
        f"connect = 127.0.0.1:{plain}\ncert = {cert}\nkey = {key}\n"
    )
    broker = AdvertisingTansu(plain, tls)
    tunnel = Stunnel(config, tls)
    try:
        broker.start()
        tunnel.start()
        yield TlsBroker(f"127.0.0.1:{tls}", ca)
    finally:
        tunnel.stop()
        broker.close()


def test_simulate_produces_over_tls_with_the_ca_flag(tls_broker: TlsBroker) -> None:
    """--security-protocol SSL --ssl-cafile: 300 events arrive, read back over TLS."""
    ensure_topic(tls_broker.client(), "tls-events")
    result = run_cli(
        "simulate", "--bootstrap", tls_broker.bootstrap, "--topic", "tls-events",
        "--security-protocol", "SSL", "--ssl-cafile", str(tls_broker.cafile),
        "--events", "300", "--rate", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    consumer = KafkaConsumer(
        "tls-events", auto_offset_reset="earliest", consumer_timeout_ms=5000, **tls_broker.client()
    )
    try:
        events = [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()
    assert len(events) == 300


def test_simulate_without_tls_against_the_tls_port_fails_cleanly(tls_broker: TlsBroker) -> None:
    """Plaintext to a TLS listener: exit 1 with one error line, no traceback."""
    result = run_cli(
        "simulate", "--bootstrap", tls_broker.bootstrap, "--events", "10", "--rate", "0",
        timeout=90,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "cannot produce to 'features'" in result.stderr
    assert "Traceback" not in result.stderr
