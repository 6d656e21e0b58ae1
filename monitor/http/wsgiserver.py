"""A bounded HTTP/1.1 server for one WSGI application: an asyncio loop in one thread reads
every connection, a small pool of handler threads runs the application.

Why not `wsgiref` or `ThreadingHTTPServer`: they spend a thread per connection from accept to
close, so 150 clients that each dribble a header byte per second hold 150 threads, and with a
thread cap a scrape would wait behind them. Here waiting costs no thread: only a complete
request is handed to a handler thread.

Bounds (`Limits`, defaults in brackets):

- listen backlog `backlog` [128]: connections the kernel queues while the server is busy;
- at most `max_connections` [256] open connections; at the cap the server stops accepting, new
  connections wait in the backlog (the kernel refuses them once it is full);
- at most `workers` [16] handler threads run the application; further complete requests wait
  for a free one, holding no thread;
- `request_timeout` [10 s]: the total time a connection has to finish its TLS handshake and send
  the request head (≤ `max_head_bytes`, ≤ `max_header_lines` lines) and body
  (≤ `max_body_bytes`), whatever its pace. A client that dribbles a byte a second is closed
  without an answer when it runs out;
- `write_timeout` [10 s]: the time a client has to take the response (and, for TLS, to close);
- `max_unread_bytes` [32 MiB]: the response bytes all connections together may hold before
  their clients have read them (a client that sends `GET /metrics` and never reads holds its
  copy for `write_timeout`: 250 of them held 2.2 MiB each at 1,000 features, +224 MiB). A
  request that arrives with the budget spent is answered 503 (small) without running the
  application, and a response that would go over it is replaced by that 503, unless no
  other response is unread: one response of any size is always served.

Protocol: one request per connection, `Connection: close` on every response, which always
carries a Content-Length. A malformed request gets 400, a head over the limits 431, a body over
the limit 413, an HTTP major version other than 1 gets 505. The application gets a PEP 3333
environ (`wsgi.url_scheme` is https behind TLS; header names containing `_` are dropped so they
cannot pose as `-` names); its response is collected in memory, then written. An exception from
the application is logged and answered with 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit
from wsgiref.types import WSGIApplication, WSGIEnvironment

import structlog

__all__ = ["Limits", "WsgiServer"]

_log = structlog.get_logger(__name__)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/(\d)\.(\d)")
_STATUS = re.compile(r"[1-5]\d\d [^\r\n]*")
_OWN_HEADERS = frozenset({"content-length", "connection", "date", "server", "transfer-encoding"})
_LINGER_BYTES = 1 << 20
_QUIET_ERRORS = (ConnectionError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError)

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None] | None
_Response = tuple[str, list[tuple[str, str]], bytes]


@dataclass(frozen=True)
class Limits:
    """What one server may spend; see the module docstring for each bound."""

    backlog: int = 128
    max_connections: int = 256
    workers: int = 16
    request_timeout: float = 10.0
    write_timeout: float = 10.0
    max_head_bytes: int = 65_536
    max_header_lines: int = 100
    max_body_bytes: int = 65_536
    max_unread_bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes


class _RejectError(Exception):
    """The request cannot be served; answer `status` with `message` and close."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _ClientGoneError(Exception):
    """The client closed the connection before its request was complete."""


