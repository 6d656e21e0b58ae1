"""The HTTP surface: /metrics, /livez, /readyz and /status on a thread that can be stopped.

Layer 3. It receives everything it serves as constructor arguments: the Prometheus
registry, a callable returning the latest `Snapshot`, and a `Health` object. It shares no
lock with the loop: the snapshot is an immutable value read through one reference, and the
health callables are expected to read plain flags.

Routes (GET only; any other method gets 405 with `Allow: GET`, any other path 404):

- `/metrics`: the registry in the Prometheus text format, or OpenMetrics when the `Accept`
  header asks for it (`prometheus_client.exposition.choose_encoder`). Query strings are
  ignored.
- `/livez`: 200 `ok` when `health.live()`, else 503.
- `/readyz`: 200 `ok` when `health.ready()`, else 503 with `health.reason()` as the body.
- `/status`: the latest snapshot as JSON (see `snapshot_to_json`), or as the HTML status
  page (`monitor.statuspage`) when the Accept header prefers text/html; `/ui` is always
  the page. The page is sent with a Content-Security-Policy that allows no script at all.

Access logging is off: a scrape every few seconds must not write a line to stderr.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import socket
import socketserver
import sys
import threading
from collections.abc import Callable
from enum import Enum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from monitor.model import ModelEvaluation, Snapshot
from monitor.statuspage import STATUS_PAGE_CSP, render_status_page, wants_html

__all__ = ["Health", "HttpServer", "snapshot_to_json", "to_jsonable"]

_log = structlog.get_logger(__name__)

_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"
_HTML = "text/html; charset=utf-8"


class Health(Protocol):
    """What the probes ask. Implementations must be cheap and must not block."""

    def live(self) -> bool:
        """True while the loop is turning (its heartbeat is fresh)."""
        ...

    def ready(self) -> bool:
        """True when partitions are assigned, references loaded and an evaluation ran."""
        ...

    def reason(self) -> str:
        """A short human-readable reason why the daemon is not ready ("" when ready)."""
        ...


def to_jsonable(value: object) -> Any:
    """Convert a model value into plain JSON types.

    Dataclasses become objects of their fields (a `ModelEvaluation` also gets its
    `drifted_features`), enums their values, tuples lists; NaN and ±inf become None so the
    output is always valid JSON; numpy-style numbers become int or float.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        as_float = float(value)
        return as_float if math.isfinite(as_float) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, ModelEvaluation):
            out["drifted_features"] = value.drifted_features
        return out
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def snapshot_to_json(snapshot: Snapshot) -> bytes:
    """The /status body: `{"created_at": ..., "models": [{"model": ..., "features": [...]}]}`.

    Each model carries every `ModelEvaluation` field plus `drifted_features`; each feature
    every `FeatureResult` field. Non-finite floats are rendered as null.
    """
    body = json.dumps(to_jsonable(snapshot), allow_nan=False, separators=(",", ":"))
    return body.encode("utf-8")


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the routes' dependencies, without reverse DNS at bind."""

    # Request threads are daemons, and ThreadingMixIn joins only non-daemon threads on
    # close: a client that connects and sends nothing cannot hold up stop().
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        snapshot: Callable[[], Snapshot],
        health: Health,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.registry = registry
        self.snapshot = snapshot
        self.health = health
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can stall.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Replaces the stdlib traceback on stderr; a client hanging up mid-response is normal.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        _log.exception("http_request_failed", client=str(client_address))


