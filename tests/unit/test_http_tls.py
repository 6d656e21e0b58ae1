"""The viewer role over real TLS: an HttpServer with a web config file, driven with urllib.

A trustme CA signs the server (and a client) certificate; basic auth uses a bcrypt hash.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.http import HttpServer, load_web_config
from monitor.metrics import DriftCollector, PipelineMetrics
from tests.support.tls import PASSWORD, USER, ViewerFiles, viewer_files, write_web_config
from tests.unit.test_http import FakeHealth, snapshot

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ViewerFiles:
    """One CA with server and client certificates for the module."""
    return viewer_files(tmp_path_factory.mktemp("pki"))


def start_server(path: Path, config: dict[str, Any], *, metrics_public: bool) -> HttpServer:
    """A started server with the web config `config` written at `path`."""
    registry = CollectorRegistry()
    PipelineMetrics(
        registry,
        topics=("features",),
        features={"fraud": ("amount",)},
        evaluation_interval_seconds=15.0,
    )
    collector = DriftCollector(registry, snapshot(0.3))
    server = HttpServer(
        "127.0.0.1",
        0,
        registry=registry,
        snapshot=lambda: collector.snapshot,
        health=FakeHealth(),
        web_config=load_web_config(write_web_config(path, config)),
        metrics_public=metrics_public,
    )
    server.start()
    return server


@pytest.fixture
def viewer(files: ViewerFiles, tmp_path: Path) -> Iterator[HttpServer]:
    """TLS + basic auth, /metrics public."""
    server = start_server(tmp_path / "web.yml", files.web_config(), metrics_public=True)
    try:
        yield server
    finally:
        server.stop()


def get(
    url: str,
    context: ssl.SSLContext | None,
    user: str | None = None,
    password: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """GET `url` over `context` with optional basic auth; status, headers and body."""
    headers = {}
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


class TestBasicAuthOverTls:
    def test_the_url_is_https(self, viewer: HttpServer) -> None:
        """With a TLS web config the server's URL has the https scheme."""
        assert viewer.url.startswith("https://127.0.0.1:")

    def test_right_password_reads_status(self, viewer: HttpServer, files: ViewerFiles) -> None:
        """/status with the viewer's password answers 200 and the snapshot JSON."""
        status, _, body = get(viewer.url + "/status", files.client_context(), USER, PASSWORD)
        assert status == 200
        assert json.loads(body)["models"][0]["model"] == "fraud"

    @pytest.mark.parametrize(
        ("user", "password"),
        [(None, None), (USER, "wrong"), ("intruder", PASSWORD), (USER, PASSWORD + "x")],
    )
    def test_wrong_or_missing_credentials_get_401_with_a_challenge(
        self, viewer: HttpServer, files: ViewerFiles, user: str | None, password: str | None
    ) -> None:
        """/status without, or with wrong, credentials is 401 with WWW-Authenticate: Basic."""
        status, headers, body = get(viewer.url + "/status", files.client_context(), user, password)
        assert status == 401
        assert headers["WWW-Authenticate"].startswith('Basic realm="driftmon"')
        assert b"fraud" not in body

    def test_public_metrics_and_probes_need_no_login(
        self, viewer: HttpServer, files: ViewerFiles
    ) -> None:
        """With metrics_public, /metrics answers without credentials; probes always do."""
        context = files.client_context()
        status, _, body = get(viewer.url + "/metrics", context)
        assert status == 200 and b"driftmon_feature_psi" in body
        assert get(viewer.url + "/livez", context)[0] == 200
        assert get(viewer.url + "/readyz", context)[0] == 200

    def test_metrics_need_a_login_unless_public(self, files: ViewerFiles, tmp_path: Path) -> None:
        """Without metrics_public, /metrics is 401 without credentials and 200 with them."""
        server = start_server(tmp_path / "web.yml", files.web_config(), metrics_public=False)
        try:
            context = files.client_context()
            assert get(server.url + "/metrics", context)[0] == 401
            assert get(server.url + "/metrics", context, USER, PASSWORD)[0] == 200
            assert get(server.url + "/livez", context)[0] == 200
        finally:
            server.stop()

    def test_no_credential_reaches_the_output(
        self, viewer: HttpServer, files: ViewerFiles, capfd: pytest.CaptureFixture[str]
    ) -> None:
        """Failed and successful logins write nothing, so no password can leak to a log."""
        context = files.client_context()
        get(viewer.url + "/status", context, USER, "guessed-password")
        get(viewer.url + "/status", context, USER, PASSWORD)
        out, err = capfd.readouterr()
        assert (out, err) == ("", "")


class TestTls:
    def test_plain_http_to_the_tls_port_fails_and_tls_still_works(
        self, viewer: HttpServer, files: ViewerFiles
    ) -> None:
        """A plain-HTTP request gets no HTTP answer; the next TLS request is served."""
        plain = viewer.url.replace("https://", "http://") + "/livez"
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
            urllib.request.urlopen(plain, timeout=TIMEOUT)
        assert get(viewer.url + "/livez", files.client_context())[0] == 200

    def test_a_client_that_does_not_trust_the_ca_refuses_the_server(
        self, viewer: HttpServer
    ) -> None:
        """Certificate verification against the system CAs fails: the cert is the test CA's."""
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(
                viewer.url + "/livez", timeout=TIMEOUT, context=ssl.create_default_context()
            )

    def test_mutual_tls_requires_a_client_certificate(
        self, files: ViewerFiles, tmp_path: Path
    ) -> None:
        """RequireAndVerifyClientCert: no client certificate fails, the CA's one is served."""
        config = files.web_config(
            client_ca_file=str(files.ca), client_auth_type="RequireAndVerifyClientCert"
        )
        server = start_server(tmp_path / "web.yml", config, metrics_public=True)
        try:
            with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
                urllib.request.urlopen(
                    server.url + "/livez", timeout=TIMEOUT, context=files.client_context()
                ).read()
            context = files.client_context(with_client_cert=True)
            assert get(server.url + "/livez", context)[0] == 200
        finally:
            server.stop()

    def test_min_version_tls13_refuses_a_tls12_client(
        self, viewer: HttpServer, files: ViewerFiles, tmp_path: Path
    ) -> None:
        """A TLS 1.2-only client is served by default and refused under min_version TLS13."""
        context = files.client_context()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        assert get(viewer.url + "/livez", context)[0] == 200
        config = files.web_config(min_version="TLS13")
        server = start_server(tmp_path / "web13.yml", config, metrics_public=True)
        try:
            with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
                urllib.request.urlopen(server.url + "/livez", timeout=TIMEOUT, context=context)
            assert get(server.url + "/livez", files.client_context())[0] == 200
        finally:
            server.stop()
