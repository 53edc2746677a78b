"""The inquiry node's ASGI app: JSON API (FastAPI), OCSP responder and web page.

OCSP requests take a plain-ASGI fast path in front of FastAPI (``POST /ocsp`` and
``GET /ocsp/{base64}``): a pre-produced response is a dictionary look-up away. The OpenAPI
document (``/openapi.json``) describes every operation as served, these included: parameters
with their patterns and bounds, every status code and media type, and one error body
(``{"error": "..."}``, HTML on the web pages). Nothing a client sends gets a 5xx, except 503
while the index database is down.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

import requests
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from dpki import __version__
from dpki.chain.registry import Status
from dpki.chain.types import CERT_ID_PATTERN, parse_cert_id
from dpki.inquiry import web
from dpki.inquiry.models import (
    CERT_ID_DESCRIPTION,
    OCSP_PATHS,
    Authorizations,
    Certificate,
    Error,
    Health,
    Members,
    SearchPage,
    StatusAnswer,
    StatusName,
)
from dpki.inquiry.ocsp import (
    MALFORMED_ANSWER,
    OCSP_LABELS,
    OcspAnswer,
    OcspResponder,
    StatusIndex,
    load_or_create_identity,
)
from dpki.inquiry.queries import MAX_OFFSET, MAX_PAGE, MAX_TEXT, BadQuery
from dpki.inquiry.store import UNAVAILABLE, Store
from dpki.inquiry.views import certificate_json, iso, summary_json
from dpki.metrics import CONTENT_TYPE, ServeMetrics, exposition
from dpki.pki.codes import reason_label

__all__ = ["CONFIG_ENV", "OcspRoute", "ServeConfig", "create_app", "factory", "status_json"]

log = logging.getLogger("dpki.inquiry")

CONFIG_ENV = "DPKI_SERVE_CONFIG"
_MAX_OCSP = 16_384
_STATUSES = {s.label: int(s) for s in Status if s is not Status.NONE}
_BAD_ID = "a certificate id is 64 hex digits (sha256 of the DER, 0x optional)"
#: free text in a search: bounded, no NUL (PostgreSQL text cannot hold one)
_TEXT_PATTERN = r"^[^\x00]*$"
#: the web form sends empty fields for what the user left out
_FORM_ID_PATTERN = f"^({CERT_ID_PATTERN.removeprefix('^').removesuffix('$')})?$"
#: the web search takes an id or its first digits (the list shows 16)
_FORM_PREFIX_PATTERN = r"^(0[xX])?[0-9a-fA-F]{0,64}$"
_TEXT: dict[str, Any] = {"max_length": MAX_TEXT, "pattern": _TEXT_PATTERN}
OrgParam = Annotated[str | None, Query(description="organization (O), exact", **_TEXT)]
SubjectParam = Annotated[str | None, Query(description="substring of the subject DN", **_TEXT)]
OffsetParam = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="matches to skip")]
LimitParam = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")]
CertIdParam = Annotated[str, PathParam(pattern=CERT_ID_PATTERN, description=CERT_ID_DESCRIPTION)]

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
    #: seconds after which a head that stopped moving (a stalled or cut-off node) is
    #: unhealthy; None on chains that mine only on demand (anvil)
    max_head_age: int | None = None

    def to_env(self) -> str:
        """Return the config as JSON for the worker environment."""
        return json.dumps(asdict(self))


def _norm_id(value: str) -> str:
    cid = parse_cert_id(value)
    if cid is None:  # the schema's pattern refuses it first; this is the same rule
        raise HTTPException(status_code=400, detail=f"{_BAD_ID}, got {value[:80]!r}")
    return cid


class PemResponse(PlainTextResponse):
    """A PEM certificate."""

    media_type = "application/x-pem-file"


def _is_web(request: Request) -> bool:
    path: str = request.url.path
    return path == "/" or path.startswith("/ui/")


def _error(
    request: Request, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """Answer an error: ``{"error": ...}``, or an HTML page on the web pages."""
    if _is_web(request):
        return HTMLResponse(web.error_page(status, message), status_code=status, headers=headers)
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _problem(error: dict[str, Any]) -> str:
    """Say in words what one request validation error was about."""
    where, name = str(error["loc"][0]), str(error["loc"][-1])
    got = repr(error.get("input"))
    got = got if len(got) <= 80 else got[:77] + "..."
    if error["type"] == "string_pattern_mismatch" and name in ("cert_id", "key", "id"):
        what = _BAD_ID if name != "key" else "key is a sha256 as 64 hex digits (0x optional)"
        return f"{what}, got {got}"
    return f"{where} parameter {name}: {error['msg']}, got {got}"


_ERROR_MEANINGS = {
    400: "a parameter breaks the schema: the error says which and what was wanted",
    404: "no certificate with this id in the index",
    503: "the index database is unavailable (Retry-After: 5 seconds); /status and OCSP still "
    "answer from memory",
}


def _errors(*codes: int, html: bool = False) -> dict[int | str, dict[str, Any]]:
    """Document error answers: the JSON error body, or an HTML page."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if html:
            text = {"content": {"text/html": {"schema": {"type": "string"}}}}
            out[code] = {"description": _ERROR_MEANINGS[code] + " (an HTML page)", **text}
        else:
            out[code] = {"description": _ERROR_MEANINGS[code], "model": Error}
    return out


