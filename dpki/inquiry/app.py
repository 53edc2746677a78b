"""The inquiry node's ASGI app: JSON API (FastAPI), OCSP responder and web page.

OCSP requests take a plain-ASGI fast path in front of FastAPI (``POST /ocsp`` and
``GET /ocsp/{base64}``): a pre-produced response is a dictionary look-up away.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import requests
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from dpki import __version__
from dpki.chain.registry import Status
from dpki.inquiry import web
from dpki.inquiry.ocsp import (
    MALFORMED,
    OCSP_LABELS,
    OcspResponder,
    StatusIndex,
    load_or_create_identity,
)
from dpki.inquiry.store import UNAVAILABLE, Store
from dpki.inquiry.views import certificate_json, iso, summary_json
from dpki.metrics import CONTENT_TYPE, ServeMetrics, exposition
from dpki.pki.codes import reason_label

__all__ = ["CONFIG_ENV", "ServeConfig", "create_app", "factory", "status_json"]

log = logging.getLogger("dpki.inquiry")

CONFIG_ENV = "DPKI_SERVE_CONFIG"
_ID = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_MAX_OCSP = 16_384
#: the deepest page of a search (PostgreSQL and SQLite hold OFFSET in 64 bits)
MAX_OFFSET = 2**31 - 1
_STATUSES = {s.label: int(s) for s in Status if s is not Status.NONE}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class ServeConfig:
    """What ``dpki serve`` passes to each worker."""

    db_url: str
    responder_key: str
    responder_cert: str
    rpc_url: str | None = None
    ocsp_validity: int = 600
    poll: float = 0.5
    max_lag: int = 10

    def to_env(self) -> str:
        """Return the config as JSON for the worker environment."""
        return json.dumps(asdict(self))


def _norm_id(value: str) -> str:
    if not _ID.match(value):
        raise HTTPException(
            status_code=400,
            detail=f"a certificate id is 64 hex digits (sha256 of the DER), got {value[:80]!r}",
        )
    return value.lower().removeprefix("0x")


class _Head:
    """The chain head (number and time), asked at most once a second."""

    def __init__(self, rpc_url: str | None) -> None:
        self.rpc_url = rpc_url
        self._at = 0.0
        self._value: tuple[int, int] | None = None
        self._session = requests.Session()

    def get(self) -> tuple[int, int] | None:
        """Return the head's (number, timestamp), or None when the chain does not answer."""
        if self.rpc_url is None:
            return None
        if time.monotonic() - self._at < 1.0:
            return self._value
        try:
            block = self._session.post(
                self.rpc_url,
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_getBlockByNumber",
                    "params": ["latest", False],
                },
                timeout=2,
            ).json()["result"]
            self._value = (int(block["number"], 16), int(block["timestamp"], 16))
        except (requests.RequestException, ValueError, KeyError, TypeError):
            self._value = None
        self._at = time.monotonic()
        return self._value


def status_json(index: StatusIndex, cid: str) -> dict[str, Any] | None:
    """Return the ``/status`` answer for a normalised id, or None when not indexed."""
    state = index.by_id.get(cid)
    if state is None:
        return None
    now = int(time.time())
    return {
        "id": cid,
        "status": Status(state.status).label,
        "valid": state.status == Status.ACTIVE and state.not_before <= now <= state.not_after,
        "reason": reason_label(state.status, state.reason),
        "not_before": iso(state.not_before),
        "not_after": iso(state.not_after),
        "updated_at": iso(state.updated_at),
        "checked_at": iso(now),
    }


