"""The lean OCSP route below ASGI (dpki.inquiry.protocol) against the plain-ASGI route.

Two real uvicorn servers on real sockets serve one app built by ``create_app``: one with
``dpki serve``'s protocol (OCSP answered in the parser's callbacks), one with uvicorn's own
httptools protocol (every request through the ASGI app). They must send the same answers;
HTTP/1.1 framing on the lean route (keep-alive, pipelining, split packets, HEAD, 100-continue,
HTTP/1.0, oversized bodies, idle timeouts) must hold. `openssl ocsp` and GnuTLS `ocsptool`
check what `dpki serve` itself sends in test_ocsp.py.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from inquiry_helpers import Node, b64_path, free_port, ocsp_request, served
from prometheus_client.parser import text_string_to_metric_families

from dpki.inquiry.app import ServeConfig, create_app
from dpki.inquiry.protocol import OcspHttpProtocol


@dataclass
class Servers:
    lean: int  # port of the server with dpki serve's protocol
    asgi: int  # port of the server with uvicorn's httptools protocol
    asgi_paths: list[tuple[int, str]]  # (server port, path) of each request the app saw


def _serve(app: Any, port: int, http: Any, stops: list[uvicorn.Server]) -> None:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=http,
        loop="uvloop",
        log_level="warning",
        timeout_keep_alive=1,
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    stops.append(server)


@pytest.fixture(scope="module")
def servers(node: Node) -> Iterator[Servers]:
    config = ServeConfig(
        db_url=node.db_url,
        responder_key=str(node.dir / "ocsp-responder.key"),
        responder_cert=str(node.dir / "ocsp-responder.pem"),
    )
    app: Any = create_app(config)  # one responder: pre-produced answers are the same bytes
    seen: list[tuple[int, str]] = []
    inner = app.app

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append((scope["server"][1], scope["path"]))
        await inner(scope, receive, send)

    app.app = spy
    stops: list[uvicorn.Server] = []
    lean, asgi = free_port(), free_port()
    try:
        _serve(app, lean, OcspHttpProtocol, stops)
        _serve(app, asgi, "httptools", stops)
        yield Servers(lean, asgi, seen)
    finally:
        for server in stops:
            server.should_exit = True
        time.sleep(0.3)


# ---------------------------------------------------------------------- a raw HTTP/1.1 client


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n == name), None)


def _read(stream: Any, *, head: bool = False) -> Reply:
    """Read one response from a socket file (a 100 Continue before it is skipped)."""
    while True:
        status_line = stream.readline()
        assert status_line.startswith(b"HTTP/1."), status_line
        headers = []
        while (line := stream.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip().lower(), value.strip()))
        if int(status_line.split()[1]) != 100:
            break
    length = int(next((v for n, v in headers if n == "content-length"), "0"))
    body = b"" if head else stream.read(length)
    return Reply(int(status_line.split()[1]), headers, body)


def _post(body: bytes, *, extra: str = "", version: str = "1.1") -> bytes:
    return (
        f"POST /ocsp HTTP/{version}\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def _exchange(port: int, *requests_: bytes, heads: tuple[bool, ...] = ()) -> list[Reply]:
    """Send requests on one connection, all at once (pipelined); read their answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"".join(requests_))
        stream = s.makefile("rb")
        return [_read(stream, head=i < len(heads) and heads[i]) for i in range(len(requests_))]


_TIME = re.compile(rb"\x18\x0f\d{14}Z")


def _signed_parts(der: bytes) -> tuple[bytes, bytes, list[bytes], int]:
    """Return what two answers to one request share: tbsResponseData with the times blanked,
    the signature algorithm, the certificates, and the size without the signature."""
    parsed = ocsp.load_der_ocsp_response(der)
    assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    return (
        _TIME.sub(b"\x18\x0f" + b"0" * 14 + b"Z", parsed.tbs_response_bytes),
        parsed.signature_algorithm_oid.dotted_string.encode(),
        [c.public_bytes(serialization.Encoding.DER) for c in parsed.certificates],
        len(der) - len(parsed.signature),
    )


_VARY = {"date", "last-modified", "expires", "etag"}  # times (and the hash of a signed body)