class _Head:
    """The chain head (number and time), asked at most once a second."""

    def __init__(self, rpc_url: str | None) -> None:
        self.rpc_url = rpc_url
        self._at = 0.0
        self._value: int | None = None
        self.timestamp: int | None = None
        self._session = requests.Session()

    def get(self) -> int | None:
        """Return the head's number (and keep its time in ``timestamp``)."""
        if self.rpc_url is None:
            return None
        if time.monotonic() - self._at < 1.0:
            return self._value
        try:
            body = self._session.post(
                self.rpc_url,
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_getBlockByNumber",
                    "params": ["latest", False],
                },
                timeout=2,
            ).json()
            self._value = int(body["result"]["number"], 16)
            self.timestamp = int(body["result"]["timestamp"], 16)
        except (requests.RequestException, ValueError, KeyError, TypeError):
            self._value = self.timestamp = None
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
        indexed = checkpoint.number if checkpoint else None
        lag = None if chain_head is None or indexed is None else max(0, chain_head - indexed)
        # a node cut off from the majority (or stalled) has a head that stops moving: the
        # index may be level with it and still behind the network by this many seconds
        age = None if head.timestamp is None else max(0, int(time.time()) - head.timestamp)
        lag_seconds = None
        if head.timestamp is not None and checkpoint is not None:
            lag_seconds = max(0, head.timestamp - checkpoint.timestamp)
        return {
            "ok": lag is not None
            and lag <= config.max_lag
            and (age is None or config.max_head_age is None or age <= config.max_head_age),
            "indexed_block": indexed,
            "indexed_block_time": iso(checkpoint.timestamp) if checkpoint else None,
            "chain_head": chain_head,
            "chain_head_age_seconds": age,
            "lag_seconds": lag_seconds,
            "lag_blocks": lag,
            "certificates": len(index.by_id),
            "status_counts": store.counts(),
            "refreshed_at": iso(int(index.refreshed_at)),
        }

    @api.get(
        "/healthz",
        summary="Index health and how far it lags the chain head",
        response_model=Health,
        responses={
            503: {
                "description": "the index lags the chain by more than --max-lag blocks or the "
                "chain head is unknown (a Health body), or the index database is unavailable "
                "(an Error body)",
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                {"$ref": "#/components/schemas/Health"},
                                {"$ref": "#/components/schemas/Error"},
                            ]
                        }
                    }
                },
            }
        },
    )
    def healthz() -> JSONResponse:
        body = health()
        return JSONResponse(body, status_code=200 if body["ok"] else 503)

    def certificate_record(cert_id: str) -> dict[str, Any]:
        cid = _norm_id(cert_id)
        row = store.certificate(cid)
        if row is None:
            raise HTTPException(status_code=404, detail=f"no certificate {cid} in the index")
        return certificate_json(row, store.votes(cid), store.history(cid), members())

    @api.get(
        "/certificates/{cert_id}",
        summary="One certificate: record, votes, history, PEM",
        response_model=Certificate,
        responses=_errors(400, 404, 503),
    )
    def get_certificate(cert_id: CertIdParam) -> dict[str, Any]:
        return certificate_record(cert_id)

    @api.get(
        "/certificates",
        summary="Search certificates (all filters must match), paged",
        response_model=SearchPage,
        responses=_errors(400, 503),
    )
    def list_certificates(
        org: OrgParam = None,
        subject: SubjectParam = None,
        key: Annotated[
            str | None,
            Query(
                description="sha256 of the SubjectPublicKeyInfo: 64 hex digits, 0x optional",
                pattern=CERT_ID_PATTERN,
            ),
        ] = None,
        status: Annotated[StatusName | None, Query(description="current status")] = None,
        limit: LimitParam = 50,
        offset: OffsetParam = 0,
    ) -> dict[str, Any]:
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

    @api.get(
        "/status/{cert_id}",
        summary="A certificate's status (from memory: fast, answers while the database is down)",
        response_model=StatusAnswer,
        responses=_errors(400, 404),
    )
    def get_status(cert_id: CertIdParam) -> dict[str, Any]:
        cid = _norm_id(cert_id)
        body = status_json(index, cid)
        if body is None:
            raise HTTPException(status_code=404, detail=f"no certificate {cid} in the index")
        return body

    @api.get(
        "/members",
        summary="The consortium's current members",
        response_model=Members,
        responses=_errors(503),
    )
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
        response_model=Authorizations,
        responses=_errors(503),
    )
    def get_authorizations() -> dict[str, Any]:
        names = members()
        return {
            "authorizations": [
                dict(a, organization=names.get(a["member"])) for a in store.authorizations()
            ]
        }

    @api.get(
        "/ocsp/responder.pem",
        summary="The OCSP responder's certificate (PEM)",
        tags=["ocsp"],
        response_class=PemResponse,
        responses={200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}}}},
    )
    def responder_pem() -> PemResponse:
        return PemResponse(identity.pem.decode())

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

    @api.get(
        "/",
        summary="Web page: search by id, organization or subject",
        tags=["web"],
        response_class=HTMLResponse,
        responses={
            303: {
                "description": "the id is in the index: its page is at Location",
                "headers": {"Location": {"schema": {"type": "string"}}},
            },
            **_errors(400, 404, 503, html=True),
        },
    )
    def home(
        id: Annotated[
            str | None,
            Query(
                description="a certificate id or its first hex digits (or empty)",
                pattern=_FORM_PREFIX_PATTERN,
            ),
        ] = None,
        org: OrgParam = None,
        subject: SubjectParam = None,
        key: Annotated[
            str | None,
            Query(
                description="sha256 of the SubjectPublicKeyInfo (or empty)",
                pattern=_FORM_ID_PATTERN,
            ),
        ] = None,
        offset: OffsetParam = 0,
        limit: LimitParam = web.PAGE_SIZE,
    ) -> HTMLResponse:
        fields = (("id", id), ("org", org), ("subject", subject), ("key", key))
        query = {k: v for k, v in fields if v}
        if limit != web.PAGE_SIZE:
            query["limit"] = str(limit)
        prefix = id[2:].lower() if id and id[:2] in ("0x", "0X") else (id or "").lower()
        total, rows = store.search(
            org=org or None,
            subject=subject or None,
            key=_norm_id(key) if key else None,
            id_prefix=prefix or None,
            limit=limit,
            offset=offset,
        )
        if prefix and total == 1 and offset == 0 and not (org or subject or key):
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

    @api.get(
        "/ui/certificates/{cert_id}",
        summary="Web page of one certificate: status, endorsers, history, PEM",
        tags=["web"],
        response_class=HTMLResponse,
        responses=_errors(400, 404, 503, html=True),
    )
    def detail(cert_id: CertIdParam) -> HTMLResponse:
        return HTMLResponse(web.detail_page(certificate_record(cert_id)))

    @api.get(
        "/metrics",
        summary="Prometheus metrics: requests, OCSP answers, index lag (text format)",
        tags=["metrics"],
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

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail), exc.headers)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 400, "; ".join(_problem(e) for e in exc.errors()))

    @api.exception_handler(BadQuery)
    async def bad_query(request: Request, exc: BadQuery) -> Response:
        return _error(request, 400, str(exc))

    async def database_down(request: Request, exc: Exception) -> Response:
        # /status and OCSP answer from memory meanwhile; queries need the database
        log.warning("the index database is unavailable: %s", getattr(exc, "orig", exc))
        message = "the index database is unavailable; /status and OCSP still answer"
        return _error(request, 503, message, {"retry-after": "5"})

    for unavailable in UNAVAILABLE:
        api.add_exception_handler(unavailable, database_down)

    def openapi() -> dict[str, Any]:
        """The schema FastAPI derives, without its 422 (this node answers 400), plus OCSP."""
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title, version=api.version, summary=api.summary, routes=api.routes
            )
            for item in schema["paths"].values():
                for operation in item.values():
                    operation["responses"].pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema["components"]["schemas"].pop(name, None)
            schema["paths"].update(OCSP_PATHS)
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    ocsp_counts = {label: metrics.ocsp.labels(label) for label in OCSP_LABELS}
    responder.answered = lambda label: ocsp_counts[label].inc()
    route = OcspRoute(responder)
    return _Counted(_OcspFront(api, route), metrics, route)


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
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        metrics: ServeMetrics,
        ocsp_route: OcspRoute,
    ) -> None:
        self.app = app
        self.metrics = metrics
        #: what the lean HTTP protocol (:mod:`dpki.inquiry.protocol`) answers below ASGI
        self.ocsp_route = ocsp_route
        ocsp_route.count = self.count
        self._counters: dict[tuple[str, str, int], Any] = {}  # labels() costs a lock each

    def count(self, endpoint: str, method: str, status: int) -> None:
        """Count one answered request."""
        key = (endpoint, method if method in _METHODS else "other", status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.metrics.requests.labels(
                key[0], key[1], str(status)
            )
        counter.inc()

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
            self.count(_endpoint(scope), scope["method"], status)


Headers = list[tuple[bytes, bytes]]
_JSON = b"application/json"


class OcspRoute:
    """Answer ``POST /ocsp`` and ``GET``/``HEAD /ocsp/{base64}`` (RFC 6960 A.1, RFC 5019).

    Synchronous and free of any HTTP framework: the plain-ASGI route (:class:`_OcspFront`)
    and the lean HTTP protocol (:mod:`dpki.inquiry.protocol`) both answer through it, so
    they send the same status, headers and body.
    """

    #: the largest request body read; a larger one gets malformedRequest
    max_body = _MAX_OCSP

    def __init__(self, responder: OcspResponder) -> None:
        self.responder = responder
        #: told of each answered request (endpoint, method, status); set by _Counted
        self.count: Callable[[str, str, int], None] = _count_nothing

    @staticmethod
    def endpoint(path: str) -> str | None:
        """Return the route template of an OCSP path (None: not OCSP's)."""
        if path == "/ocsp":
            return "/ocsp"
        if path.startswith("/ocsp/") and path != "/ocsp/responder.pem":
            return "/ocsp/{request}"
        return None

    def respond(
        self, method: str, endpoint: str, raw_path: bytes, body: bytes
    ) -> tuple[int, Headers, bytes]:
        """Return (status, headers, body) for a request to ``endpoint``.

        ``raw_path`` is the request target as sent (for the GET form), ``body`` the POST
        body, empty when there was none or it was over :attr:`max_body`. A HEAD answer
        carries the GET answer's headers; its sender leaves the body out."""
        if endpoint == "/ocsp":
            if method != "POST":
                return _not_allowed(b"POST")
            return self._answer(self.responder.answer(body) if body else MALFORMED_ANSWER)
        if method not in ("GET", "HEAD"):
            return _not_allowed(b"GET, HEAD")
        encoded = unquote(raw_path.decode("latin-1").split("?", 1)[0][len("/ocsp/") :])
        try:
            request = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            request = b""
        return self._answer(self.responder.answer(request) if request else MALFORMED_ANSWER)

    def _answer(self, answer: OcspAnswer) -> tuple[int, Headers, bytes]:
        return 200, answer.headers(time.time(), self.responder.max_age()), answer.der


def _count_nothing(_endpoint: str, _method: str, _status: int) -> None:
    pass


def _not_allowed(allow: bytes) -> tuple[int, Headers, bytes]:
    body = json.dumps({"error": f"method not allowed here; allowed: {allow.decode()}"}).encode()
    headers = [(b"content-type", _JSON), (b"content-length", b"%d" % len(body)), (b"allow", allow)]
    return 405, headers, body


class _OcspFront:
    """Answer OCSP and the status hot path in plain ASGI; hand everything else to FastAPI."""

    def __init__(self, api: FastAPI, route: OcspRoute) -> None:
        self.api = api
        self.route = route
        self.index = route.responder.index

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            method: str = scope["method"]
            endpoint = OcspRoute.endpoint(path)
            if endpoint is not None:
                body = b""
                if endpoint == "/ocsp" and method == "POST":
                    body = await _read_body(receive, OcspRoute.max_body)
                raw = scope.get("raw_path") or path.encode()
                status, headers, content = self.route.respond(method, endpoint, raw, body)
                if method == "HEAD":
                    content = b""
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": content})
                return
            if path.startswith("/status/") and method == "GET":
                cid = parse_cert_id(path[len("/status/") :])
                if cid is not None:  # the hot path, in plain ASGI; errors go to FastAPI
                    answer = status_json(self.index, cid)
                    if answer is not None:
                        await _send(send, 200, json.dumps(answer).encode(), _JSON)
                        return
        await self.api(scope, receive, send)


async def _send(send: Send, status: int, body: bytes, ctype: bytes) -> None:
    headers = [(b"content-type", ctype), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
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
