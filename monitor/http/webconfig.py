"""`--web.config.file`: TLS and basic auth for the HTTP server, in the Prometheus exporter
toolkit's format, so it is configured the way every Prometheus exporter is.

    tls_server_config:
      cert_file: server.crt          # PEM certificate (and chain); required with key_file
      key_file: server.key           # PEM private key, not encrypted
      client_ca_file: clients.crt    # CAs that sign client certificates (mutual TLS)
      client_auth_type: RequireAndVerifyClientCert   # or VerifyClientCertIfGiven, NoClientCert
      min_version: TLS12             # TLS12 (default) or TLS13
      max_version: TLS13             # TLS12 or TLS13 (default)
    basic_auth_users:
      prometheus: $2b$12$...         # user: bcrypt hash (htpasswd -nBC 12 USER, or python bcrypt)

Relative file paths are resolved against the web config file's directory (as the toolkit
does). An empty or absent `tls_server_config` means plain HTTP; empty `basic_auth_users` means
no login. Everything is checked when the file is loaded, and every problem is reported as
`FILE: dotted.key: message` in one `ConfigError` (never quoting a hash or a source line):
YAML syntax, unknown keys (including the toolkit's keys driftmon does not implement, such as
`cipher_suites` or `http_server_config`), missing or unreadable files, a certificate that does
not match its key, a client CA without a verifying `client_auth_type` and the reverse, and
user values that are not bcrypt hashes (`$2a$`, `$2b$` or `$2y$`, cost 04-31).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitor.errors import ConfigError
from monitor.yamlfile import read_yaml_mapping

__all__ = ["WebConfig", "load_web_config"]

_TLS_KEYS = frozenset(
    {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version"}
)
_TOP_KEYS = frozenset({"tls_server_config", "basic_auth_users"})
_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class WebConfig:
    """A loaded web config: the TLS context (None: plain HTTP) and name -> bcrypt hash."""

    path: Path
    ssl_context: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)


class _Problems:
    """Collects `key: message` lines for one ConfigError."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{key}: {message}")


def load_web_config(path: Path) -> WebConfig:
    """Read, check and load the web config file at `path` (see the module docstring)."""
    data = read_yaml_mapping(path, "web config file")
    problems = _Problems()
    for key in sorted(set(data) - _TOP_KEYS, key=str):
        problems.add(str(key), "unknown key (supported: basic_auth_users, tls_server_config)")
    context = _tls(data.get("tls_server_config"), path.parent, problems)
    users = _users(data.get("basic_auth_users"), problems)
    if problems.lines:
        noun = "error" if len(problems.lines) == 1 else "errors"
        detail = "\n".join(f"  {line}" for line in problems.lines)
        count = len(problems.lines)
        raise ConfigError(f"invalid web config file {path}, {count} {noun}:\n{detail}")
    return WebConfig(path=path, ssl_context=context, users=users)


def _tls(section: object, base: Path, problems: _Problems) -> ssl.SSLContext | None:
    """The server SSLContext described by `tls_server_config`, or None for plain HTTP."""
    where = "tls_server_config"
    if section is None or section == {}:
        return None
    if not isinstance(section, dict):
        problems.add(where, "should be a mapping")
        return None
    count = len(problems.lines)
    for key in sorted(set(section) - _TLS_KEYS, key=str):
        problems.add(f"{where}.{key}", "unknown or unsupported key")
    files = {
        key: _file(section.get(key), base, f"{where}.{key}", problems, required=required)
        for key, required in (("cert_file", True), ("key_file", True), ("client_ca_file", False))
    }
    auth_name = section.get("client_auth_type", "NoClientCert")
    verify = _CLIENT_AUTH.get(auth_name) if isinstance(auth_name, str) else None
    if verify is None:
        problems.add(f"{where}.client_auth_type", f"must be one of {', '.join(_CLIENT_AUTH)}")
    elif verify is ssl.CERT_NONE and section.get("client_ca_file") is not None:
        problems.add(
            f"{where}.client_ca_file", "set, but client_auth_type does not verify client certs"
        )
    elif verify is not ssl.CERT_NONE and section.get("client_ca_file") is None:
        problems.add(f"{where}.client_ca_file", f"required when client_auth_type is {auth_name}")
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        name = section.get(key, default)
        version = _VERSIONS.get(name) if isinstance(name, str) else None
        if version is None:
            problems.add(f"{where}.{key}", "must be TLS12 or TLS13")
        versions[key] = version
    if len(problems.lines) > count:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = versions["min_version"] or ssl.TLSVersion.TLSv1_2
    context.maximum_version = versions["max_version"] or ssl.TLSVersion.TLSv1_3
    if context.minimum_version > context.maximum_version:
        problems.add(f"{where}.min_version", "is above max_version")
        return None
    cert, key, ca = files["cert_file"], files["key_file"], files["client_ca_file"]
    assert cert is not None and key is not None
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        reason = f"cannot load the certificate with key_file ({_why(exc)})"
        problems.add(f"{where}.cert_file", reason)
        return None
    if ca is not None:
        try:
            context.load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError) as exc:
            problems.add(f"{where}.client_ca_file", f"cannot load the CA bundle ({_why(exc)})")
            return None
    context.verify_mode = verify or ssl.CERT_NONE
    return context


def _file(
    value: object, base: Path, key: str, problems: _Problems, *, required: bool
) -> Path | None:
    """A readable file path, relative ones resolved against `base`."""
    if value is None:
        if required:
            problems.add(key, "required")
        return None
    if not isinstance(value, str) or not value:
        problems.add(key, "should be a file path")
        return None
    path = base / Path(value).expanduser()
    if not path.is_file():
        problems.add(key, f"file not found: {str(path)!r}")
        return None
    return path


def _users(section: object, problems: _Problems) -> dict[str, bytes]:
    """`basic_auth_users` as name -> bcrypt hash bytes."""
    where = "basic_auth_users"
    if section is None:
        return {}
    if not isinstance(section, dict):
        problems.add(where, "should be a mapping of user names to bcrypt hashes")
        return {}
    users: dict[str, bytes] = {}
    for name, hashed in section.items():
        if not isinstance(name, str) or not name or ":" in name:
            problems.add(where, "a user name must be a non-empty string without ':'")
            continue
        if not isinstance(hashed, str) or not _BCRYPT.fullmatch(hashed):
            problems.add(f"{where}.{name}", "is not a bcrypt hash ($2a$/$2b$/$2y$, cost 04-31)")
            continue
        users[name] = hashed.encode("ascii")
    return users


def _why(exc: BaseException) -> str:
    """A short reason from an ssl/OS error, without paths or file contents."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
