"""Relying party: trust a presented certificate because the ledger says so, not a CA chain.

:class:`Verifier` decides from the chain (``statusOf`` plus the head's time, no web3
middleware) or from an inquiry node (``GET /status/{id}``), with an optional cache bounded by
a maximum age. :class:`LedgerTLSServer` is a TLS server on the standard library ``ssl``
module that requires a client certificate and accepts it only when the ledger says it is
valid: no CA bundle, no CRL, no Internet.

How the TLS server gets OpenSSL to accept a certificate no CA vouches for: the context asks
for a client certificate (``CERT_REQUIRED``) and starts with an empty trust store. A message
callback sees the client's Certificate handshake message before OpenSSL verifies it, asks the
ledger about the leaf and, only when it is valid, adds that exact certificate to the trust
store, so OpenSSL's own verification then succeeds; for any other certificate the handshake
fails with "unknown CA". The client's CertificateVerify message (checked by OpenSSL in every
TLS handshake that sends a client certificate) proves it holds the private key. Because a
certificate once added stays in the store, a connection from a device admitted before is
decided again after the handshake from ``getpeercert(binary_form=True)``; a certificate
revoked since then is cut off. A first connection reuses the decision its handshake took.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import selectors
import socket
import socketserver
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from dpki.chain.registry import Registry, Status, as_cert_id
from dpki.chain.rpc import why_no_answer
from dpki.errors import ChainError, ConfigError, RpcUnavailable
from dpki.pki.codes import reason_label

__all__ = [
    "Decision",
    "LedgerTLSServer",
    "Verifier",
    "certificate_ids_in_handshake",
    "forward_to",
    "refusal",
]

log = logging.getLogger("dpki.relying")


@dataclass(frozen=True)
class Decision:
    """A relying party's answer for one certificate."""

    id: str
    trusted: bool
    status: str
    reason: int | str | None
    source: str
    checked_at: float
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return the decision as a JSON object (``checked_at`` in ISO 8601 UTC)."""
        data = asdict(self)
        data["checked_at"] = datetime.fromtimestamp(self.checked_at, UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        return data


class Verifier:
    """Decide trust from ledger status: ``source`` is a :class:`Registry` or an inquiry URL."""

    def __init__(
        self,
        source: Registry | str,
        *,
        max_age: float = 0.0,
        max_entries: int = 10_000,
        timeout: float = 5.0,
    ) -> None:
        if max_age < 0:
            raise ConfigError(f"max_age must be >= 0 seconds, got {max_age}")
        self.source = source
        self.max_age = max_age
        self.max_entries = max_entries
        self.timeout = timeout
        self._cache: OrderedDict[str, Decision] = OrderedDict()
        self._lock = threading.Lock()
        self._session = requests.Session()

    @property
    def label(self) -> str:
        """Return where decisions come from (for output)."""
        if isinstance(self.source, Registry):
            return f"chain {self.source.rpc_url} registry {self.source.address}"
        return f"inquiry node {self.source}"

    def decide(self, certificate: bytes | str) -> Decision:
        """Decide about a certificate given as DER bytes or as its id (64 hex digits)."""
        cid = (
            hashlib.sha256(certificate).hexdigest()
            if isinstance(certificate, bytes | bytearray)
            else as_cert_id(certificate).hex()
        )
        if self.max_age > 0:
            with self._lock:
                hit = self._cache.get(cid)
                if hit is not None and time.time() - hit.checked_at <= self.max_age:
                    self._cache.move_to_end(cid)
                    return Decision(**{**asdict(hit), "cached": True})
        decision = (
            self._ask_chain(cid) if isinstance(self.source, Registry) else self._ask_node(cid)
        )
        if self.max_age > 0:
            with self._lock:
                self._cache[cid] = decision
                self._cache.move_to_end(cid)
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
        return decision

    def is_trusted(self, certificate: bytes | str) -> bool:
        """Return True when the ledger says the certificate is active and in its window."""
        return self.decide(certificate).trusted

    def forget(self) -> None:
        """Empty the cache."""
        with self._lock:
            self._cache.clear()

    def _ask_chain(self, cid: str) -> Decision:
        assert isinstance(self.source, Registry)
        record, now = self.source.status_at_head(cid)
        return Decision(
            id=cid,
            trusted=record.valid_at(now),
            status=_window_label(record.status, record.not_before, record.not_after, now),
            reason=record.reason or None,
            source="chain",
            checked_at=time.time(),
        )

    def _ask_node(self, cid: str) -> Decision:
        assert isinstance(self.source, str)
        url = f"{self.source.rstrip('/')}/status/{cid}"
        try:
            response = self._session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RpcUnavailable(
                f"the inquiry node at {self.source} does not answer ({why_no_answer(exc)}); "
                "is `dpki serve` running there? try its /healthz"
            ) from None
        if response.status_code == 404:
            return Decision(cid, False, "unknown", None, "inquiry", time.time())
        try:
            body = response.json()
            response.raise_for_status()
            status = str(body["status"])
            valid = bool(body["valid"])
        except (ValueError, KeyError, requests.HTTPError):
            raise ChainError(
                f"the inquiry node at {self.source} answered HTTP {response.status_code}: "
                f"{response.text[:200]}"
            ) from None
        if status == "active" and not valid:
            status = "outside its validity window"
        return Decision(cid, valid, status, body.get("reason"), "inquiry", time.time())


def _window_label(status: Status, not_before: int, not_after: int, now: int) -> str:
    if status is Status.ACTIVE and now > not_after:
        return "expired"
    if status is Status.ACTIVE and now < not_before:
        return "not yet valid"
    return status.label


def refusal(decision: Decision) -> str:
    """Say why a certificate is not trusted, as a log line: its id, status and reason."""
    reason = decision.reason
    if isinstance(reason, int) and not isinstance(reason, bool):
        try:
            reason = reason_label(Status[decision.status.upper()], reason)
        except KeyError:  # expired, not yet valid: the status says it
            reason = None
    said = f" ({reason})" if reason else ""
    return f"certificate {decision.id} is {decision.status}{said} according to {decision.source}"


def certificate_ids_in_handshake(data: bytes, tls13: bool) -> list[bytes]:
    """Return the DER certificates of a TLS Certificate handshake message (header included)."""
    pos = 4 if data[:1] == b"\x0b" else 0
    if tls13:
        pos += 1 + data[pos]  # certificate_request_context
    end = pos + 3 + int.from_bytes(data[pos : pos + 3], "big")
    pos += 3
    ders: list[bytes] = []
    while pos + 3 <= min(end, len(data)):
        size = int.from_bytes(data[pos : pos + 3], "big")
        ders.append(data[pos + 3 : pos + 3 + size])
        pos += 3 + size
        if tls13:
            pos += 2 + int.from_bytes(data[pos : pos + 2], "big")
    return ders


class LedgerTLSServer:
    """A threaded TLS server that admits clients whose certificate the ledger says is valid.

    ``handler(connection, decision)`` serves an admitted client; ``refused(address, why)`` is
    called for each refused one (for logs and tests).
    """

    def __init__(
        self,
        verifier: Verifier,
        certfile: str,
        keyfile: str,
        handler: Callable[[ssl.SSLSocket, Decision], None],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        refused: Callable[[Any, str], None] | None = None,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.verifier = verifier
        self.handler = handler
        self.refused = refused or (lambda addr, why: log.info("refused %s: %s", addr, why))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(certfile, keyfile)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context._msg_callback = self._on_message  # type: ignore[attr-defined]
        self._admitted: set[str] = set()
        self._in_handshake = threading.local()  # the decision taken during a handshake
        self._store_lock = threading.Lock()
        self.handshake_timeout = handshake_timeout
        outer = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._serve(self.request, self.client_address)

        class _Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = _Server((host, port), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Return (host, port) the server listens on."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def _on_message(
        self, conn: Any, direction: str, version: Any, content_type: Any, msg_type: Any, data: bytes
    ) -> None:
        """See the client's Certificate message; trust its leaf only if the ledger does."""
        if direction != "read" or getattr(msg_type, "name", "") != "CERTIFICATE":
            return
        if getattr(content_type, "name", "") != "HANDSHAKE":
            return
        try:
            ders = certificate_ids_in_handshake(data, version == ssl.TLSVersion.TLSv1_3)
            if not ders:
                return
            leaf = ders[0]
            cid = hashlib.sha256(leaf).hexdigest()
            if cid in self._admitted:
                return
            self._in_handshake.asked = cid
            decision = self.verifier.decide(leaf)
            self._in_handshake.decision = decision  # this thread's handshake: _serve reuses it
            if not decision.trusted:
                return
            with self._store_lock:
                self.context.load_verify_locations(cadata=leaf)
                self._admitted.add(cid)
        except Exception as exc:  # never let a lookup failure admit anyone
            self._in_handshake.failure = str(exc)
            log.warning("cannot check a client certificate: %s", exc)

    def _serve(self, raw: socket.socket, address: Any) -> None:
        raw.settimeout(self.handshake_timeout)
        self._in_handshake.decision = None
        self._in_handshake.asked = None
        self._in_handshake.failure = None
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.refused(address, self._handshake_refusal(exc))
            return
        try:
            der = conn.getpeercert(binary_form=True)
            if der is None:
                self.refused(address, "no client certificate")
                return
            decision: Decision | None = self._in_handshake.decision
            try:  # a device admitted earlier is asked about again: it may be revoked since
                if decision is None or decision.id != hashlib.sha256(der).hexdigest():
                    decision = self.verifier.decide(der)
            except ChainError as exc:
                self.refused(address, f"ledger unreachable: {exc}")
                return
            if not decision.trusted:
                self.refused(address, refusal(decision))
                return
            conn.settimeout(None)
            self.handler(conn, decision)
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _handshake_refusal(self, exc: BaseException) -> str:
        """Say why a handshake failed: the certificate id and what the ledger said about it."""
        tls = f"handshake failed: {getattr(exc, 'reason', None) or exc}"
        decision: Decision | None = self._in_handshake.decision
        if decision is not None and not decision.trusted:
            return f"{refusal(decision)} ({tls})"
        asked: str | None = self._in_handshake.asked
        if asked is not None and self._in_handshake.failure is not None:
            failure = self._in_handshake.failure
            return f"certificate {asked}: cannot ask the ledger: {failure} ({tls})"
        if asked is not None:
            return f"certificate {asked}: {tls}"
        return f"{tls} (no client certificate reached the ledger check)"

    def start(self) -> LedgerTLSServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