class WsgiServer:
    """Serves `app` on (host, port) until `stop()`; port 0 picks a free port.

    Single use: `start()` binds (raising `OSError` when it cannot) and starts the loop thread
    named `name`; handler threads are named `name-worker_N`. `stop()` closes the listening
    socket and every connection and joins the loop thread; it is idempotent. With
    `ssl_context`, every connection is TLS (handshake inside `request_timeout`).
    """

    def __init__(
        self,
        host: str,
        port: int,
        app: WSGIApplication,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: Limits | None = None,
        name: str = "driftmon-http",
        server_header: str = "driftmon",
    ) -> None:
        """Keep the arguments; nothing is bound until `start()`."""
        self._host = host
        self._requested_port = port
        self._app = app
        self._ssl = ssl_context
        self._limits = limits or Limits()
        self._name = name
        self._server_header = server_header
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._ready = threading.Event()
        self._stop_requested: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._unread = 0
        """Response bytes written to connections and not yet taken by their clients."""
        self._port: int | None = None
        self._stopped = False

    @property
    def port(self) -> int:
        """The bound port (the one picked when 0 was asked for). Raises before `start()`."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def scheme(self) -> str:
        """`https` with an SSL context, else `http`."""
        return "http" if self._ssl is None else "https"

    def start(self) -> None:
        """Bind and listen, then serve from the loop thread."""
        if self._sock is not None or self._stopped:
            raise RuntimeError("the server can be started once")
        self._sock = _listen(self._host, self._requested_port, self._limits.backlog)
        self._port = int(self._sock.getsockname()[1])
        self._pool = ThreadPoolExecutor(
            self._limits.workers, thread_name_prefix=f"{self._name}-worker"
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def stop(self) -> None:
        """Close the listening socket and every connection, join the loop thread; repeatable."""
        if self._stopped:
            return
        self._stopped = True
        loop, thread, stop_requested = self._loop, self._thread, self._stop_requested
        if loop is not None and thread is not None and stop_requested is not None:
            loop.call_soon_threadsafe(stop_requested.set)
            thread.join()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._sock is not None:
            self._sock.close()

    # --- the loop thread ---------------------------------------------------------------------

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(_on_loop_error)
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop_requested = asyncio.Event()
        self._room = asyncio.Event()
        self._ready.set()
        accepting = asyncio.create_task(self._accept_forever())
        await self._stop_requested.wait()
        accepting.cancel()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(accepting, *self._connections, return_exceptions=True)
        await asyncio.sleep(0)  # let the transports' connection_lost callbacks run

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        sock, room = self._sock, self._room
        assert sock is not None and room is not None
        while True:
            if len(self._connections) >= self._limits.max_connections:
                room.clear()
                await room.wait()
                continue
            try:
                conn, address = await loop.sock_accept(sock)
            except OSError as exc:  # EMFILE and friends: back off instead of spinning
                _log.warning("http_accept_failed", error=str(exc))
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._connection(conn, address))
            self._connections.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._connections.discard(task)
        if self._room is not None:
            self._room.set()

    async def _connection(self, conn: socket.socket, address: Any) -> None:
        """One connection: read the request within the deadline, run the app, answer, close."""
        loop = asyncio.get_running_loop()
        writer: asyncio.StreamWriter | None = None
        handed_over = False
        rejected = False
        method = ""
        try:
            try:
                async with asyncio.timeout(self._limits.request_timeout):
                    handed_over = True
                    reader, writer = await self._open(conn)
                    request = await self._read_request(reader)
            except _RejectError as reject:
                response = _plain(reject.status, reject.message)
                rejected = True
            else:
                method = request.method
                assert self._pool is not None
                if self._unread >= self._limits.max_unread_bytes:
                    response = _BUSY  # not even rendered
                else:
                    response = await loop.run_in_executor(
                        self._pool, self._respond, request, address
                    )
            assert writer is not None
            data = _serialize(response, self._server_header, method)
            if self._unread and self._unread + len(data) > self._limits.max_unread_bytes:
                data = _serialize(_BUSY, self._server_header, method)
            del response  # `data` alone holds the answer; the transport copies what is unsent
            size = len(data)
            self._unread += size
            try:
                async with asyncio.timeout(self._limits.write_timeout):
                    writer.write(data)
                    del data
                    await writer.drain()
                    if rejected:
                        await _linger(reader, writer)
                    writer.close()
                    await writer.wait_closed()
            finally:
                self._unread -= size
        except (*_QUIET_ERRORS, _ClientGoneError):
            pass
        except Exception:
            _log.exception("http_connection_failed")
        finally:
            if writer is not None:
                writer.transport.abort()  # a no-op once closed; ends a timed-out connection
            elif not handed_over:
                conn.close()

    async def _open(self, conn: socket.socket) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Wrap the accepted socket in streams (after the TLS handshake, with a context)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self._limits.max_head_bytes, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        tls: dict[str, Any] = {}
        if self._ssl is not None:
            tls = {
                "ssl": self._ssl,
                "ssl_handshake_timeout": self._limits.request_timeout,
                "ssl_shutdown_timeout": self._limits.write_timeout,
            }
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn, **tls)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    async def _read_request(self, reader: asyncio.StreamReader) -> _Request:
        """Read and check the request line, the header lines and a Content-Length body."""
        limits = self._limits
        lines: list[str] = []
        size = 0
        while True:
            try:
                raw = await reader.readline()
            except ValueError:  # a line longer than the stream limit
                status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
                raise _RejectError(status, "head too large") from None
            if not raw.endswith(b"\n"):
                raise _ClientGoneError
            size += len(raw)
            if size > limits.max_head_bytes or len(lines) > limits.max_header_lines:
                raise _RejectError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "head too large")
            text = raw.decode("latin-1").rstrip("\r\n")
            if not text:
                if lines:
                    break
                continue  # RFC 9112 2.2: ignore empty lines before the request line
            lines.append(text)
        method, target, version = _request_line(lines[0])
        headers = _header_fields(lines[1:])
        length = _content_length(headers, limits.max_body_bytes)
        body = await reader.readexactly(length) if length else b""
        return _Request(method, target, version, headers, body)

    # --- a handler thread ----------------------------------------------------------------------

    def _respond(self, request: _Request, address: Any) -> _Response:
        """Run the application on the request (in a handler thread)."""
        environ = self._environ(request, address)
        return _call(self._app, environ)

    def _environ(self, request: _Request, address: Any) -> WSGIEnvironment:
        parts = urlsplit(request.target)
        environ: WSGIEnvironment = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(parts.path).decode("latin-1"),
            "QUERY_STRING": parts.query,
            "SERVER_NAME": self._host,
            "SERVER_PORT": str(self._port),
            "SERVER_PROTOCOL": request.version,
            "REMOTE_ADDR": str(address[0]) if isinstance(address, tuple) else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": self.scheme,
            "wsgi.input": io.BytesIO(request.body),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in request.headers:
            if "_" in name:
                continue
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = value
                continue
            key = "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After an error answer to a request that was not read whole: half-close, then discard
    what the client still sends (≤ 1 MiB, ≤ 1 s), so closing does not reset the connection
    and destroy the answer before the client has read it."""
    if writer.can_write_eof():
        writer.write_eof()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            discarded = 0
            while discarded < _LINGER_BYTES and (chunk := await reader.read(65_536)):
                discarded += len(chunk)


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking listening socket on (host, port) with SO_REUSEADDR."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _request_line(line: str) -> tuple[str, str, str]:
    """`METHOD target HTTP/1.x`, else 400 (505 for another major version)."""
    parts = line.split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise _RejectError(HTTPStatus.BAD_REQUEST, "bad request line")
    version = _VERSION.fullmatch(parts[2])
    if version is None:
        raise _RejectError(HTTPStatus.BAD_REQUEST, "bad request line")
    if version.group(1) != "1":
        raise _RejectError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "only HTTP/1.x")
    return parts[0], parts[1], parts[2]


