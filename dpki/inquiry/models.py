"""The inquiry node's HTTP contract as data: the JSON bodies it answers (pydantic models that
FastAPI puts into the OpenAPI document and checks every answer against), and the OpenAPI
description of what FastAPI does not route itself: the OCSP responder (RFC 6960 / RFC 5019)
that a plain-ASGI front answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CERT_ID_DESCRIPTION",
    "HEX_ID",
    "OCSP_PATHS",
    "Authorization",
    "Authorizations",
    "Certificate",
    "CertificateSummary",
    "Endorser",
    "Error",
    "Health",
    "HistoryEntry",
    "Member",
    "Members",
    "Rejecter",
    "SearchPage",
    "StatusAnswer",
    "StatusName",
]

#: the ids the node answers with: 64 lowercase hex digits
HEX_ID = r"^[0-9a-f]{64}$"
CERT_ID_DESCRIPTION = (
    "certificate id: the SHA-256 of the certificate's DER as 64 hex digits, any case, "
    "optionally after 0x or 0X; nothing else (no spaces or newline)"
)

StatusName = Literal["pending", "active", "suspended", "revoked", "superseded", "rejected"]
_TIME = (
    "UTC time as ISO 8601 (YYYY-MM-DDThh:mm:ssZ), or unix:<seconds> for a time a submitter "
    "declared that no calendar holds"
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(_Body):
    """What every refused request gets: one sentence saying what was wrong."""

    error: str = Field(description="what was got and what was wanted")


class StatusAnswer(_Body):
    """A certificate's status now (``GET /status/{cert_id}``)."""

    id: str = Field(pattern=HEX_ID)
    status: StatusName
    valid: bool = Field(description="active and inside its validity window now")
    reason: str | None = Field(
        description="RFC 5280 reason of a revocation, suspension or renewal; the policy "
        "code of a rejection"
    )
    not_before: str = Field(description=_TIME)
    not_after: str = Field(description=_TIME)
    updated_at: str = Field(description=_TIME)
    checked_at: str = Field(description=_TIME)


class CertificateSummary(_Body):
    """One certificate in a search result."""

    id: str = Field(pattern=HEX_ID)
    status: StatusName
    valid: bool
    expired: bool
    reason: str | None
    subject: str | None = Field(description="RFC 4514 subject; null when the DER does not parse")
    organization: str | None
    common_name: str | None
    serial: str | None = Field(description="serial number in hex")
    key_hash: str = Field(description="SHA-256 of the SubjectPublicKeyInfo, hex")
    submitter: str = Field(description="the submitting member's address")
    submitter_organization: str | None
    not_before: str = Field(description=_TIME)
    not_after: str = Field(description=_TIME)
    updated_at: str = Field(description=_TIME)
    updated_block: int
    endorsements: int
    rejections: int


class Endorser(_Body):
    """A validator that endorsed a certificate."""

    address: str
    organization: str | None
    block: int
    at: str | None = Field(description=_TIME)


class Rejecter(_Body):
    """A validator that rejected a certificate, and its policy code."""

    address: str
    organization: str | None
    reason: str | None
    block: int


class HistoryEntry(_Body):
    """One status change of a certificate, as the ledger recorded it."""

    event: str
    status: StatusName
    previous: StatusName | Literal["unknown"]
    reason: str | None
    actor: str
    actor_organization: str | None
    block: int
    block_hash: str
    log_index: int
    tx_hash: str
    at: str | None = Field(description=_TIME)


class Certificate(CertificateSummary):
    """A certificate's whole record: summary, votes, history and PEM."""

    issuer: str | None
    self_issued: bool
    parse_error: str | None
    replaces: str | None = Field(description="id of the certificate this one renews")
    replaced_by: str | None = Field(description="id of the certificate that renewed this one")
    submitted_block: int
    submitted_at: str | None = Field(description=_TIME)
    endorsers: list[Endorser]
    rejecters: list[Rejecter]
    history: list[HistoryEntry]
    pem: str


class SearchPage(_Body):
    """A page of search results and how many matched in all."""

    total: int
    limit: int
    offset: int
    items: list[CertificateSummary]


