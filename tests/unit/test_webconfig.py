"""Tests for monitor.http.webconfig: the exporter-toolkit web config file, checked at load."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import ConfigError
from monitor.http import load_web_config
from tests.support.tls import ViewerFiles, viewer_files, write_web_config


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ViewerFiles:
    """One CA with server and client certificates for the module."""
    return viewer_files(tmp_path_factory.mktemp("pki"))


def load(tmp_path: Path, config: Any) -> Any:
    """Write `config` (a mapping, or raw text) and load it."""
    path = tmp_path / "web.yml"
    if isinstance(config, str):
        path.write_text(config, encoding="utf-8")
    else:
        write_web_config(path, config)
    return load_web_config(path)


def test_a_full_config_loads_tls_and_users(files: ViewerFiles, tmp_path: Path) -> None:
    """Certificate, key, client CA, client auth, versions and users all reach the result."""
    config = files.web_config(
        client_ca_file=str(files.ca),
        client_auth_type="RequireAndVerifyClientCert",
        min_version="TLS13",
    )
    loaded = load(tmp_path, config)
    assert loaded.ssl_context is not None
    assert loaded.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert loaded.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert loaded.users == {"viewer": files.password_hash.encode()}


def test_relative_paths_resolve_against_the_config_directory(
    files: ViewerFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cert_file: server.crt` next to the web config file loads whatever the working dir."""
    monkeypatch.chdir(tmp_path)
    config = {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}}
    path = write_web_config(files.ca.parent / "relative.yml", config)
    assert load_web_config(path).ssl_context is not None


@pytest.mark.parametrize("text", ["", "tls_server_config:\nbasic_auth_users:\n", "{}"])
def test_empty_sections_mean_plain_http_without_login(tmp_path: Path, text: str) -> None:
    """An empty file or empty sections: no TLS context and no users."""
    loaded = load(tmp_path, text)
    assert (loaded.ssl_context, dict(loaded.users)) == (None, {})


BAD_TLS: list[tuple[dict[str, Any], str]] = [
    ({"cert_file": "/nonexistent/server.crt"}, "tls_server_config.cert_file: file not found"),
    ({"key_file": None}, "tls_server_config.key_file: required"),
    ({"cipher_suites": ["TLS_AES_128_GCM_SHA256"]}, "tls_server_config.cipher_suites: unknown"),
    ({"min_version": "TLS11"}, "tls_server_config.min_version: must be TLS12 or TLS13"),
    ({"max_version": 13}, "tls_server_config.max_version: must be TLS12 or TLS13"),
    ({"min_version": "TLS13", "max_version": "TLS12"}, "min_version: is above max_version"),
    ({"client_auth_type": "RequireAnyClientCert"}, "tls_server_config.client_auth_type: must"),
    (
        {"client_auth_type": "RequireAndVerifyClientCert"},
        "tls_server_config.client_ca_file: required when client_auth_type is",
    ),
]


@pytest.mark.parametrize(("tls", "message"), BAD_TLS)
def test_bad_tls_settings_name_the_key(
    files: ViewerFiles, tmp_path: Path, tls: dict[str, Any], message: str
) -> None:
    """Each TLS mistake is a ConfigError naming the dotted key."""
    config = files.web_config()
    config["tls_server_config"].update(tls)
    config["tls_server_config"] = {
        k: v for k, v in config["tls_server_config"].items() if v is not None
    }
    with pytest.raises(ConfigError, match="invalid web config file") as caught:
        load(tmp_path, config)
    assert message in str(caught.value)


def test_a_client_ca_without_a_verifying_auth_type_is_refused(
    files: ViewerFiles, tmp_path: Path
) -> None:
    """client_ca_file alone would silently not check clients: an error names it."""
    config = files.web_config(client_ca_file=str(files.ca))
    with pytest.raises(ConfigError, match=r"tls_server_config\.client_ca_file: set, but"):
        load(tmp_path, config)


def test_a_certificate_that_does_not_match_its_key_is_refused(
    files: ViewerFiles, tmp_path: Path
) -> None:
    """The server certificate with the client's key fails at load, naming cert_file."""
    config = files.web_config(key_file=str(files.client_key))
    with pytest.raises(ConfigError, match=r"tls_server_config\.cert_file: cannot load"):
        load(tmp_path, config)


def test_a_non_bcrypt_hash_is_refused_without_echoing_it(tmp_path: Path) -> None:
    """A plain-text password as a user's value is an error naming the user, not the value."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"basic_auth_users": {"alice": "hunter2", "bob": "$2b$99$" + "a" * 53}})
    text = str(caught.value)
    assert "basic_auth_users.alice: is not a bcrypt hash" in text
    assert "basic_auth_users.bob: is not a bcrypt hash" in text
    assert "hunter2" not in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tls_server_config: [unclosed\n", "YAML syntax error at line"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("http_server_config:\n  http2: false\n", "http_server_config: unknown key"),
        ("basic_auth_users:\n  a: $2b$04$x\n  a: $2b$04$y\n", "duplicate key 'a'"),
        ("basic_auth_users: [a, b]\n", "basic_auth_users: should be a mapping"),
        ("tls_server_config: yes\n", "tls_server_config: should be a mapping"),
    ],
)
def test_bad_files_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    """YAML errors, a non-mapping, unknown keys and duplicate users are named."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert message in str(caught.value)
    assert "$2b$04$x" not in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A web config path that does not exist is a ConfigError naming the path."""
    with pytest.raises(ConfigError, match="not found"):
        load_web_config(tmp_path / "absent.yml")
