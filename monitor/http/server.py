"""`HttpServer`: the daemon's routes (`monitor.http.routes`) on a bounded server
(`monitor.http.wsgiserver`), with the TLS and basic auth of a web config file.

It receives everything it serves as constructor arguments: the Prometheus registry, a callable
returning the latest `Snapshot`, a `Health` object and optionally a loaded `WebConfig`. It
shares no lock with the loop: the snapshot is an immutable value read through one reference,
and the health callables are expected to read plain flags. Access logging is off: a scrape
every few seconds must not write a line anywhere.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from monitor.http.auth import BasicAuth
from monitor.http.routes import Health, make_app
from monitor.http.webconfig import WebConfig
from monitor.http.wsgiserver import Limits, WsgiServer
from monitor.model import Snapshot

__all__ = ["HttpServer"]


class HttpServer:
    """Serves /metrics, /livez, /readyz and /status on (host, port); port 0 picks a free port.

    Single use: `start()` binds and starts serving from a daemon thread named `driftmon-http`
    (binding errors such as an address in use propagate as `OSError`); `stop()` closes the
    socket and every connection and joins the thread (idempotent). Also a context manager.
    With `web_config`, TLS and basic auth apply as `monitor.http.routes` describes;
    `metrics_public` leaves /metrics open when users are configured.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        registry: CollectorRegistry,
        snapshot: Callable[[], Snapshot],
        health: Health,
        web_config: WebConfig | None = None,
        metrics_public: bool = False,
        limits: Limits | None = None,
    ) -> None:
        """Build the application and the server; nothing is bound until `start()`."""
        auth = None
        ssl_context = None
        if web_config is not None:
            auth = BasicAuth(web_config.users) if web_config.users else None
            ssl_context = web_config.ssl_context
        app = make_app(registry, snapshot, health, auth=auth, metrics_public=metrics_public)
        self._host = host
        self._server = WsgiServer(host, port, app, ssl_context=ssl_context, limits=limits)

    @property
    def port(self) -> int:
        """The bound port (the one picked when 0 was asked for). Raises before `start()`."""
        return self._server.port

    @property
    def url(self) -> str:
        """Base URL of the server, e.g. `http://127.0.0.1:9108` (https behind TLS)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{self._server.scheme}://{host}:{self.port}"

    def start(self) -> None:
        """Bind the socket and start serving."""
        self._server.start()

    def stop(self) -> None:
        """Stop serving, close the socket and every connection; safe to repeat."""
        self._server.stop()

    def __enter__(self) -> HttpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