def create_app(config: ServeConfig) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Build the ASGI app for ``config``."""
    store = Store(config.db_url)
    identity = load_or_create_identity(Path(config.responder_key), Path(config.responder_cert))
    index = StatusIndex(store)
    responder = OcspResponder(index, identity, validity=config.ocsp_validity)
    responder.refresh()
    head = _Head(config.rpc_url)
    metrics = ServeMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def follow() -> None:
            while True:
                await asyncio.sleep(config.poll)
                try:  # on the loop thread, so no response is cached from a stale state
                    responder.refresh()
                except Exception as exc:  # the database may be restarting: keep serving
                    log.warning("cannot refresh from the index: %s", exc)

        task = asyncio.create_task(follow())
        yield
        task.cancel()

    api = FastAPI(
        title="DPKI inquiry node",
        version=__version__,
        summary="Certificate and status inquiry over the consortium ledger's index",
        lifespan=lifespan,
    )

    def members() -> dict[str, str]:
        return {m["address"]: m["organization"] for m in store.members(active_only=False)}

    def health() -> dict[str, Any]:
        checkpoint = store.checkpoint()
        chain_head = head.get()
        lag = lag_seconds = None
        if chain_head is not None and checkpoint is not None:
            lag = max(0, chain_head[0] - checkpoint.number)
            lag_seconds = max(0, chain_head[1] - checkpoint.timestamp)
        return {
            "ok": lag is not None and lag <= config.max_lag,
            "indexed_block": checkpoint.number if checkpoint else None,
            "indexed_block_time": iso(checkpoint.timestamp) if checkpoint else None,
            "chain_head": chain_head[0] if chain_head else None,
            "lag_blocks": lag,
            "lag_seconds": lag_seconds,
            "certificates": len(index.by_id),
            "status_counts": store.counts(),
            "refreshed_at": iso(int(index.refreshed_at)),
        }

    @api.get("/healthz", summary="Index health and how far it lags the chain head")
    def healthz() -> JSONResponse:
        body = health()
        return JSONResponse(body, status_code=200 if body["ok"] else 503)

    @api.get("/certificates/{cert_id}", summary="One certificate: record, votes, history, PEM")
    def get_certificate(cert_id: str) -> dict[str, Any]:
        cid = _norm_id(cert_id)
        row = store.certificate(cid)
        if row is None:
            raise HTTPException(status_code=404, detail=f"no certificate {cid} in the index")
        return certificate_json(row, store.votes(cid), store.history(cid), members())

    @api.get("/certificates", summary="Search certificates (all filters must match), paged")
    def list_certificates(
        org: str | None = None,
        subject: str | None = Query(None, description="substring of the subject DN"),
        key: str | None = Query(None, description="sha256 of the SubjectPublicKeyInfo (hex)"),
        status: str | None = Query(None, description="pending, active, suspended, ..."),
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        if status is not None and status not in _STATUSES:
            raise HTTPException(
                status_code=400, detail=f"status is one of {sorted(_STATUSES)}, got {status!r}"
            )
        key_hash = _norm_id(key) if key is not None else None
        total, rows = store.search(
            org=org,
            subject=subject,
            key=key_hash,
            status=_STATUSES[status] if status else None,
            limit=limit,
            offset=offset,
        )
        names = members()
        return {
            "total": total,
            "limit": limit,
            "offset": offset,
            "items": [summary_json(r, names) for r in rows],
        }

    @api.get("/status/{cert_id}", summary="A certificate's status (from memory: fast)")
    def get_status(cert_id: str) -> dict[str, Any]:
        cid = _norm_id(cert_id)
        body = status_json(index, cid)
        if body is None:
            raise HTTPException(status_code=404, detail=f"no certificate {cid} in the index")
        return body

    @api.get("/members", summary="The consortium's current members")
    def get_members() -> dict[str, Any]:
        return {
            "members": [
                {
                    "address": m["address"],
                    "organization": m["organization"],
                    "roles": [
                        r for bit, r in ((1, "validator"), (2, "submitter")) if m["roles"] & bit
                    ],
                    "since_block": m["since_block"],
                }
                for m in store.members()
            ],
            "threshold": int(store.get_meta("threshold") or 0),
        }

    @api.get("/ocsp/responder.pem", summary="The OCSP responder's certificate (PEM)")
    def responder_pem() -> PlainTextResponse:
        return PlainTextResponse(identity.pem.decode(), media_type="application/x-pem-file")

    def overview() -> str:
        checkpoint = store.checkpoint()
        return web.overview_html(
            web.Overview(
                members=store.members(active_only=False),
                threshold=int(store.get_meta("threshold") or 0),
                last_votes=store.last_votes(),
                counts=store.counts(),
                indexed_block=checkpoint.number if checkpoint else None,
                indexed_time=checkpoint.timestamp if checkpoint else None,
                provisioned=store.provisioned(),
            )
        )

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(
        id: str | None = None,
        org: str | None = None,
        subject: str | None = None,
        key: str | None = None,
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
        limit: int = Query(web.PAGE_SIZE, ge=1, le=500),
    ) -> HTMLResponse:
        fields = (("id", id), ("org", org), ("subject", subject), ("key", key))
        query = {k: v for k, v in fields if v}
        prefix = _hex_prefix(id) if id else None
        key_hash = _hex_prefix(key) if key else None
        if id and prefix is None:
            problem = f"an id is up to 64 hex digits (0x optional), got {id[:80]!r}"
            return _web_error(400, problem)
        if key and (key_hash is None or len(key_hash) != 64):
            problem = f"a key hash is 64 hex digits (sha256 of the key), got {key[:80]!r}"
            return _web_error(400, problem)
        total, rows = store.search(
            org=org or None,
            subject=subject or None,
            key=key_hash,
            id_prefix=prefix,
            limit=limit,
            offset=offset,
        )
        if prefix and total == 1 and offset == 0 and len(query) == 1:
            return HTMLResponse(
                status_code=303, headers={"Location": f"/ui/certificates/{rows[0]['id']}"}
            )
        error, status = None, 200
        if prefix and total == 0:
            shown = prefix if len(prefix) == 64 else prefix + "…"
            error, status = f"no certificate {shown} in the index", 404
        names = members()
        page = web.search_page(
            query,
            total,
            [summary_json(r, names) for r in rows],
            health(),
            error,
            offset=offset,
            limit=limit,
            overview=overview(),
        )
        return HTMLResponse(page, status_code=status)

    @api.get("/ui/certificates/{cert_id}", response_class=HTMLResponse, include_in_schema=False)
    def detail(cert_id: str) -> HTMLResponse:
        try:
            record = get_certificate(cert_id)
        except HTTPException as exc:  # a page, not JSON: the reader came with a browser
            return _web_error(exc.status_code, str(exc.detail))
        return HTMLResponse(web.detail_page(record))

    @api.get(
        "/metrics",
        summary="Prometheus metrics: requests, OCSP answers, index lag (text format)",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def get_metrics() -> Response:
        observe_index()
        return Response(exposition(metrics.registry), media_type=CONTENT_TYPE)

    def observe_index() -> None:
        """Set the index gauges from what the index and the chain say now."""
        try:
            body = health()
        except UNAVAILABLE:  # the database is down: report what memory knows
            body = {"indexed_block": None, "lag_blocks": None, "lag_seconds": None}
            body["status_counts"] = {}
        metrics.indexed_block.set(_or_minus_one(body["indexed_block"]))
        metrics.lag_blocks.set(_or_minus_one(body["lag_blocks"]))
        metrics.lag_seconds.set(_or_minus_one(body["lag_seconds"]))
        for label in _STATUSES:
            metrics.certificates.labels(label).set(body["status_counts"].get(label, 0))

    @api.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    async def database_down(_request: Request, exc: Exception) -> JSONResponse:
        # /status and OCSP answer from memory meanwhile; queries need the database
        log.warning("the index database is unavailable: %s", getattr(exc, "orig", exc))
        return JSONResponse(
            {"error": "the index database is unavailable; /status and OCSP still answer"},
            status_code=503,
            headers={"retry-after": "5"},
        )

    for unavailable in UNAVAILABLE:
        api.add_exception_handler(unavailable, database_down)

    ocsp_counts = {label: metrics.ocsp.labels(label) for label in OCSP_LABELS}
    responder.answered = lambda label: ocsp_counts[label].inc()
    return _Counted(_OcspFront(api, responder), metrics)


def _hex_prefix(text: str) -> str | None:
    """Return up to 64 hex digits (0x optional) in lowercase, or None."""
    digits = text.strip().lower().removeprefix("0x")
    if not 0 < len(digits) <= 64 or any(c not in "0123456789abcdef" for c in digits):
        return None
    return digits


def _web_error(status: int, message: str) -> HTMLResponse:
    return HTMLResponse(web.error_page(status, message), status_code=status)


def _or_minus_one(value: int | None) -> int:
    return -1 if value is None else value


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def _endpoint(scope: Scope) -> str:
    """Name a request by its route template (a bounded set of label values)."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    path: str = scope["path"]
    if path == "/ocsp":
        return "/ocsp"
    if path.startswith("/ocsp/"):
        return "/ocsp/{request}"
    if path.startswith("/status/"):
        return "/status/{cert_id}"
    return "unmatched"


