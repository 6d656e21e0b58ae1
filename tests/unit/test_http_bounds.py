"""What the HTTP server may spend: listen backlog, handler threads, connections, deadlines.

Real servers on 127.0.0.1 (port 0) and real sockets; no timing bound tighter than the machine's
load allows (the only lower bounds are deadlines, which cannot fire early).
"""

from __future__ import annotations

import select
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.http import HttpServer, Limits
from monitor.http.wsgiserver import WsgiServer
from monitor.metrics import PipelineMetrics
from monitor.model import Snapshot
from tests.unit.test_http import FakeHealth

SLOW = 30.0  # seconds: an upper bound that only a hung server misses


def make_server(limits: Limits | None = None) -> HttpServer:
    """A server over a registry with the pipeline metrics of one model."""
    registry = CollectorRegistry()
    PipelineMetrics(
        registry,
        topics=("features",),
        features={"fraud": tuple(f"f{i}" for i in range(20))},
        evaluation_interval_seconds=15.0,
    )
    return HttpServer(
        "127.0.0.1",
        0,
        registry=registry,
        snapshot=lambda: Snapshot(0.0),
        health=FakeHealth(),
        limits=limits,
    )


@pytest.fixture
def server() -> Iterator[HttpServer]:
    """A started server with the default limits."""
    with make_server() as started:
        yield started


def scrape(server: HttpServer, path: str = "/metrics", timeout: float = SLOW) -> int:
    """GET `path` and return the status code."""
    with urllib.request.urlopen(server.url + path, timeout=timeout) as response:
        response.read()
        return int(response.status)


def raw_exchange(port: int, data: bytes, timeout: float = SLOW) -> bytes:
    """Send `data` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def closed_by_peer(sock: socket.socket) -> bool:
    """True when the server has closed `sock` (EOF or reset), without blocking."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(4096) == b""
    except ConnectionError:
        return True


class TestBacklogAndConcurrency:
    def test_listen_backlog_is_128(self, server: HttpServer) -> None:
        """The kernel reports a listen backlog of 128 for the server socket (it was 5)."""
        ss = shutil.which("ss")
        assert ss is not None, "ss (iproute2) is needed; scripts/ensure-system-packages.sh"
        out = subprocess.run(
            [ss, "-Hltn", f"sport = :{server.port}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert out[0] == "LISTEN"
        assert int(out[2]) == 128

    def test_200_concurrent_scrapes_all_succeed(self, server: HttpServer) -> None:
        """200 clients released at once all get 200, served by at most 16 handler threads."""
        baseline = threading.active_count()
        clients = 200
        barrier = threading.Barrier(clients)
        results: list[int | BaseException] = []

        def client() -> None:
            barrier.wait()
            try:
                results.append(scrape(server))
            except Exception as exc:
                results.append(exc)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [200] * clients
        assert threading.active_count() - baseline <= Limits().workers


class TestSlowClients:
    def test_dribbling_sockets_hold_no_handler_threads(self, server: HttpServer) -> None:
        """150 sockets dribbling a request head add no thread; a scrape still answers meanwhile."""
        scrape(server)  # the first request starts a handler thread
        baseline = threading.active_count()
        with ExitStack() as stack:
            sockets = []
            for _ in range(150):
                sock = stack.enter_context(
                    socket.create_connection(("127.0.0.1", server.port), timeout=SLOW)
                )
                sock.sendall(b"GET /metrics HTTP/1.1\r\n")
                sockets.append(sock)
            for header_byte in b"X-Slow: ":
                for sock in sockets:
                    sock.sendall(bytes([header_byte]))
                time.sleep(0.05)
            assert scrape(server, timeout=10.0) == 200
            assert scrape(server, "/livez", timeout=10.0) == 200
            # Each scrape may start one more handler thread, never one per open socket.
            assert threading.active_count() <= baseline + Limits().workers
            assert not any(closed_by_peer(sock) for sock in sockets)

    def test_a_dribbling_client_is_closed_at_the_request_deadline(self) -> None:
        """A header byte every 0.2 s is cut off once the 1 s request deadline has passed."""
        with (
            make_server(Limits(request_timeout=1.0)) as server,
            socket.create_connection(("127.0.0.1", server.port), timeout=SLOW) as sock,
        ):
            start = time.monotonic()
            sock.sendall(b"GET /livez HTTP/1.1\r\n")
            closed = False
            while not closed and time.monotonic() - start < 15.0:
                time.sleep(0.2)
                try:
                    sock.sendall(b"x")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                closed = closed or closed_by_peer(sock)
            elapsed = time.monotonic() - start
            assert closed, "the dribbling connection was never closed"
            assert elapsed >= 0.9  # closed by the deadline, not at once

    def test_a_silent_client_gets_no_thread_and_is_closed(self) -> None:
        """A connection that sends nothing is closed at the deadline without an answer."""
        with make_server(Limits(request_timeout=0.5)) as server:
            start = time.monotonic()
            assert raw_exchange(server.port, b"") == b""
            assert time.monotonic() - start >= 0.4

    def test_at_the_connection_cap_new_clients_wait_for_a_free_slot(self) -> None:
        """With 3 connections open and a cap of 3, a scrape waits until one of them closes."""
        with ExitStack() as stack:
            server = stack.enter_context(make_server(Limits(max_connections=3)))
            holders = [
                stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))
                for _ in range(3)
            ]
            time.sleep(0.2)  # let the server accept them
            result: list[int] = []
            waiting = threading.Thread(target=lambda: result.append(scrape(server)))
            waiting.start()
            waiting.join(1.0)
            assert result == [], "a fourth connection was served beyond the cap"
            holders[0].close()
            waiting.join(SLOW)
            assert result == [200]