class _Handler(BaseHTTPRequestHandler):
    """Routes one request; every response has a Content-Length and no access log line."""

    server: _Server
    timeout = 10  # seconds a client may stay silent before its connection is dropped
    server_version = "driftmon"
    sys_version = ""

    def do_GET(self) -> None:
        """Dispatch on the path (query string ignored); a failing route answers 500."""
        path = urlsplit(self.path).path
        route = _ROUTES.get(path)
        if route is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", _TEXT)
            return
        try:
            status, body, content_type = route(self)
        except Exception:
            _log.exception("http_route_failed", path=path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", _TEXT)
            return
        self._send(status, body, content_type)

    def parse_request(self) -> bool:
        """Parse as the stdlib does, then answer every method but GET with 405 here."""
        if not super().parse_request():
            return False
        if self.command != "GET":
            self._drain_body()
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"method not allowed\n", _TEXT, allow="GET")
            return False
        return True

    def _drain_body(self, limit: int = 65536) -> None:
        """Read a small request body so closing the socket does not reset the connection."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if 0 < length <= limit:
            self.rfile.read(length)

    def _send(
        self, status: HTTPStatus, body: bytes, content_type: str, allow: str | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if allow is not None:
            self.send_header("Allow", allow)
        if content_type == _HTML:
            self.send_header("Content-Security-Policy", STATUS_PAGE_CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib access and error log (it writes every request to stderr)."""

    # --- routes: each returns (status, body, content type) ---------------------------------

    def metrics(self) -> tuple[HTTPStatus, bytes, str]:
        """The registry, encoded as the Accept header asks (text 0.0.4 or OpenMetrics)."""
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        return HTTPStatus.OK, encoder(self.server.registry), content_type

    def livez(self) -> tuple[HTTPStatus, bytes, str]:
        """200 while the loop turns, else 503."""
        if self.server.health.live():
            return HTTPStatus.OK, b"ok\n", _TEXT
        return HTTPStatus.SERVICE_UNAVAILABLE, b"not live: the loop has stalled\n", _TEXT

    def readyz(self) -> tuple[HTTPStatus, bytes, str]:
        """200 when ready, else 503 with the reason as the body."""
        health = self.server.health
        if health.ready():
            return HTTPStatus.OK, b"ok\n", _TEXT
        reason = health.reason().strip() or "not ready"
        return HTTPStatus.SERVICE_UNAVAILABLE, (reason + "\n").encode("utf-8"), _TEXT

    def status(self) -> tuple[HTTPStatus, bytes, str]:
        """The latest snapshot as JSON, or the status page when the client prefers HTML."""
        if wants_html(self.headers.get("Accept", "")):
            return self.ui()
        return HTTPStatus.OK, snapshot_to_json(self.server.snapshot()), _JSON

    def ui(self) -> tuple[HTTPStatus, bytes, str]:
        """The status page (HTML, no script) of the latest snapshot."""
        return HTTPStatus.OK, render_status_page(self.server.snapshot()), _HTML


_ROUTES: dict[str, Callable[[_Handler], tuple[HTTPStatus, bytes, str]]] = {
    "/metrics": _Handler.metrics,
    "/livez": _Handler.livez,
    "/readyz": _Handler.readyz,
    "/status": _Handler.status,
    "/ui": _Handler.ui,
}


class HttpServer:
    """Serves the routes on (host, port) from a daemon thread; port 0 picks a free port.

    Single use: `start()` binds and starts serving, `stop()` shuts down, closes the socket
    and joins the thread (idempotent). Also a context manager (start on enter, stop on exit).
    Binding errors (address in use, bad host) propagate from `start()` as `OSError`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        registry: CollectorRegistry,
        snapshot: Callable[[], Snapshot],
        health: Health,
        poll_interval: float = 0.2,
    ) -> None:
        """Keep the dependencies; nothing is bound until `start()`.

        `poll_interval` bounds how long `stop()` waits for the serving loop to notice.
        """
        self._host = host
        self._requested_port = port
        self._registry = registry
        self._snapshot = snapshot
        self._health = health
        self._poll_interval = poll_interval
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._bound_port: int | None = None
        self._stopped = False

    @property
    def port(self) -> int:
        """The bound port (the one picked when 0 was asked for). Raises before `start()`."""
        if self._bound_port is None:
            raise RuntimeError("HttpServer is not started")
        return self._bound_port

    @property
    def url(self) -> str:
        """Base URL of the server, e.g. `http://127.0.0.1:9108`."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind the socket and serve from a daemon thread named `driftmon-http`."""
        if self._server is not None or self._stopped:
            raise RuntimeError("HttpServer can be started once")
        server = _Server(
            (self._host, self._requested_port), self._registry, self._snapshot, self._health
        )
        self._server = server
        self._bound_port = int(cast(tuple[str, int], server.server_address)[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self._poll_interval},
            name="driftmon-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the listening socket and join the thread; safe to repeat."""
        if self._stopped:
            return
        self._stopped = True
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        thread.join()

    def __enter__(self) -> HttpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
