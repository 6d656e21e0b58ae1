"""monitor.tlsprobe without a network: address parsing, the context it builds, the wording.

The handshakes themselves (right CA, wrong CA, host-name mismatch, plaintext listener) run
against stunnel in tests/integration/test_kafka_tls.py.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from monitor.tlsprobe import build_context, split_host_port, tls_problem


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("broker:9093", ("broker", 9093)),
        ("broker", ("broker", 9092)),
        ("[::1]:9093", ("::1", 9093)),
        ("[::1]", ("::1", 9092)),
        (" 10.0.0.5:19093 ", ("10.0.0.5", 19093)),
    ],
)
def test_split_host_port(server: str, expected: tuple[str, int]) -> None:
    """host:port, a bare host (port 9092) and bracketed IPv6 addresses are understood."""
    assert split_host_port(server) == expected


def test_split_host_port_rejects_a_bad_port() -> None:
    """A non-numeric port is a ValueError, which tls_problem turns into no diagnosis."""
    with pytest.raises(ValueError):
        split_host_port("broker:ninety")
    assert tls_problem({"security_protocol": "SSL", "bootstrap_servers": ["b:x"]}) is None


def test_context_matches_kafka_python(tmp_path: Path) -> None:
    """TLS >= 1.2, certificates required, host names checked unless disabled, the CA loaded."""
    ca = trustme.CA()
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    ctx = build_context({"ssl_cafile": str(cafile)})
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    assert ctx.cert_store_stats()["x509_ca"] == 1
    relaxed = build_context({"ssl_cafile": str(cafile), "ssl_check_hostname": False})
    assert relaxed.check_hostname is False
    assert relaxed.verify_mode == ssl.CERT_REQUIRED


def test_client_certificate_with_a_wrong_password_is_named(tmp_path: Path) -> None:
    """An encrypted client key with the wrong ssl_password is a loading problem, password hidden."""
    ca = trustme.CA()
    cert = ca.issue_cert("driftmon")
    certfile, keyfile = tmp_path / "client.pem", tmp_path / "client.key"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"right-passphrase"),
        )
    )
    kwargs = {
        "security_protocol": "SSL",
        "bootstrap_servers": ["127.0.0.1:1"],
        "ssl_certfile": str(certfile),
        "ssl_keyfile": str(keyfile),
        "ssl_password": "Wrong-Passphrase-9",
    }
    problem = tls_problem(kwargs)
    assert problem is not None and problem.startswith("cannot load the TLS certificates")
    assert "Wrong-Passphrase-9" not in problem
    build_context({**kwargs, "ssl_password": "right-passphrase"})  # loads with the right one