class TestMalformedRequests:
    @pytest.mark.parametrize(
        ("request_bytes", "status"),
        [
            (b"GET /livez\r\n\r\n", b"400"),
            (b"GET /livez HTTP/1.1 extra\r\n\r\n", b"400"),
            (b"GET /livez HTTP/2.0\r\n\r\n", b"505"),
            (b"GET /livez HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
            (b"GET /livez HTTP/1.1\r\n folded: header\r\n\r\n", b"400"),
            (b"GET /livez HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
            (b"GET /livez HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", b"431"),
            (b"POST /livez HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", b"413"),
            (b"POST /livez HTTP/1.1\r\nContent-Length: 300000\r\n\r\n" + b"x" * 300_000, b"413"),
            (b"GET /livez HTTP/1.1\r\nX: " + b"a" * 500_000 + b"\r\n\r\n", b"431"),
            (b"POST /livez HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400"),
            (b"POST /livez HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"400"),
        ],
    )
    def test_is_answered_with_a_client_error(
        self, server: HttpServer, request_bytes: bytes, status: bytes
    ) -> None:
        """Bad request lines, bad or oversized heads and bodies get a 4xx/505 status line."""
        answer = raw_exchange(server.port, request_bytes)
        assert answer.split(b" ", 2)[1] == status, answer[:200]
        assert scrape(server, "/livez") == 200

    def test_bare_lf_line_ends_and_leading_empty_lines_are_accepted(
        self, server: HttpServer
    ) -> None:
        """A hand-typed request (LF line ends, a stray empty line first) is served."""
        answer = raw_exchange(server.port, b"\r\nGET /livez HTTP/1.0\nHost: x\n\n")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"\r\n\r\nok\n")
        assert b"Connection: close\r\n" in answer


def test_unread_responses_beyond_the_budget_get_503_until_their_clients_read() -> None:
    """A client that asks for 24 MiB and does not read holds the budget of 32 MiB: a second
    big answer is a 503, and once the first client has read everything the next one is
    served in full."""
    body = b"x" * (24 * 2**20)

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    server = WsgiServer("127.0.0.1", 0, app, limits=Limits(max_unread_bytes=32 * 2**20))
    server.start()
    try:
        with socket.socket() as hoarder:
            hoarder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65_536)
            hoarder.settimeout(SLOW)
            hoarder.connect(("127.0.0.1", server.port))
            hoarder.sendall(b"GET / HTTP/1.1\r\n\r\n")
            first = hoarder.recv(65_536, socket.MSG_PEEK)  # the server is writing its answer
            assert first.startswith(b"HTTP/1.1 200 OK\r\n")
            busy = raw_exchange(server.port, b"GET / HTTP/1.1\r\n\r\n")
            assert busy.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), busy[:100]
            assert busy.endswith(b"too many responses not yet read by their clients; retry later\n")
            taken = []
            while chunk := hoarder.recv(1 << 20):
                taken.append(chunk)
            assert b"".join(taken).endswith(b"\r\n\r\n" + body)
        served = raw_exchange(server.port, b"GET / HTTP/1.1\r\n\r\n")
        assert served.startswith(b"HTTP/1.1 200 OK\r\n") and served.endswith(body)
    finally:
        server.stop()