def _same_answers(lean: Reply, asgi: Reply, *, signed_apart: bool) -> None:
    """Say the two answers are the same (when signed apart: but for times and signature)."""
    assert lean.status == asgi.status
    assert [n for n, _ in lean.headers] == [n for n, _ in asgi.headers]
    vary = _VARY | {"content-length"} if signed_apart else _VARY  # ECDSA: 70 to 72 octets

    def kept(reply: Reply) -> list[str]:
        return [re.sub(r"max-age=\d+", "", v) for n, v in reply.headers if n not in vary]

    assert kept(lean) == kept(asgi)
    if signed_apart:
        assert _signed_parts(lean.body) == _signed_parts(asgi.body)
    else:
        assert lean.body == asgi.body


# ---------------------------------------------------------------------- the tests


def test_the_lean_route_answers_ocsp_without_the_asgi_app(node: Node, servers: Servers) -> None:
    before = len([p for p in servers.asgi_paths if p[0] == servers.lean])
    der = ocsp_request(node, "good")
    _exchange(servers.lean, _post(der), _get(f"/ocsp/{b64_path(der)}"), _get("/ocsp", "PUT"))
    lean_seen = [p for port, p in servers.asgi_paths if port == servers.lean]
    assert len(lean_seen) == before  # none of the three reached the app
    _exchange(servers.lean, _get("/ocsp/responder.pem"), _get("/healthz"))
    assert [p for port, p in servers.asgi_paths if port == servers.lean][-2:] == [
        "/ocsp/responder.pem",
        "/healthz",
    ]
    _exchange(servers.asgi, _post(der))
    assert servers.asgi_paths[-1] == (servers.asgi, "/ocsp")  # the other server's app did


@pytest.mark.parametrize(
    "name", ["good", "revoked", "suspended", "superseded", "rejected", "pending", "unknown"]
)
def test_both_routes_send_the_same_pre_produced_answer(
    node: Node, servers: Servers, name: str
) -> None:
    der = ocsp_request(node, name)
    for request in (_post(der), _get(f"/ocsp/{b64_path(der)}")):
        lean = _exchange(servers.lean, request)[0]
        asgi = _exchange(servers.asgi, request)[0]
        assert lean.status == 200 and lean.header("cache-control") is not None
        _same_answers(lean, asgi, signed_apart=False)  # one responder, one signed answer


def test_both_routes_sign_nonce_answers_alike(node: Node, servers: Servers) -> None:
    for name in ("good", "revoked", "unknown"):
        nonce = os.urandom(16)
        der = ocsp_request(node, name, nonce=nonce)
        lean = _exchange(servers.lean, _post(der))[0]
        asgi = _exchange(servers.asgi, _post(der))[0]
        _same_answers(lean, asgi, signed_apart=True)
        assert lean.header("cache-control") == "no-store"
        for body in (lean.body, asgi.body):
            answer = ocsp.load_der_ocsp_response(body)
            assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
        assert lean.body != asgi.body  # each signed afresh


@pytest.mark.parametrize(
    ("what", "make"),
    [
        ("garbage", lambda: _post(b"\x30\x03\x02\x01")),
        ("empty", lambda: _post(b"")),
        ("oversized", lambda: _post(b"\x30" * 20_000)),
        ("get-not-base64", lambda: _get("/ocsp/!!!")),
        ("get-405", lambda: _get("/ocsp")),
        ("put-405", lambda: _get("/ocsp", "PUT")),
        ("post-to-get-form-405", lambda: _post(b"x").replace(b"/ocsp", b"/ocsp/MAA=", 1)),
        ("query", lambda: _post(b"\x30\x00").replace(b"/ocsp", b"/ocsp?x=1", 1)),
    ],
)
def test_both_routes_refuse_alike(servers: Servers, what: str, make: Callable[[], bytes]) -> None:
    lean = _exchange(servers.lean, make())[0]
    asgi = _exchange(servers.asgi, make())[0]
    _same_answers(lean, asgi, signed_apart=False)
    if lean.status == 405:
        assert lean.header("allow") in ("POST", "GET, HEAD")
    else:
        status = ocsp.load_der_ocsp_response(lean.body).response_status
        assert status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_head_sends_the_get_headers_and_no_body(node: Node, servers: Servers) -> None:
    path = f"/ocsp/{b64_path(ocsp_request(node, 'revoked'))}"
    got, head, after = _exchange(
        servers.lean, _get(path), _get(path, "HEAD"), _get(path), heads=(False, True, False)
    )
    assert head.status == 200 and head.body == b""
    assert head.header("content-length") == str(len(got.body))
    assert head.header("etag") == got.header("etag")
    assert after.body == got.body  # the connection stays in step after a HEAD