class _Counted:
    """Count every HTTP request by endpoint, method and status code."""

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], metrics: ServeMetrics
    ) -> None:
        self.app = app
        self.metrics = metrics
        self._counters: dict[tuple[str, str, int], Any] = {}  # labels() costs a lock each

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            key = (_endpoint(scope), method, status)
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = self.metrics.requests.labels(
                    key[0], method, str(status)
                )
            counter.inc()


class _OcspFront:
    """Answer OCSP in plain ASGI; hand everything else to FastAPI."""

    def __init__(self, api: FastAPI, responder: OcspResponder) -> None:
        self.api = api
        self.responder = responder
        self.cache_control = f"max-age={responder.max_age()}, public, no-transform, must-revalidate"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == "/ocsp" and scope["method"] == "POST":
                body = await _read_body(receive, _MAX_OCSP)
                await self._answer(send, self.responder.respond(body) if body else MALFORMED)
                return
            if path.startswith("/status/") and scope["method"] == "GET":
                tail = path[len("/status/") :]
                if _ID.match(tail):  # the hot path, in plain ASGI; errors go to FastAPI
                    answer = status_json(self.responder.index, tail.lower().removeprefix("0x"))
                    if answer is not None:
                        await self._send(send, json.dumps(answer).encode(), b"application/json")
                        return
            if path.startswith("/ocsp/") and path != "/ocsp/responder.pem":
                if scope["method"] not in ("GET", "HEAD"):
                    await self._answer(send, MALFORMED)
                    return
                raw = scope.get("raw_path") or path.encode()
                encoded = unquote(raw.decode("latin-1").split("?", 1)[0][len("/ocsp/") :])
                try:
                    request = base64.b64decode(
                        encoded.replace("-", "+").replace("_", "/"), validate=True
                    )
                except (binascii.Error, ValueError):
                    request = b""
                der = self.responder.respond(request) if request else MALFORMED
                await self._answer(send, der, cacheable=request != b"" and der is not MALFORMED)
                return
        await self.api(scope, receive, send)

    async def _answer(self, send: Send, der: bytes, *, cacheable: bool = False) -> None:
        extra = [(b"cache-control", self.cache_control.encode())] if cacheable else []
        await self._send(send, der, b"application/ocsp-response", extra)

    @staticmethod
    async def _send(
        send: Send, body: bytes, ctype: bytes, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
        await send(
            {"type": "http.response.start", "status": 200, "headers": headers + (extra or [])}
        )
        await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int) -> bytes:
    """Read a request body up to ``limit`` bytes (more: return empty, a malformed request)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b""
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def factory() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Build the app from ``$DPKI_SERVE_CONFIG`` (how uvicorn workers get their config)."""
    return create_app(ServeConfig(**json.loads(os.environ[CONFIG_ENV])))
