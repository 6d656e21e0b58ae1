"""Kafka over TLS for tests: Debian's stunnel4 in front of the plaintext tansu broker.

tansu has no usable TLS (research notes), so `TlsKafka` starts three things on 127.0.0.1:

- tansu on a plaintext port P, advertising the TLS port T, so every client that bootstraps
  through T is sent back to T for the partition leader;
- stunnel on T (TLS, certificate for `127.0.0.1`/`localhost`, signed by a test CA) -> P;
- stunnel on W -> P with a certificate signed by the same CA for another host name only
  (`kafka.example.invalid`): the host-name mismatch endpoint.

`TestPki` makes the CAs and certificates with `trustme` (files in a temp directory):
`ca` is the right CA, `other_ca` a CA that signed nothing here. Everything is stopped by PID.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Self

import trustme

from monitor.dev.broker import LoggedProcess, free_port, port_open
from tests.support.broker import TansuBroker
from tests.support.ops_services import find_tool

_START_TIMEOUT_S = 10.0
WRONG_HOST = "kafka.example.invalid"


class TestPki:
    """A test CA, a server certificate for 127.0.0.1/localhost, one for WRONG_HOST, another CA."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        ca = trustme.CA()
        self.ca = directory / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca))
        self.server = directory / "server.pem"
        ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
            str(self.server)
        )
        self.wrong_host_server = directory / "wrong-host.pem"
        ca.issue_cert(WRONG_HOST).private_key_and_cert_chain_pem.write_to_path(
            str(self.wrong_host_server)
        )
        self.other_ca = directory / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(self.other_ca))


def stunnel_binary() -> str:
    """Path of stunnel (Debian `stunnel4`); a missing one fails with an install hint."""
    return find_tool("stunnel4")


class Stunnel(LoggedProcess):
    """One stunnel process in the foreground with one TLS server service per (port, cert)."""

    def __init__(self, workdir: Path, target_port: int, services: dict[int, Path]) -> None:
        super().__init__(workdir / "stunnel.log")
        self.config = workdir / "stunnel.conf"
        lines = ["foreground = yes", "pid =", "debug = 5", f"output = {workdir / 'stunnel.out'}"]
        for port, cert in services.items():
            lines += [
                f"[tls-{port}]",
                f"accept = 127.0.0.1:{port}",
                f"connect = 127.0.0.1:{target_port}",
                f"cert = {cert}",
            ]
        self.config.write_text("\n".join(lines) + "\n")
        self.ports = tuple(services)

    def start(self) -> None:
        """Start stunnel and wait until every TLS port accepts TCP connections."""
        self._spawn([stunnel_binary(), str(self.config)])
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not all(port_open(p) for p in self.ports):
            if not self.running or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise AssertionError(f"stunnel did not start:\n{tail}")
            time.sleep(0.02)


class TlsKafka:
    """tansu behind stunnel; `.bootstrap` is the TLS endpoint, `.wrong_host_bootstrap` the
    endpoint whose certificate names another host, `.plaintext_bootstrap` tansu itself."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.pki = TestPki(workdir / "pki")
        self.tls_port = free_port()
        self.wrong_host_port = free_port()
        self.broker = TansuBroker(log_path=workdir / "tansu.log", advertised_port=self.tls_port)
        self.stunnel = Stunnel(
            workdir,
            self.broker.port,
            {self.tls_port: self.pki.server, self.wrong_host_port: self.pki.wrong_host_server},
        )
        self.bootstrap = f"127.0.0.1:{self.tls_port}"
        self.wrong_host_bootstrap = f"127.0.0.1:{self.wrong_host_port}"
        self.plaintext_bootstrap = self.broker.bootstrap

    def client_kwargs(self, cafile: Path | None = None) -> dict[str, object]:
        """kafka-python kwargs for the TLS endpoint, trusting `cafile` (default: the right CA)."""
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SSL",
            "ssl_cafile": str(cafile or self.pki.ca),
        }

    def start(self) -> None:
        """Start tansu, then stunnel."""
        self.broker.start()
        try:
            self.stunnel.start()
        except BaseException:
            self.broker.stop()
            raise

    def close(self) -> None:
        """Stop stunnel, then tansu (each by PID)."""
        try:
            self.stunnel.close()
        finally:
            self.broker.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
