"""Kafka SASL settings: config -> kafka-python kwargs, checked against kafka-python's own SASL
mechanisms and an RFC 5802 SCRAM server written here; the password never leaks.

tansu cannot authenticate (no SASL users can exist there), so the SCRAM exchange is played
between kafka-python's client mechanism and `ScramServer` below, which holds only what a broker
stores (salt, iterations, StoredKey, ServerKey), as `kafka-configs.sh --add-config
SCRAM-SHA-512=[password=...]` does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaConsumer
from kafka.net.sasl import get_sasl_mechanism

from monitor.config import Settings, load_settings, redacted_dump
from monitor.errors import ConfigError
from monitor.source import producer_kwargs
from tests.support.daemon_harness import run_cli

PASSWORD = "Pa55-w0rd!with,comma=and\u00e9"
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


def sasl_settings(mechanism: str, protocol: str, tmp_path: Path, **extra: Any) -> Settings:
    """Settings with the given SASL mechanism and protocol, the password from the environment."""
    kafka: dict[str, Any] = {
        "bootstrap_servers": "broker:9093",
        "topics": ["features"],
        "security_protocol": protocol,
        "sasl_mechanism": mechanism,
        "sasl_username": "driftmon",
        **extra,
    }
    path = tmp_path / "driftmon.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": kafka,
                "models": [{"name": "m", "features": [{"name": "x", "kind": "numeric"}]}],
            }
        )
    )
    return load_settings(path, {"DRIFTMON_KAFKA__SASL_PASSWORD": PASSWORD})


class ScramServer:
    """The server side of SCRAM (RFC 5802) for one user, from the credentials a broker stores."""

    def __init__(self, mechanism: str, user: str, password: str, iterations: int = 4096) -> None:
        self.hash = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mechanism]
        self.user = user
        self.salt = os.urandom(16)
        self.iterations = iterations
        salted = hashlib.pbkdf2_hmac(self.hash, password.encode(), self.salt, iterations)
        client_key = self._hmac(salted, b"Client Key")
        self.stored_key = hashlib.new(self.hash, client_key).digest()
        self.server_key = self._hmac(salted, b"Server Key")
        self.nonce = base64.b64encode(os.urandom(18)).decode()

    def _hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.hash).digest()

    def first(self, client_first: bytes) -> bytes:
        """Answer the client-first message (`n,,n=user,r=nonce`)."""
        assert client_first.startswith(b"n,,")
        self.client_first_bare = client_first[3:]
        attrs = dict(p.split(b"=", 1) for p in self.client_first_bare.split(b","))
        assert attrs[b"n"].decode() == self.user
        self.combined = attrs[b"r"].decode() + self.nonce
        salt = base64.b64encode(self.salt).decode()
        self.server_first = f"r={self.combined},s={salt},i={self.iterations}".encode()
        return self.server_first

    def final(self, client_final: bytes) -> bytes | None:
        """Check the client proof; the server-final message, or None when the proof is wrong."""
        without_proof, _, proof = client_final.rpartition(b",p=")
        auth_message = self.client_first_bare + b"," + self.server_first + b"," + without_proof
        signature = self._hmac(self.stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
        if not hmac.compare_digest(hashlib.new(self.hash, client_key).digest(), self.stored_key):
            return None
        return b"v=" + base64.b64encode(self._hmac(self.server_key, auth_message))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sasl_kwargs_use_kafka_python_names(tmp_path: Path, mechanism: str, protocol: str) -> None:
    """Every mechanism x protocol maps to kafka-python's keys, password revealed only there."""
    kwargs = sasl_settings(mechanism, protocol, tmp_path).kafka.client_kwargs()
    assert {k: kwargs[k] for k in kwargs if k.startswith(("sasl", "security"))} == {
        "security_protocol": protocol,
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "driftmon",
        "sasl_plain_password": PASSWORD,
    }
    assert set(kwargs) <= set(KafkaConsumer.DEFAULT_CONFIG)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_exchange_with_the_configured_password_succeeds(
    tmp_path: Path, mechanism: str, protocol: str
) -> None:
    """kafka-python's SCRAM client, built from the config's kwargs, proves the password to an
    RFC 5802 server and accepts the server's signature."""
    kwargs = sasl_settings(mechanism, protocol, tmp_path).kafka.consumer_kwargs()
    client = get_sasl_mechanism(mechanism)(**kwargs)
    server = ScramServer(mechanism, "driftmon", PASSWORD)
    client.receive(server.first(client.auth_bytes()))
    server_final = server.final(client.auth_bytes())
    assert server_final is not None, "the server rejected the client proof"
    assert client.receive(server_final) is True
    assert client.is_authenticated()


