"""monitor.http.shared_render: one render at a time, reused by alike requests for a second."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from monitor.http.shared_render import SharedRender


class Counting:
    """A WSGI app that counts its renders and the most that ever ran at once."""

    def __init__(self) -> None:
        self.renders = 0
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.renders += 1
            n = self.renders
        time.sleep(0.05)
        with self._lock:
            self.running -= 1
        gzip = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "")
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Gzip", str(gzip))])
        return [f"render {n} {environ.get('QUERY_STRING', '')}".encode()]


def _get(app: SharedRender, **environ: str) -> tuple[str, list[tuple[str, str]], bytes]:
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> Any:
        started.append((status, headers))

    body = b"".join(app(environ, start_response))
    return started[0][0], started[0][1], body


def test_concurrent_alike_requests_share_one_render_and_never_render_side_by_side() -> None:
    """40 requests from 8 threads at once: one render at a time, at most a few renders."""
    inner = Counting()
    app = SharedRender(inner, reuse_s=60.0)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _get(app, QUERY_STRING="a"), range(40)))
    assert inner.most == 1 and inner.renders == app.renders == 1
    assert {body for _, _, body in answers} == {b"render 1 a"}


def test_another_key_or_an_old_render_is_rendered_again() -> None:
    """The query, Accept and gzip each key a render; a render older than reuse_s is redone."""
    now = [0.0]
    inner = Counting()
    app = SharedRender(inner, reuse_s=1.0, clock=lambda: now[0])
    assert _get(app, QUERY_STRING="a")[2] == b"render 1 a"
    assert _get(app, QUERY_STRING="a")[2] == b"render 1 a"
    assert _get(app, QUERY_STRING="b")[2] == b"render 2 b"
    status, headers, body = _get(app, QUERY_STRING="b", HTTP_ACCEPT_ENCODING="gzip")
    assert body == b"render 3 b" and ("X-Gzip", "True") in headers and status == "200 OK"
    assert _get(app, QUERY_STRING="b", HTTP_ACCEPT="application/openmetrics-text")[2] == (
        b"render 4 b"
    )
    now[0] = 1.5
    assert _get(app, QUERY_STRING="b", HTTP_ACCEPT="application/openmetrics-text")[2] == (
        b"render 5 b"
    )
