"""Relying parties: `dpki verify` via chain and via an inquiry node, the cache, and TLS
device authentication decided by the ledger."""

from __future__ import annotations

import contextlib
import hashlib
import signal
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from e2e import wait_until
from inquiry_helpers import DPKI, Node, free_port

from dpki.cli import main
from dpki.dev.devices import make_device
from dpki.relying import Decision, LedgerTLSServer, Verifier


def dpki(*args: str) -> tuple[int, str]:
    """Run the CLI in-process; return (exit code, output)."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize("via", ["chain", "url"])
@pytest.mark.parametrize(
    ("name", "code", "status"),
    [
        ("good", 0, "active"),
        ("revoked", 1, "revoked"),
        ("suspended", 1, "suspended"),
        ("pending", 1, "pending"),
        ("rejected", 1, "rejected"),
        ("unknown", 1, "unknown"),
    ],
)
def test_verify_exit_codes(node: Node, via: str, name: str, code: int, status: str) -> None:
    where = "chain" if via == "chain" else node.url
    exit_code, output = dpki(
        "verify", str(node.pem(name)), "--via", where, "--deployment", str(node.deployment)
    )
    assert exit_code == code, output
    assert f"is {status}" in output
    exit_code, output = dpki(
        "verify",
        str(node.pem(name)),
        "--via",
        where,
        "--deployment",
        str(node.deployment),
        "--json",
    )
    assert exit_code == code and f'"status": "{status}"' in output


def test_verify_bad_input_and_unreachable(node: Node, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    assert dpki("verify", str(junk), "--deployment", str(node.deployment))[0] == 2
    assert dpki("verify", str(tmp_path / "missing.pem"))[0] == 2
    assert dpki("verify", str(node.pem("good")), "--via", "ftp://x")[0] == 2
    code, output = dpki("verify", str(node.pem("good")), "--via", f"http://127.0.0.1:{free_port()}")
    assert code == 3 and "does not answer" in output
    assert "Traceback" not in output


def test_cache_is_bounded_by_max_age(node: Node) -> None:
    spare = node.ids["spare"]
    cached = Verifier(node.registry, max_age=60)
    fresh = Verifier(node.registry)
    short = Verifier(node.registry, max_age=0.3)
    for v in (cached, fresh, short):
        assert v.is_trusted(node.devices["spare"].der)
    node.registry.suspend(node.accounts[0], spare).wait()
    try:
        decision = cached.decide(node.devices["spare"].der)
        assert decision.trusted and decision.cached  # within max age: the old answer
        assert not fresh.is_trusted(spare.hex())
        time.sleep(0.35)
        assert not short.is_trusted(spare.hex())
        cached.forget()
        assert not cached.is_trusted(spare.hex())
    finally:
        node.registry.resume(node.accounts[0], spare).wait()


# ---------------------------------------------------------------------- TLS device authentication


@pytest.fixture(scope="module")
def server_files(node: Node) -> tuple[str, str]:
    """Return the TLS server's own certificate and key files."""
    device = make_device("Operator B", "tls-gateway")
    cert, key = node.dir / "server.pem", node.dir / "server.key"
    cert.write_bytes(device.pem)
    key.write_bytes(device.key_pem())
    return str(cert), str(key)