def forward_to(
    backend: tuple[str, int], *, connect_timeout: float = 10.0, idle_timeout: float = 300.0
) -> Callable[[ssl.SSLSocket, Decision], None]:
    """Return a :class:`LedgerTLSServer` handler that relays an admitted device's plaintext
    to ``backend`` (host, port) and back: a TLS gateway in front of equipment that does not
    speak TLS itself. One thread per connection drives both directions (an SSL object must
    not be read and written from two threads at once); the relay ends when the backend
    closes, or after ``idle_timeout`` seconds without traffic."""

    def relay(conn: ssl.SSLSocket, decision: Decision) -> None:
        try:
            upstream = socket.create_connection(backend, timeout=connect_timeout)
        except OSError as exc:
            log.warning("device %s admitted but backend %s:%s is down: %s", decision.id,
                        *backend, exc)  # fmt: skip
            return
        log.info("device %s admitted; relaying to %s:%s", decision.id, *backend)
        upstream.settimeout(None)
        conn.settimeout(None)
        peer = {conn: upstream, upstream: conn}
        with upstream, selectors.DefaultSelector() as selector:
            selector.register(conn, selectors.EVENT_READ)
            selector.register(upstream, selectors.EVENT_READ)
            while True:
                # TLS may hold decrypted bytes the socket no longer signals
                ready = [conn] if conn.pending() else [k.fileobj for k, _ in
                                                       selector.select(idle_timeout)]  # fmt: skip
                if not ready:
                    return  # idle
                for source in ready:
                    assert isinstance(source, socket.socket)
                    try:
                        chunk = source.recv(65536)
                        if chunk:
                            peer[source].sendall(chunk)
                            continue
                    except OSError:
                        return
                    if source is upstream:
                        return  # the backend is done: close the device's connection
                    selector.unregister(conn)  # the device is done: let the backend finish
                    with contextlib.suppress(OSError):
                        upstream.shutdown(socket.SHUT_WR)

    return relay
