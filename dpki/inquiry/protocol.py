"""uvicorn's httptools HTTP protocol with OCSP answered below ASGI (``dpki serve``'s default).

A request to ``/ocsp`` or ``/ocsp/{base64}`` is answered in the parser's callbacks: no task,
no ASGI messages, one ``transport.write`` of the whole answer. Everything else, and any OCSP
request this path is not sure of (a target in absolute form or percent-encoded ``/ocsp``, a
WebSocket upgrade, a request pipelined behind one the app still answers), goes through
uvicorn's ASGI cycle as before. What is sent comes from the same
:class:`~dpki.inquiry.app.OcspRoute` the ASGI route answers with, after the same default
headers (``date``, ``server``) uvicorn writes; requests are counted in the same metrics.

Profile of the OCSP responder before this path (``py-spy``, nonce requests, one worker): about
a third of the worker's time went to uvicorn's two ``transport.write`` calls per answer (one
for the head, one for the body: two sends on the socket) and another fifth to the ASGI task,
events and messages around them; the ECDSA signature took a fifth.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from dpki.inquiry.app import OcspRoute

__all__ = ["OcspHttpProtocol"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


#: headers of pre-produced answers (the same list all through a second) -> them as sent
_WIRE: dict[int, tuple[list[tuple[bytes, bytes]], bytes]] = {}


def _wire(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Return headers as sent; those of a cacheable answer (it has an ETag) once a second."""
    known = _WIRE.get(id(headers))
    if known is not None and known[0] is headers:
        return known[1]
    wire = b"".join([b"%s: %s\r\n" % header for header in headers])
    if headers[-1][0] == b"etag":
        if len(_WIRE) >= 4096:
            _WIRE.clear()
        _WIRE[id(headers)] = (headers, wire)  # kept alive here: its id is not reused
    return wire


def _path(url: bytes) -> str:
    """Return the path of a request target in origin form (no query)."""
    return url.split(b"?", 1)[0].decode("latin-1")


def _route_of(app: Any) -> OcspRoute | None:
    """Find the OCSP route of a ``dpki serve`` app under uvicorn's middleware (None: none)."""
    for _ in range(8):
        route = getattr(app, "ocsp_route", None)
        if isinstance(route, OcspRoute):
            return route
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


class OcspHttpProtocol(HttpToolsProtocol):
    """An httptools protocol that answers OCSP requests itself; the rest goes to the app."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        lean = not config.root_path and config.limit_concurrency is None
        self._route = _route_of(config.loaded_app) if lean else None
        #: the route template of the OCSP request answered here (None: uvicorn's ASGI cycle)
        self._lean: str | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._head_of: tuple[object, bytes] = (None, b"")
        #: loop time of the last answer on an idle connection (None: a request is on its way)
        self._idle_since: float | None = None

    def on_message_begin(self) -> None:
        # what uvicorn's does, but the ASGI scope: made in on_headers_complete when needed
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        route = self._route
        url = self.url
        if route is not None and url.startswith(b"/ocsp") and not self.parser.should_upgrade():
            cycle = self.cycle
            endpoint = "/ocsp" if url == b"/ocsp" else route.endpoint(_path(url))
            if endpoint is not None and (cycle is None or cycle.response_complete):
                self._lean = endpoint
                self._body = []
                self._size = 0
                if self.expect_100_continue and self.parser.get_method() == b"POST":
                    self.transport.write(_CONTINUE)
                return
        self._lean = None
        expect, headers = self.expect_100_continue, self.headers
        super().on_message_begin()  # the scope, as uvicorn makes it
        self.url, self.expect_100_continue = url, expect
        self.headers = self.scope["headers"] = headers
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._lean is None:
            super().on_body(body)
            return
        self._size += len(body)
        if self._size <= OcspRoute.max_body:  # past it: drop what comes, answer malformed
            self._body.append(body)

    def on_message_complete(self) -> None:
        endpoint = self._lean
        if endpoint is None:
            super().on_message_complete()
            return
        self._lean = None
        route = self._route
        assert route is not None
        if self.transport.is_closing():  # behind a request that asked to close: not answered
            self._body = []
            return
        parser = self.parser
        method = parser.get_method().decode("ascii")
        chunks = self._body
        if self._size > OcspRoute.max_body:
            body = b""
        else:
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._body = []
        status, headers, content = route.respond(method, endpoint, self.url, body)
        keep_alive = parser.should_keep_alive() and parser.get_http_version() != "1.0"
        out = [STATUS_LINE[status], self._default_headers(), _wire(headers)]
        out.append(b"\r\n" if keep_alive else b"connection: close\r\n\r\n")
        if method != "HEAD":
            out.append(content)
        transport = self.transport
        transport.write(b"".join(out))
        route.count(endpoint, method, status)
        if self.access_log:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                f"{self.client[0]}:{self.client[1]}" if self.client else "",
                method,
                self.url.decode("latin-1"),
                self.parser.get_http_version(),
                status,
            )
        self.server_state.total_requests += 1
        if not keep_alive:
            transport.close()
            return
        if self.flow.write_paused:  # a client that sends and does not read: wait for it
            self.flow.pause_reading()
        self._idle_from_now()

    # The keep-alive timer is not cancelled and made anew for every request (uvicorn's way,
    # a twelfth of a pre-produced answer's time): it runs on, and when it fires it closes the
    # connection only if nothing came since the last answer, or waits out the rest.

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # data came (a request on its way), or the connection ended

    def _idle_from_now(self) -> None:
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def on_response_complete(self) -> None:
        super().on_response_complete()  # an answer from the app: its timer is armed
        if not self.transport.is_closing():
            self._idle_since = self.loop.time()

    def timeout_keep_alive_handler(self) -> None:
        self.timeout_keep_alive_task = None
        since = self._idle_since
        if since is None or self.transport.is_closing():
            return  # busy (the next timer starts with its answer), or gone
        left = since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(
                left, self.timeout_keep_alive_handler
            )
        else:
            self.transport.close()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.cycle is None or self.cycle.response_complete:
            self.flow.resume_reading()

    def _default_headers(self) -> bytes:
        """Return uvicorn's default headers (date, server) as sent, joined once a tick."""
        headers = self.server_state.default_headers
        if self._head_of[0] is not headers:
            joined = b"".join(b"%s: %s\r\n" % (n, v) for n, v in headers)
            self._head_of = (headers, joined)
        return self._head_of[1]
