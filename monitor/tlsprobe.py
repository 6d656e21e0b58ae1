"""Name the TLS problem behind a failed Kafka connect.

kafka-python raises only `Unable to bootstrap from HOST:PORT` for a failed TLS bootstrap; the
certificate error appears only in its own log lines, once per attempt and connection. After
such a failure, `tls_problem` performs one
TLS handshake with the first bootstrap server, with an `ssl.SSLContext` built exactly as
kafka-python 3.x builds its own (TLS >= 1.2, `ssl_cafile` or the system store, optional client
certificate, `ssl_check_hostname`), and returns the reason in one line, e.g.

    TLS handshake with 127.0.0.1:9093 failed: certificate verify failed: unable to get local
    issuer certificate (is kafka.ssl_cafile the CA that signed the broker's certificate?)

Contract: returns None when the handshake succeeds, when the protocol is not SSL/SASL_SSL, or
when the TCP connect itself fails (that is an unreachable broker, not a TLS problem). Never
raises for network or certificate errors; it opens at most one socket, closed before it
returns. Only the standard library is used.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping, Sequence

__all__ = ["build_context", "split_host_port", "tls_problem"]

_HINTS: tuple[tuple[str, str], ...] = (
    (
        "unable to get local issuer certificate",
        "is kafka.ssl_cafile the CA that signed the broker's certificate?",
    ),
    ("self-signed certificate", "is kafka.ssl_cafile the CA that signed the broker's certificate?"),
    (
        "mismatch",
        "the broker's certificate does not name the host in kafka.bootstrap_servers: connect "
        "by a name it was issued for; kafka.ssl_check_hostname: false only for testing",
    ),
    ("certificate has expired", "the broker's certificate has expired"),
    (
        "wrong version number",
        "the endpoint does not speak TLS: is it a PLAINTEXT listener?",
    ),
    (
        "handshake timed out",
        "the endpoint does not answer TLS: is it a PLAINTEXT listener?",
    ),
    (
        "certificate required",
        "the broker requires a client certificate: set kafka.ssl_certfile and ssl_keyfile",
    ),
)


def split_host_port(server: str, default_port: int = 9092) -> tuple[str, int]:
    """`"host:port"`, `"[v6]:port"` or `"host"` -> (host, port); ValueError on a bad port."""
    text = server.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    return host, int(port_text) if port_text else default_port


def build_context(kwargs: Mapping[str, object]) -> ssl.SSLContext:
    """The client SSLContext kafka-python 3.x builds from these consumer kwargs.

    Raises ssl.SSLError / OSError when a certificate or key file cannot be loaded.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = bool(kwargs.get("ssl_check_hostname", True))
    cafile = kwargs.get("ssl_cafile")
    if cafile:
        ctx.load_verify_locations(str(cafile))
    else:
        ctx.load_default_certs()
    certfile = kwargs.get("ssl_certfile")
    if certfile:
        keyfile = kwargs.get("ssl_keyfile")
        password = kwargs.get("ssl_password")
        ctx.load_cert_chain(
            certfile=str(certfile),
            keyfile=None if keyfile is None else str(keyfile),
            password=None if password is None else str(password),
        )
    return ctx


def _explain(exc: BaseException) -> str:
    """The SSL error's own reason (without the `(_ssl.c:NNN)` suffix) plus a hint."""
    if isinstance(exc, TimeoutError):
        text = "the TLS handshake timed out"
    elif isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        text = f"certificate verify failed: {exc.verify_message}"
    elif isinstance(exc, ssl.SSLError) and exc.reason:
        text = str(exc.reason).replace("_", " ").lower()
    else:
        text = str(exc) or type(exc).__name__
    for needle, hint in _HINTS:
        if needle in text.lower():
            return f"{text} ({hint})"
    return text


def tls_problem(kwargs: Mapping[str, object], timeout_s: float = 3.0) -> str | None:
    """One-line reason why a TLS handshake with the first bootstrap server fails, else None."""
    if str(kwargs.get("security_protocol", "PLAINTEXT")) not in ("SSL", "SASL_SSL"):
        return None
    servers = kwargs.get("bootstrap_servers") or ["localhost:9092"]
    first = servers if isinstance(servers, str) else next(iter(_as_seq(servers)), "")
    try:
        host, port = split_host_port(str(first).split(",")[0])
    except ValueError:
        return None
    try:
        ctx = build_context(kwargs)
    except (ssl.SSLError, OSError, ValueError) as exc:
        return f"cannot load the TLS certificates or key of kafka.ssl_*: {_explain(exc)}"
    try:
        raw = socket.create_connection((host, port), timeout=timeout_s)
    except OSError:
        return None
    try:
        with ctx.wrap_socket(raw, server_hostname=host.rstrip(".")):
            return None
    except (ssl.SSLError, OSError) as exc:
        return f"TLS handshake with {host}:{port} failed: {_explain(exc)}"
    finally:
        raw.close()


def _as_seq(value: object) -> Sequence[object]:
    """A list/tuple as is; anything else as a one-element list."""
    return value if isinstance(value, list | tuple) else [value]