def _connect(node: Node, server: LedgerTLSServer, name: str, server_cert: str) -> bytes | str:
    """Connect as device ``name``; return the greeting or the reason for being refused."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(server_cert)  # the client pins the gateway's certificate
    ctx.check_hostname = False
    ctx.load_cert_chain(str(node.pem(name)), str(node.dir / f"{name}.key"))
    try:
        with (
            socket.create_connection(server.address, timeout=10) as raw,
            ctx.wrap_socket(raw) as conn,
        ):
            return conn.recv(200) or "closed"
    except (ssl.SSLError, ConnectionResetError) as exc:
        return f"refused: {exc}"


@pytest.mark.parametrize("via", ["chain", "url"])
def test_tls_admits_only_devices_the_ledger_says_are_valid(
    node: Node, server_files: tuple[str, str], via: str
) -> None:
    verifier = Verifier(node.registry if via == "chain" else node.url)
    refused: list[str] = []

    def greet(conn: ssl.SSLSocket, decision: Decision) -> None:
        conn.sendall(f"welcome {decision.id}\n".encode())

    server = LedgerTLSServer(
        verifier, *server_files, greet, refused=lambda _a, why: refused.append(why)
    ).start()
    try:
        answer = _connect(node, server, "good", server_files[0])
        assert answer == f"welcome {node.ids['good'].hex()}\n".encode()
        for name in ("revoked", "suspended", "unknown", "pending"):
            answer = _connect(node, server, name, server_files[0])
            assert isinstance(answer, str), (name, answer)
        # TLS 1.3: the client may see the alert before the server thread records it
        wait_until(lambda: len(refused) == 4, 10, "four refusals")
        # a device admitted once and revoked later is refused on its next connection
        assert isinstance(_connect(node, server, "spare", server_files[0]), bytes)
        if via == "chain":
            node.registry.suspend(node.accounts[0], node.ids["spare"]).wait()
            try:
                assert isinstance(_connect(node, server, "spare", server_files[0]), str)
                wait_until(lambda: "is suspended" in refused[-1], 10, "the suspension refusal")
            finally:
                node.registry.resume(node.accounts[0], node.ids["spare"]).wait()
    finally:
        server.stop()


def test_status_at_head_is_status_of_and_head_time_in_one_round_trip(node: Node) -> None:
    for cid in (node.ids["revoked"], node.ids["good"], b"\x42" * 32):
        record, at = node.registry.status_at_head(cid)
        assert record == node.registry.status_of(cid)
        assert at == node.registry.block_timestamp()


def test_tls_decides_once_per_first_connection_and_survives_garbage(
    node: Node, server_files: tuple[str, str]
) -> None:
    asked: list[str] = []

    class Counting(Verifier):
        def decide(self, certificate: bytes | str) -> Decision:
            decision = super().decide(certificate)
            asked.append(decision.id)
            return decision

    refused: list[str] = []
    server = LedgerTLSServer(
        Counting(node.registry), *server_files, lambda c, d: c.sendall(b"hi"),
        refused=lambda _a, why: refused.append(why),
    ).start()  # fmt: skip
    try:
        for junk in (b"GET / HTTP/1.0\r\n\r\n", b"\x16\x03\x01\xff\xff" + b"\x00" * 64):
            with socket.create_connection(server.address, timeout=10) as raw:
                raw.sendall(junk)
                with contextlib.suppress(OSError):  # an alert, nothing or a reset
                    raw.recv(100)
        wait_until(lambda: len(refused) == 2, 10, "both garbage clients refused")
        spare = node.ids["spare"].hex()
        assert _connect(node, server, "spare", server_files[0]) == b"hi"
        assert asked == [spare]  # the handshake's decision served the connection too
        assert _connect(node, server, "spare", server_files[0]) == b"hi"
        assert asked == [spare, spare]  # admitted before: asked again, it may be revoked
    finally:
        server.stop()


def test_tls_refuses_a_client_without_a_certificate(
    node: Node, server_files: tuple[str, str]
) -> None:
    server = LedgerTLSServer(Verifier(node.registry), *server_files, lambda c, d: None).start()
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(server_files[0])
        ctx.check_hostname = False
        with (
            pytest.raises((ssl.SSLError, ConnectionResetError)),
            socket.create_connection(server.address, timeout=10) as raw,
            ctx.wrap_socket(raw) as conn,
        ):
            conn.recv(10)
    finally:
        server.stop()


# ---------------------------------------------------------------------- the gateway command


@pytest.fixture
def echo_backend() -> Iterator[tuple[str, int]]:
    """A plain-TCP backend that answers each chunk with ``echo:`` + the chunk."""

    class Echo(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            while data := self.request.recv(4096):
                self.request.sendall(b"echo:" + data)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield "127.0.0.1", int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _through_gateway(node: Node, port: int, name: str, server_cert: str) -> bytes | str:
    """Send ``hello`` through the gateway as device ``name``; return the answer or why not."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(server_cert)
    ctx.check_hostname = False
    ctx.load_cert_chain(str(node.pem(name)), str(node.dir / f"{name}.key"))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            ctx.wrap_socket(raw) as conn,
        ):
            conn.sendall(b"hello")
            return conn.recv(100) or "closed"
    except (ssl.SSLError, ConnectionResetError) as exc:
        return f"refused: {exc}"


@pytest.mark.parametrize("via", ["chain", "inquiry"])
def test_gateway_relays_only_devices_the_ledger_trusts(
    node: Node, server_files: tuple[str, str], echo_backend: tuple[str, int], via: str
) -> None:
    port = free_port()
    log = (node.dir / f"gateway-{via}.log").open("wb")
    backend = "{}:{}".format(*echo_backend)
    proc = subprocess.Popen(
        [*DPKI, "gateway", "--listen", f"127.0.0.1:{port}", "--to", backend,
         "--cert", server_files[0], "--key", server_files[1],
         "--via", "chain" if via == "chain" else node.url,
         "--deployment", str(node.deployment)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(lambda: _listening(port), 30, "the gateway to listen")
        assert _through_gateway(node, port, "good", server_files[0]) == b"echo:hello"
        for name in ("revoked", "suspended", "unknown"):
            answer = _through_gateway(node, port, name, server_files[0])
            assert isinstance(answer, str), (name, answer)
        logged = node.dir / f"gateway-{via}.log"
        wait_until(lambda: logged.read_text().count(" refused ") >= 3, 10, "three refusals")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = (node.dir / f"gateway-{via}.log").read_text()
    assert f"device {node.ids['good'].hex()} admitted" in output
    # every refusal names the certificate and what the ledger said about it (issue 12, item 6)
    source = "chain" if via == "chain" else "inquiry"
    for name, said in (
        ("revoked", "revoked (keyCompromise)"),
        ("suspended", "suspended (certificateHold)"),
        ("unknown", "unknown"),
    ):
        cid = hashlib.sha256(node.devices[name].der).hexdigest()
        assert f"certificate {cid} is {said} according to {source}" in output, output
    assert "Traceback" not in output


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_gateway_usage_errors_exit_2() -> None:
    code, output = dpki("gateway", "--to", "nowhere", "--cert", __file__, "--key", __file__)
    assert code == 2 and "--to is HOST:PORT" in output