def test_pipelined_requests_are_answered_in_order(node: Node, servers: Servers) -> None:
    """OCSP requests pipelined around one the ASGI app answers: order and nonces hold."""
    nonces = [os.urandom(16) for _ in range(4)]
    sent = [
        _post(ocsp_request(node, "good", nonce=nonces[0])),
        _post(ocsp_request(node, "revoked", nonce=nonces[1])),
        _get("/healthz"),  # through the app: the OCSP requests behind it wait for it
        _post(ocsp_request(node, "unknown", nonce=nonces[2])),
        _post(ocsp_request(node, "good")),
        _post(ocsp_request(node, "suspended", nonce=nonces[3])),
    ]
    replies = _exchange(servers.lean, *sent)
    assert replies[2].header("content-type") == "application/json"
    statuses = []
    for reply in (replies[0], replies[1], replies[3], replies[5]):
        answer = ocsp.load_der_ocsp_response(reply.body)
        statuses.append(answer.certificate_status.name)
        echoed = answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        assert echoed == nonces[len(statuses) - 1]
    assert statuses == ["GOOD", "REVOKED", "UNKNOWN", "REVOKED"]
    good = ocsp.load_der_ocsp_response(replies[4].body)
    assert good.certificate_status == ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize("cut", ["request-line", "headers", "body", "every-byte-of-the-head"])