def _header_fields(lines: list[str]) -> list[tuple[str, str]]:
    """`name: value` pairs; folded lines and names that are not tokens are 400."""
    fields: list[tuple[str, str]] = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise _RejectError(HTTPStatus.BAD_REQUEST, "bad header line")
        fields.append((name, value.strip(" \t")))
    return fields


def _content_length(headers: list[tuple[str, str]], limit: int) -> int:
    """The body length: 0 without a body; chunked or a bad length is 400, too long 413."""
    names = {name.lower() for name, _ in headers}
    if "transfer-encoding" in names:
        raise _RejectError(HTTPStatus.BAD_REQUEST, "chunked request bodies are not accepted")
    values = {value for name, value in headers if name.lower() == "content-length"}
    if not values:
        return 0
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise _RejectError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
    length = int(next(iter(values)))
    if length > limit:
        raise _RejectError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")
    return length


def _call(app: WSGIApplication, environ: WSGIEnvironment) -> _Response:
    """Run a WSGI application to completion; any failure becomes a 500."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: _ExcInfo = None, /
    ) -> Callable[[bytes], object]:
        started[:] = [(status, list(headers))]
        return chunks.append

    try:
        result: Iterable[bytes] = app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not started or not _STATUS.fullmatch(started[0][0]):
            raise RuntimeError("the application did not start a valid response")
    except Exception:
        _log.exception("http_application_failed", path=environ.get("PATH_INFO", ""))
        return _plain(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
    status, headers = started[0]
    return status, headers, b"".join(chunks)


def _plain(status: HTTPStatus, message: str) -> _Response:
    """A short text/plain response."""
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    return f"{status.value} {status.phrase}", headers, (message + "\n").encode("utf-8")


_BUSY: _Response = _plain(
    HTTPStatus.SERVICE_UNAVAILABLE,
    "too many responses not yet read by their clients; retry later",
)
"""The answer over `max_unread_bytes`."""


def _serialize(response: _Response, server: str, method: str) -> bytes:
    """Status line, the application's headers (CR/LF refused), Content-Length, close."""
    status, headers, body = response
    lines = [f"HTTP/1.1 {status}"]
    for name, value in headers:
        if name.lower() in _OWN_HEADERS:
            continue
        if not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value:
            _log.error("http_bad_response_header", header=name)
            failure = _plain(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
            return _serialize(failure, server, "")
        lines.append(f"{name}: {value}")
    lines += [
        f"Content-Length: {len(body)}",
        "Connection: close",
        f"Server: {server}",
        f"Date: {formatdate(usegmt=True)}",
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if method == "HEAD" else head + body


def _on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler: a client's network trouble is normal, the rest logged."""
    error = context.get("exception")
    if isinstance(error, _QUIET_ERRORS):
        return
    _log.warning("http_loop_error", message=str(context.get("message", "")), error=repr(error))
