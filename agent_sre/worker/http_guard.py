"""Connection limits for the HTTP ingress: a cap on open connections and a deadline on each request head.

aiohttp (up to 3.14 at least) gives a client as long as it likes to send a request's head: one
that connects and trickles header bytes, or sends nothing, holds its connection and buffers, and
a few hundred of them hold the memory. So every connection passes through `ConnectionGuard`,
which sits between the listening socket and aiohttp's protocol:
- beyond `max_connections` open at once, a new connection gets a 503 and is closed before
  aiohttp sees it, so it costs no parser, buffers or task;
- a connection must deliver a complete request head within `header_timeout_s` of opening, or
  of its previous request being handled (keep-alive), or it is aborted. An abort, rather than a
  408, because Alertmanager does not retry a 4xx but does retry a dropped connection.

The deadline is lifted while a handler runs: `head_deadline`, a middleware, tells the guard when
a head has been read and when its handler is done. The body's own deadline is the handlers'
(see http.py), as only they know when a body has been read; any other handler leaves an unread
body to aiohttp, which reads it for at most its lingering time (10 s) and then closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

log = logging.getLogger(__name__)

# Sent as is, before any request was read: there is no request to answer with aiohttp.
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 27\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\ntoo many connections; retry"
)


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_timeout_s: float
    on_refused: Callable[[], None] = field(default=lambda: None)  # e.g. count it
    on_timeout: Callable[[], None] = field(default=lambda: None)


LIMITS = web.AppKey("connection_limits", ConnectionLimits)


class ConnectionGuard:
    """Protocol factory wrapping aiohttp's: counts the connections it admits, times their heads."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], limits: ConnectionLimits) -> None:
        self.factory = factory
        self.limits = limits
        self.open = 0

    def __call__(self) -> asyncio.Protocol:
        return _Connection(self)


class _Connection(asyncio.Protocol):
    """One client connection: refused at once, or passed through to aiohttp's protocol."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None  # aiohttp's, made only once admitted
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._started = False  # whether a byte of the awaited head came: idle is no slow client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        guard = self._guard
        if guard.open >= guard.limits.max_connections:
            guard.limits.on_refused()
            transport.write(_BUSY)
            transport.close()
            return
        guard.open += 1
        self._transport = transport
        self._inner = guard.factory()
        self._inner.connection_made(transport)
        self.await_head()

    def data_received(self, data: bytes) -> None:
        self._started = True
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        if self._inner is not None:
            self._guard.open -= 1
            inner, self._inner, self._transport = self._inner, None, None
            inner.connection_lost(exc)

    def await_head(self) -> None:
        """Start the clock for the next request head (an idle keep-alive connection runs it too)."""
        self._stop_clock()
        if self._transport is not None:
            self._started = False
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(self._guard.limits.header_timeout_s, self._expire)

    def head_read(self) -> None:
        self._stop_clock()

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._transport is not None:
            if self._started:
                self._guard.limits.on_timeout()
            log.debug("HTTP request head not read in %ss; connection aborted", self._guard.limits.header_timeout_s)
            self._transport.abort()  # drops whatever is buffered for a client that stopped reading


@web.middleware
async def head_deadline(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Lift the head deadline while the handler runs (a slow publish is no slow client), then restore it."""
    transport = request.transport
    connection = transport.get_protocol() if transport is not None else None
    if not isinstance(connection, _Connection):
        return await handler(request)  # served without a GuardedSite, e.g. by aiohttp's test server
    connection.head_read()
    try:
        return await handler(request)
    finally:
        connection.await_head()


class GuardedSite(web.BaseSite):
    """Like web.TCPSite, with every connection passing through a ConnectionGuard."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: ConnectionLimits) -> None:
        super().__init__(runner)
        self._app_runner = runner
        self._host = host
        self._port = port
        self._limits = limits

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._app_runner.server
        assert server is not None, "runner.setup() comes first"
        # BaseSite.stop() closes, and runner.addresses reads, the server kept in _server.
        self._server = await asyncio.get_running_loop().create_server(
            ConnectionGuard(server, self._limits), self._host, self._port
        )
