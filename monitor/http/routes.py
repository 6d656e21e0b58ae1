"""The daemon's HTTP routes as one WSGI application (served by `monitor.http.wsgiserver`).

Routes (GET only; any other method gets 405 with `Allow: GET`, any other path 404):

- `/metrics`: prometheus_client's own WSGI application (`make_wsgi_app`) over the registry:
  the text format 0.0.4, or OpenMetrics when the `Accept` header asks for it; gzip when the
  scraper sends `Accept-Encoding: gzip`; `?name[]=FAMILY` (repeatable) restricts the output to
  those families. Rendered one at a time, and a render is reused for one second by requests
  that ask alike (`monitor.http.shared_render`).
- `/livez`: 200 `ok` when `health.live()`, else 503.
- `/readyz`: 200 `ok` when `health.ready()`, else 503 with `health.reason()` as the body.
- `/status`: the latest snapshot as JSON (`monitor.http.jsonview.snapshot_to_json`), or as
  the HTML status page (`monitor.statuspage`) when the Accept header prefers text/html.
- `/ui`: the status page whatever the Accept header; it has the access rules of `/status`.
  The page is sent with a Content-Security-Policy that allows no script at all.

Access control (the viewer role): with a `BasicAuth`, `/status`, `/ui` and `/metrics` need valid
credentials (401 with `WWW-Authenticate: Basic` otherwise), except `/metrics` when
`metrics_public` is set. `/livez` and `/readyz` stay open: kubelet probes carry no credentials
and their bodies reveal nothing but a readiness reason. Every response carries
`Cache-Control: no-store`; a route that raises is logged and answered with 500.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Protocol
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import structlog
from prometheus_client import CollectorRegistry, make_wsgi_app

from monitor.http.auth import BasicAuth
from monitor.http.jsonview import snapshot_to_json
from monitor.http.shared_render import SharedRender
from monitor.model import Snapshot
from monitor.statuspage import STATUS_PAGE_CSP, render_status_page, wants_html

__all__ = ["Health", "make_app"]

_log = structlog.get_logger(__name__)

_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"
_HTML = "text/html; charset=utf-8"
_PAGE_HEADERS = [
    ("Content-Security-Policy", STATUS_PAGE_CSP),
    ("X-Content-Type-Options", "nosniff"),
]
_REALM = 'Basic realm="driftmon", charset="UTF-8"'
_OPEN_PATHS = frozenset({"/livez", "/readyz"})


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


def make_app(
    registry: CollectorRegistry,
    snapshot: Callable[[], Snapshot],
    health: Health,
    *,
    auth: BasicAuth | None = None,
    metrics_public: bool = False,
) -> WSGIApplication:
    """The dispatcher: method check, route lookup, access check, then the route."""
    metrics_app = SharedRender(make_wsgi_app(registry))

    def livez(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if health.live():
            return _answer(start_response, HTTPStatus.OK, b"ok\n", _TEXT)
        body = b"not live: the loop has stalled\n"
        return _answer(start_response, HTTPStatus.SERVICE_UNAVAILABLE, body, _TEXT)

    def readyz(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if health.ready():
            return _answer(start_response, HTTPStatus.OK, b"ok\n", _TEXT)
        body = ((health.reason().strip() or "not ready") + "\n").encode("utf-8")
        return _answer(start_response, HTTPStatus.SERVICE_UNAVAILABLE, body, _TEXT)

    def status(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if wants_html(str(environ.get("HTTP_ACCEPT", ""))):
            return ui(environ, start_response)
        return _answer(start_response, HTTPStatus.OK, snapshot_to_json(snapshot()), _JSON)

    def ui(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        page = render_status_page(snapshot())
        return _answer(start_response, HTTPStatus.OK, page, _HTML, _PAGE_HEADERS)

    routes: dict[str, WSGIApplication] = {
        "/metrics": metrics_app,
        "/livez": livez,
        "/readyz": readyz,
        "/status": status,
        "/ui": ui,
    }
    public = set(_OPEN_PATHS) | ({"/metrics"} if metrics_public else set())

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response = _no_store(start_response)
        path = str(environ.get("PATH_INFO", ""))
        if environ.get("REQUEST_METHOD") != "GET":
            body = b"method not allowed\n"
            status = HTTPStatus.METHOD_NOT_ALLOWED
            return _answer(start_response, status, body, _TEXT, [("Allow", "GET")])
        route = routes.get(path)
        if route is None:
            return _answer(start_response, HTTPStatus.NOT_FOUND, b"not found\n", _TEXT)
        if (
            auth is not None
            and path not in public
            and auth.check(environ.get("HTTP_AUTHORIZATION")) is None
        ):
            challenge = [("WWW-Authenticate", _REALM)]
            body = b"unauthorized\n"
            return _answer(start_response, HTTPStatus.UNAUTHORIZED, body, _TEXT, challenge)
        try:
            return route(environ, start_response)
        except Exception:
            _log.exception("http_route_failed", path=path)
            body = b"internal error\n"
            return _answer(start_response, HTTPStatus.INTERNAL_SERVER_ERROR, body, _TEXT)

    return app


def _answer(
    start_response: StartResponse,
    status: HTTPStatus,
    body: bytes,
    content_type: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    """Start a response with a content type (and `extra` headers) and return its body."""
    headers = [("Content-Type", content_type), *(extra or [])]
    start_response(f"{status.value} {status.phrase}", headers)
    return [body]


def _no_store(start_response: StartResponse) -> StartResponse:
    """Wrap start_response so every response carries `Cache-Control: no-store`."""

    def wrapped(
        status: str, headers: list[tuple[str, str]], exc_info: object = None, /
    ) -> Callable[[bytes], object]:
        return start_response(status, [*headers, ("Cache-Control", "no-store")])

    return wrapped
