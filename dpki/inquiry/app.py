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
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from dpki import __version__
from dpki.chain.registry import Status
from dpki.inquiry import web
from dpki.inquiry.ocsp import MALFORMED, OcspResponder, StatusIndex, load_or_create_identity
from dpki.inquiry.store import UNAVAILABLE, Store
from dpki.inquiry.views import certificate_json, iso, summary_json
from dpki.pki.codes import reason_label

__all__ = ["CONFIG_ENV", "ServeConfig", "create_app", "factory", "status_json"]

log = logging.getLogger("dpki.inquiry")

CONFIG_ENV = "DPKI_SERVE_CONFIG"
_ID = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_MAX_OCSP = 16_384
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
    """The chain head, asked at most once a second."""

    def __init__(self, rpc_url: str | None) -> None:
        self.rpc_url = rpc_url
        self._at = 0.0
        self._value: int | None = None
        self._session = requests.Session()

    def get(self) -> int | None:
        if self.rpc_url is None:
            return None
        if time.monotonic() - self._at < 1.0:
            return self._value
        try:
            body = self._session.post(
                self.rpc_url,
                json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
                timeout=2,
            ).json()
            self._value = int(body["result"], 16)
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
        indexed = checkpoint.number if checkpoint else None
        lag = None if chain_head is None or indexed is None else max(0, chain_head - indexed)
        return {
            "ok": lag is not None and lag <= config.max_lag,
            "indexed_block": indexed,
            "indexed_block_time": iso(checkpoint.timestamp) if checkpoint else None,
            "chain_head": chain_head,
            "lag_blocks": lag,
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

    @api.get(
        "/authorizations",
        summary="Issuer authorisations: which CA vouches for which member's organization",
    )
    def get_authorizations() -> dict[str, Any]:
        names = members()
        return {
            "authorizations": [
                dict(a, organization=names.get(a["member"])) for a in store.authorizations()
            ]
        }

    @api.get("/ocsp/responder.pem", summary="The OCSP responder's certificate (PEM)")
    def responder_pem() -> PlainTextResponse:
        return PlainTextResponse(identity.pem.decode(), media_type="application/x-pem-file")

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(
        id: str | None = None, org: str | None = None, subject: str | None = None
    ) -> HTMLResponse:
        query = {k: v for k, v in (("id", id), ("org", org), ("subject", subject)) if v}
        error = None
        if id:
            if _ID.match(id) and store.certificate(id.lower().removeprefix("0x")):
                return HTMLResponse(
                    status_code=303,
                    headers={"Location": f"/ui/certificates/{id.lower().removeprefix('0x')}"},
                )
            error = f"no certificate {id!r} in the index"
        total, rows = store.search(org=org or None, subject=subject or None, limit=100)
        names = members()
        page = web.search_page(
            query, total, [summary_json(r, names) for r in rows], health(), error
        )
        return HTMLResponse(page)

    @api.get("/ui/certificates/{cert_id}", response_class=HTMLResponse, include_in_schema=False)
    def detail(cert_id: str) -> HTMLResponse:
        record = get_certificate(cert_id)
        return HTMLResponse(web.detail_page(record))

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

    return _OcspFront(api, responder)


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