def test_a_request_split_across_packets_is_answered(node: Node, servers: Servers, cut: str) -> None:
    nonce = os.urandom(16)
    data = _post(ocsp_request(node, "good", nonce=nonce))
    split = data.index(b"\r\n\r\n") + 4
    points = {
        "request-line": [3, 8],
        "headers": [20, 40, split - 2],
        "body": [split, split + 5, len(data) - 1],
        "every-byte-of-the-head": list(range(1, split)),
    }[cut]
    with socket.create_connection(("127.0.0.1", servers.lean), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = 0
        for point in [*points, len(data)]:
            s.sendall(data[start:point])
            start = point
            time.sleep(0.005)
        reply = _read(s.makefile("rb"))
    answer = ocsp.load_der_ocsp_response(reply.body)
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


def test_an_oversized_body_is_refused_and_the_connection_goes_on(
    node: Node, servers: Servers
) -> None:
    huge = _post(b"\x30\x84" + os.urandom(100_000))
    refused, after = _exchange(servers.lean, huge, _post(ocsp_request(node, "good")))
    status = ocsp.load_der_ocsp_response(refused.body).response_status
    assert status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert ocsp.load_der_ocsp_response(after.body).certificate_status == ocsp.OCSPCertStatus.GOOD


def test_http_1_0_and_connection_close_are_answered_then_closed(
    node: Node, servers: Servers
) -> None:
    der = ocsp_request(node, "good")
    for request in (_post(der, version="1.0"), _post(der, extra="Connection: close\r\n")):
        with socket.create_connection(("127.0.0.1", servers.lean), timeout=10) as s:
            s.sendall(request)
            stream = s.makefile("rb")
            reply = _read(stream)
            assert reply.header("connection") == "close"
            assert ocsp.load_der_ocsp_response(reply.body).certificate_status.name == "GOOD"
            assert stream.read() == b""  # the server hung up
    with socket.create_connection(("127.0.0.1", servers.lean), timeout=10) as s:
        s.sendall(_post(der, extra="Connection: close\r\n") + _post(der))  # one behind it
        stream = s.makefile("rb")
        assert _read(stream).header("connection") == "close"
        assert stream.read() == b""  # the one behind it is not answered


def test_expect_100_continue_is_honoured(node: Node, servers: Servers) -> None:
    der = ocsp_request(node, "good")
    with socket.create_connection(("127.0.0.1", servers.lean), timeout=10) as s:
        head = _post(der, extra="Expect: 100-continue\r\n")[: -len(der)]
        s.sendall(head)
        stream = s.makefile("rb")
        assert stream.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert stream.readline() == b"\r\n"
        s.sendall(der)
        reply = _read(stream)
    assert ocsp.load_der_ocsp_response(reply.body).certificate_status.name == "GOOD"


def test_an_idle_keep_alive_connection_is_closed_a_busy_one_is_not(
    node: Node, servers: Servers
) -> None:
    """The servers here close after 1 s idle (dpki serve: 5 s), also after a lean answer."""
    der = _post(ocsp_request(node, "good"))
    with socket.create_connection(("127.0.0.1", servers.lean), timeout=10) as s:
        stream = s.makefile("rb")
        for _ in range(6):  # busy for longer than the timeout: kept open
            s.sendall(der)
            assert _read(stream).status == 200
            time.sleep(0.3)
        started = time.monotonic()
        assert stream.read() == b""  # then idle: closed
        assert 0.5 < time.monotonic() - started < 5
    with socket.create_connection(("127.0.0.1", servers.lean), timeout=10) as s:
        stream = s.makefile("rb")
        s.sendall(der + _get("/healthz"))  # the last answer from the app, not the lean route
        assert _read(stream).status == 200 and _read(stream).status in (200, 503)
        started = time.monotonic()
        assert stream.read() == b""
        assert 0.5 < time.monotonic() - started < 5


def test_lean_answers_are_counted_in_the_metrics(node: Node, servers: Servers) -> None:
    def counts() -> dict[tuple[tuple[str, str], ...], float]:
        text = requests.get(f"http://127.0.0.1:{servers.lean}/metrics", timeout=10).text
        return {
            (("name", s.name), *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    before = counts()
    _exchange(servers.lean, _post(ocsp_request(node, "revoked")), _post(b"junk"), _get("/ocsp"))
    after = counts()

    def moved(name: str, **labels: str) -> float:
        key = (("name", name), *sorted(labels.items()))
        return after.get(key, 0) - before.get(key, 0)

    requests_ = "dpki_http_requests_total"
    assert moved(requests_, endpoint="/ocsp", method="POST", status="200") == 2
    assert moved(requests_, endpoint="/ocsp", method="GET", status="405") == 1
    assert moved("dpki_ocsp_responses_total", status="revoked") == 1
    assert moved("dpki_ocsp_responses_total", status="malformed") == 1


def test_dpki_serve_answers_ocsp_on_two_workers_counted_and_logged(
    node: Node, tmp_path: Path
) -> None:
    """`dpki serve --workers 2 --access-log`: every worker answers OCSP on the lean route,
    each answer is counted in the pooled metrics and logged as uvicorn logs the others."""
    args = ["--db", node.db_url, "--workers", "2", "--access-log"]
    args += ["--responder-key", str(node.dir / "ocsp-responder.key")]
    args += ["--responder-cert", str(node.dir / "ocsp-responder.pem")]
    port = free_port()
    with served(args, port, tmp_path) as url:
        for i in range(20):  # new connections: the kernel spreads them over the workers
            nonce = os.urandom(16) if i % 2 else None
            der = ocsp_request(node, "good", nonce=nonce)
            body = requests.post(f"{url}/ocsp", data=der, timeout=10).content
            answer = ocsp.load_der_ocsp_response(body)
            assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
        text = requests.get(f"{url}/metrics", timeout=10).text
    counted = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert counted[("dpki_ocsp_responses_total", (("status", "good"),))] == 20
    key = (("endpoint", "/ocsp"), ("method", "POST"), ("status", "200"))
    assert counted[("dpki_http_requests_total", key)] == 20
    log = (tmp_path / f"serve-{port}.log").read_text()
    assert log.count('"POST /ocsp HTTP/1.1" 200') == 20, log[-2000:]