class Member(_Body):
    """A consortium member."""

    address: str
    organization: str
    roles: list[Literal["validator", "submitter"]]
    since_block: int


class Members(_Body):
    """The current members and the endorsement threshold."""

    members: list[Member]
    threshold: int


class Authorization(_Body):
    """An issuer authorisation on the ledger: a CA that vouches for a member's organization."""

    issuer: str = Field(pattern=HEX_ID, description="the CA certificate's id")
    org_hash: str = Field(pattern=HEX_ID, description="sha256 of the organization")
    member: str = Field(description="the member whose organization it vouches for")
    granted_by: str = Field(description="that member, or the validator that executed a quorum")
    organization: str | None = Field(description="the member's organization (None: it left)")


class Authorizations(_Body):
    """The issuer authorisations in force (``GET /authorizations``)."""

    authorizations: list[Authorization]


class Health(_Body):
    """How far the index lags the chain (``ok``: within ``--max-lag`` blocks, and a head
    block no older than ``--max-head-age`` seconds when that is set)."""

    ok: bool
    indexed_block: int | None
    indexed_block_time: str | None = Field(description=_TIME)
    chain_head: int | None = Field(description="null when the chain does not answer")
    chain_head_age_seconds: int | None = Field(
        description="seconds since the head block's time: a node cut off from the network "
        "(or stalled) stops moving while the index stays level with it; null when the chain "
        "does not answer"
    )
    lag_blocks: int | None
    lag_seconds: int | None = Field(
        description="seconds between the chain head's time and the indexed block's time"
    )
    certificates: int
    status_counts: dict[str, int]
    refreshed_at: str | None = Field(description=_TIME)


def _ocsp_response(description: str, *, cached: bool) -> dict[str, Any]:
    headers: dict[str, Any] = {
        "Cache-Control": {
            "description": "max-age=<seconds>, public, no-transform, must-revalidate for a "
            "pre-produced answer (RFC 5019 6.2); no-cache, no-store for one that echoes a nonce "
            "or reports an error",
            "schema": {"type": "string"},
        }
    }
    if cached:
        for name, text in (
            ("Last-Modified", "the response's thisUpdate"),
            ("Expires", "the response's nextUpdate"),
            ("ETag", "a strong validator of this exact response"),
        ):
            headers[name] = {"description": f"{text} (RFC 5019 6.2; pre-produced answers)"}
            headers[name]["schema"] = {"type": "string"}
    return {
        "description": description,
        "headers": headers,
        "content": {
            "application/ocsp-response": {"schema": {"type": "string", "format": "binary"}}
        },
    }


_OCSP_ANSWER = (
    "a DER OCSPResponse (RFC 6960), always with HTTP 200: a signed basic response (good, "
    "revoked or unknown), or malformedRequest for anything that does not decode as one "
    "request for one certificate"
)

#: OpenAPI path items of the OCSP responder (answered in front of FastAPI, see ``app.py``)
OCSP_PATHS: dict[str, Any] = {
    "/ocsp": {
        "post": {
            "tags": ["ocsp"],
            "summary": "OCSP over POST (RFC 6960 A.1)",
            "operationId": "ocsp_post",
            "requestBody": {
                "required": False,
                "description": "a DER OCSPRequest (at most 16 KiB; any Content-Type is read); "
                "an empty or missing body gets malformedRequest like any other that does not "
                "decode",
                "content": {
                    "application/ocsp-request": {"schema": {"type": "string", "format": "binary"}}
                },
            },
            "responses": {"200": _ocsp_response(_OCSP_ANSWER, cached=True)},
        }
    },
    "/ocsp/{request}": {
        "get": {
            "tags": ["ocsp"],
            "summary": "OCSP over GET (RFC 6960 A.1, RFC 5019 5): cacheable by HTTP proxies",
            "operationId": "ocsp_get",
            "parameters": [
                {
                    "name": "request",
                    "in": "path",
                    "required": True,
                    "description": "the DER OCSPRequest in base64 (or base64url), URL-encoded",
                    "schema": {"type": "string"},
                }
            ],
            "responses": {"200": _ocsp_response(_OCSP_ANSWER, cached=True)},
        }
    },
}