def test_scram_server_rejects_a_wrong_password(tmp_path: Path) -> None:
    """The test server is not a rubber stamp: a client with another password fails the proof."""
    kwargs = sasl_settings("SCRAM-SHA-512", "SASL_SSL", tmp_path).kafka.consumer_kwargs()
    client = get_sasl_mechanism("SCRAM-SHA-512")(**kwargs)
    server = ScramServer("SCRAM-SHA-512", "driftmon", PASSWORD + "x")
    client.receive(server.first(client.auth_bytes()))
    assert server.final(client.auth_bytes()) is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_plain_sends_the_configured_credentials(tmp_path: Path, protocol: str) -> None:
    """kafka-python's PLAIN mechanism sends authzid NUL user NUL password (RFC 4616)."""
    kwargs = sasl_settings("PLAIN", protocol, tmp_path).kafka.consumer_kwargs()
    client = get_sasl_mechanism("PLAIN")(**kwargs)
    assert client.auth_bytes() == f"driftmon\0driftmon\0{PASSWORD}".encode()


def test_dead_letter_producer_keeps_the_sasl_settings(tmp_path: Path) -> None:
    """The producer kwargs derived for the dead-letter sink carry TLS and SASL unchanged."""
    settings = sasl_settings("SCRAM-SHA-512", "SASL_SSL", tmp_path, ssl_check_hostname=False)
    kwargs = producer_kwargs(settings.kafka.consumer_kwargs())
    assert kwargs["sasl_plain_password"] == PASSWORD
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["ssl_check_hostname"] is False
    assert "group_id" not in kwargs


@pytest.mark.parametrize("missing", ["sasl_mechanism", "sasl_username"])
def test_sasl_without_mechanism_or_user_is_a_config_error(tmp_path: Path, missing: str) -> None:
    """SASL_SSL needs a mechanism and a user; the message names the key, not the password."""
    path = tmp_path / "c.yaml"
    kafka = {
        "topics": ["t"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
        "sasl_username": "u",
    }
    del kafka[missing]
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": kafka,
                "models": [{"name": "m", "features": [{"name": "x", "kind": "numeric"}]}],
            }
        )
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, {"DRIFTMON_KAFKA__SASL_PASSWORD": PASSWORD})
    assert f"kafka.{missing}: required when security_protocol is SASL_SSL" in str(info.value)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_password_not_in_repr_or_dump(tmp_path: Path, mechanism: str) -> None:
    """repr, str and the redacted dump of SASL settings never hold the password."""
    settings = sasl_settings(mechanism, "SASL_SSL", tmp_path)
    for text in (repr(settings), str(settings), repr(settings.kafka), str(settings.kafka)):
        assert PASSWORD not in text
    assert PASSWORD not in json.dumps(redacted_dump(settings))


def test_check_config_output_hides_the_password(tmp_path: Path) -> None:
    """`driftmon check-config` prints the SASL settings with the password as asterisks."""
    path = tmp_path / "driftmon.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "topics": ["t"],
                    "security_protocol": "SASL_PLAINTEXT",
                    "sasl_mechanism": "SCRAM-SHA-256",
                    "sasl_username": "driftmon",
                },
                "models": [{"name": "m", "features": [{"name": "x", "kind": "numeric"}]}],
            }
        )
    )
    proc = run_cli(
        "check-config", "--config", str(path), env={"DRIFTMON_KAFKA__SASL_PASSWORD": PASSWORD}
    )
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["kafka"]["sasl_password"] == "**********"
