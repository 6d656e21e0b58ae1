"""A throwaway CA, server and client certificates, and web config files for the HTTP tests.

`viewer_files(directory)` writes, with trustme: `ca.pem` (the CA), `server.crt` + `server.key`
(for 127.0.0.1 and localhost), `client.crt` + `client.key` (a client certificate from the
same CA), and returns their paths with a bcrypt hash of `PASSWORD` for `USER` (cost 4, so
tests stay fast). `write_web_config` writes an exporter-toolkit web config file.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import trustme
import yaml

USER = "viewer"
PASSWORD = "s3cret-viewer-pass"


@dataclass(frozen=True)
class ViewerFiles:
    """Paths of the generated PEM files and the viewer's bcrypt hash."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    password_hash: str

    def client_context(self, *, with_client_cert: bool = False) -> ssl.SSLContext:
        """An SSL client context trusting the CA (and presenting the client certificate)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if with_client_cert:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context

    def web_config(self, **tls: Any) -> dict[str, Any]:
        """A web config with TLS (cert + key, plus `tls` keys) and the viewer as only user."""
        return {
            "tls_server_config": {
                "cert_file": str(self.server_cert),
                "key_file": str(self.server_key),
                **tls,
            },
            "basic_auth_users": {USER: self.password_hash},
        }


def viewer_files(directory: Path) -> ViewerFiles:
    """Generate the CA, the server and client certificates into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("viewer@driftmon.test")
    paths = {
        name: directory / name
        for name in ("ca.pem", "server.crt", "server.key", "client.crt", "client.key")
    }
    ca.cert_pem.write_to_path(str(paths["ca.pem"]))
    for leaf, crt, key in (
        (server, "server.crt", "server.key"),
        (client, "client.crt", "client.key"),
    ):
        leaf.private_key_pem.write_to_path(str(paths[key]))
        for index, blob in enumerate(leaf.cert_chain_pems):
            blob.write_to_path(str(paths[crt]), append=index > 0)
    password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    return ViewerFiles(
        ca=paths["ca.pem"],
        server_cert=paths["server.crt"],
        server_key=paths["server.key"],
        client_cert=paths["client.crt"],
        client_key=paths["client.key"],
        password_hash=password_hash,
    )


def write_web_config(path: Path, config: Mapping[str, Any]) -> Path:
    """Write `config` as YAML to `path` and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    return path
