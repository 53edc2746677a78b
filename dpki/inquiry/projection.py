"""The event-to-row projection: what registry events make of the index's rows, without SQL.

:func:`project_range` applies the events of one block range to certificate rows held in
memory and returns the rows to add (events, votes, history). It mirrors the contract's state
machine from its events alone; :func:`member_rows` does the same for the membership. The
store loads the rows, calls these and writes what they return.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from cryptography import x509

from dpki.chain.abi import Event
from dpki.pki.codes import Status
from dpki.pki.der import Layout, Unsupported, read_layout
from dpki.pki.facts import read_names
from dpki.pki.x509 import dn, load_certificate, name_facts, ocsp_hashes

__all__ = [
    "CERT_EVENTS",
    "MEMBER_EVENTS",
    "MUTABLE",
    "Batch",
    "CertRow",
    "ParsedRow",
    "apply_cert_event",
    "args_from_json",
    "args_json",
    "authorization_rows",
    "cert_fields",
    "event_row",
    "hex_id",
    "member_rows",
    "parse_fields",
    "parse_row",
    "project_range",
]

CERT_EVENTS = frozenset(
    {
        "CertificateSubmitted",
        "CertificateEndorsed",
        "CertificateRejected",
        "CertificateStatusChanged",
    }
)
MEMBER_EVENTS = frozenset(
    {"MemberAdded", "MemberRemoved", "RolesChanged", "ThresholdChanged", "MemberKeyRotated"}
)
#: the columns a status change rewrites
MUTABLE = (
    # a Rejected id registered again (contract 2.0) changes its submission fields too
    "submitter",
    "key_hash",
    "org_hash",
    "not_before",
    "not_after",
    "replaces",
    "submitted_block",
    "submitted_at",
    "status",
    "reason",
    "endorsements",
    "rejections",
    "replaced_by",
    "updated_block",
    "updated_at",
    "revision",
)


@dataclass
class CertRow:
    """A certificate row as a dict of column values (mutated while events apply), with the
    certificate parsed from its DER when this range submitted it (None: not parsed here)."""

    values: dict[str, Any]
    new: bool = False
    dirty: bool = False
    certificate: x509.Certificate | None = None
    #: where the parts of its DER are, when its names were read from them
    layout: Layout | None = None


@dataclass
class Batch:
    """What one block range adds to the index."""

    events: list[dict[str, Any]] = field(default_factory=list)
    votes: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    #: (transaction, replaced id) -> the renewal that activated in that transaction
    activated: dict[tuple[bytes, str], str] = field(default_factory=dict)
    #: a member event is in the range (members and threshold are recomputed)
    members_changed: bool = False


def hex_id(value: bytes | bytearray) -> str:
    """Return bytes as lower-case hex without 0x (ids and hashes in the index)."""
    return value.hex()


def cert_fields(der: bytes) -> dict[str, Any]:
    """Return the parsed columns of a certificate row (``parse_error`` when it does not parse)."""
    return parse_fields(der)[0]


#: the fields of a row whose bytes do not parse
_EMPTY: dict[str, Any] = {
    "subject": None,
    "organization": None,
    "common_name": None,
    "issuer": None,
    "serial": None,
    "parse_error": None,
    "self_issued": False,
    "subject_name_sha1": None,
    "key_sha1": None,
    "key_sha256": None,
    "issuer_name_sha1": None,
    "issuer_name_sha256": None,
    "issuer_key_sha1": None,
    "issuer_key_sha256": None,
}


def parse_fields(der: bytes) -> tuple[dict[str, Any], x509.Certificate | None]:
    """Return :func:`cert_fields` and the parsed certificate (None: it does not parse)."""
    fields, cert, _ = parse_row(der)
    return fields, cert


#: what :func:`parse_row` returns: the parsed columns, the certificate, its DER layout
ParsedRow = tuple[dict[str, Any], x509.Certificate | None, Layout | None]


def parse_row(der: bytes) -> ParsedRow:
    """Return :func:`parse_fields` and the certificate's DER layout when its names were read
    from the DER (None: through cryptography's objects, or no certificate)."""
    try:
        cert = load_certificate(der)  # the parse boundary's loader: ParseError, nothing else
        found = _fields_from_der(cert, der)
        if found is not None:
            return found[0], cert, found[1]
        return fields_via_cryptography(cert), cert, None
    except Exception as exc:  # the ledger may hold bytes that are no certificate
        return dict(_EMPTY, parse_error=f"{type(exc).__name__}: {exc}"[:500]), None, None


def _fields_from_der(cert: x509.Certificate, der: bytes) -> tuple[dict[str, Any], Layout] | None:
    """Return :func:`cert_fields` with the names read from the DER (the policy's fast
    reader, :func:`dpki.pki.facts.read_names`) and the layout, or None for names only
    cryptography reads."""
    try:
        layout = read_layout(der)
        subject_dn, orgs, cns, issuer_dn, self_issued = read_names(layout)
    except (Unsupported, IndexError, ValueError):
        return None
    names = layout.subject, layout.issuer
    return _fields(cert, subject_dn, orgs, cns, issuer_dn, self_issued, names), layout


def fields_via_cryptography(cert: x509.Certificate) -> dict[str, Any]:
    """Return :func:`cert_fields` read through cryptography's objects (the reference)."""
    subject = cert.subject
    subject_dn, orgs, cns = name_facts(subject)
    self_issued = cert.issuer == subject
    issuer_dn = subject_dn if self_issued else dn(cert.issuer)
    return _fields(cert, subject_dn, orgs, cns, issuer_dn, self_issued, None)


def _fields(
    cert: x509.Certificate,
    subject_dn: str,
    orgs: tuple[str, ...],
    cns: tuple[str, ...],
    issuer_dn: str,
    self_issued: bool,
    names: tuple[bytes, bytes] | None,
) -> dict[str, Any]:
    out = dict(
        _EMPTY,
        subject=subject_dn,
        organization=orgs[0] if orgs else None,
        common_name=cns[0] if cns else None,
        issuer=issuer_dn,
        serial=format(cert.serial_number, "x"),
        self_issued=self_issued,
        **ocsp_hashes(cert, names),
    )
    if self_issued:
        out["issuer_key_sha1"] = out["key_sha1"]
        out["issuer_key_sha256"] = out["key_sha256"]
    return out


def args_json(args: dict[str, Any]) -> str:
    """Return event arguments as JSON, keys sorted (bytes as 0x hex, the DER left out).

    msgspec writes it (compact, UTF-8): a catch-up writes one for every event, and the json
    module took a tenth of the indexer's time doing so."""
    return msgspec.json.encode(
        {
            k: ("0x" + v.hex() if isinstance(v, bytes | bytearray) else v)
            for k, v in args.items()
            if k != "der"
        },
        order="sorted",
    ).decode()


def args_from_json(text: str) -> dict[str, Any]:
    """Return event arguments from :func:`args_json` (32-byte values as bytes again)."""
    out: dict[str, Any] = {}
    for k, v in json.loads(text).items():
        if isinstance(v, str) and v.startswith("0x") and len(v) == 66:
            out[k] = bytes.fromhex(v[2:])
        else:
            out[k] = v
    return out


def event_row(event: Event) -> dict[str, Any]:
    """Return the ``events`` row of an event (its arguments as JSON, the DER left out)."""
    cid = event.args.get("certId")
    return {
        "block_number": event.block_number,
        "log_index": event.log_index,
        "block_hash": hex_id(event.block_hash),
        "tx_hash": hex_id(event.tx_hash),
        "name": event.name,
        "cert_id": hex_id(cid) if isinstance(cid, bytes | bytearray) else None,
        "args": args_json(event.args),
    }


def project_range(
    rows: dict[str, CertRow],
    events: Sequence[Event],
    timestamps: dict[int, int],
    revision: int,
    parsed: Mapping[str, ParsedRow] | None = None,
) -> Batch:
    """Apply one block range's events (in order) to ``rows``; return the rows they add.

    ``rows`` holds the current rows of every certificate the events name (new ones are
    added to it); ``timestamps`` the time of every block the events are in; ``parsed``
    what :func:`parse_row` made of the range's new certificates (by id), when at hand.
    """
    batch = Batch()
    for event in events:
        row = event_row(event)
        batch.events.append(row)
        if event.name in CERT_EVENTS:
            apply_cert_event(
                rows, event, timestamps[event.block_number], revision, batch, row, parsed
            )
        elif event.name in MEMBER_EVENTS:
            batch.members_changed = True
    return batch


def member_rows(
    events: Iterable[tuple[str, dict[str, Any], int]],
) -> tuple[list[dict[str, Any]], int | None]:
    """Return the ``members`` rows and the threshold that member events make, in order.

    Each event is (name, arguments, block number).
    """
    members: dict[str, dict[str, Any]] = {}
    threshold: int | None = None
    for name, args, block_number in events:
        if name == "MemberAdded":
            members[args["account"]] = {
                "address": args["account"],
                "organization": args["organization"],
                "roles": args["roles"],
                "idx": args["index"],
                "active": True,
                "since_block": block_number,
            }
        elif name == "MemberRemoved" and args["account"] in members:
            members[args["account"]]["active"] = False
        elif name == "RolesChanged" and args["account"] in members:
            members[args["account"]]["roles"] = args["roles"]
        elif name == "ThresholdChanged":
            threshold = args["threshold"]
        elif name == "MemberKeyRotated" and args["previousAccount"] in members:
            old = members[args["previousAccount"]]
            members[args["account"]] = dict(
                old, address=args["account"], active=True, since_block=block_number
            )
            old["active"] = False
    return list(members.values()), threshold


def authorization_rows(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the issuer authorisations in force after ``IssuerAuthorizationChanged`` events
    (their arguments, in ledger order): issuer, organization hash, member, who granted it."""
    current: dict[tuple[str, str], dict[str, Any]] = {}
    for args in events:
        key = (hex_id(args["caCertId"]), hex_id(args["orgHash"]))
        if args["authorized"]:
            current[key] = {
                "issuer": key[0],
                "org_hash": key[1],
                "member": args["member"],
                "granted_by": args["actor"],
            }
        else:
            current.pop(key, None)
    return list(current.values())


def apply_cert_event(
    rows: dict[str, CertRow],
    event: Event,
    timestamp: int,
    revision: int,
    batch: Batch,
    stored: dict[str, Any] | None = None,
    parsed: Mapping[str, ParsedRow] | None = None,
) -> None:
    """Apply one certificate event to the in-memory rows, adding vote and history rows
    (``stored``: the event's :func:`event_row`, when at hand: its hex is not made again;
    ``parsed``: the certificate's :func:`parse_row`, if in it)."""
    a = event.args
    if stored is None:
        stored = {"cert_id": hex_id(a["certId"]), "tx_hash": hex_id(event.tx_hash)}
        stored["block_hash"] = hex_id(event.block_hash)
    cid = stored["cert_id"]
    common = {
        "block_number": event.block_number,
        "log_index": event.log_index,
        "tx_hash": stored["tx_hash"],
        "cert_id": cid,
        "timestamp": timestamp,
    }
    if event.name == "CertificateSubmitted":
        der = bytes(a["der"])
        replaces = hex_id(a["replaces"])
        zero = "0" * 64
        values = {
            "id": cid,
            "der": der,
            "key_hash": hex_id(a["keyHash"]),
            "org_hash": hex_id(a["orgHash"]),
            "submitter": a["submitter"],
            "not_before": int(a["notBefore"]),
            "not_after": int(a["notAfter"]),
            "replaces": None if replaces == zero else replaces,
            "replaced_by": None,
            "status": int(Status.PENDING),
            "reason": 0,
            "endorsements": 0,
            "rejections": 0,
            "submitted_block": event.block_number,
            "submitted_at": timestamp,
            "updated_block": event.block_number,
            "updated_at": timestamp,
            "revision": revision,
        }
        ready = parsed.get(cid) if parsed is not None else None
        fields, certificate, layout = ready if ready is not None else parse_row(der)
        values.update(fields)
        earlier = rows.get(cid)
        if earlier is not None:  # registered again after a rejection or withdrawal
            values = {**earlier.values, **{k: values[k] for k in MUTABLE if k in values}}
        rows[cid] = CertRow(
            values,
            new=earlier is None or earlier.new,
            dirty=True,
            certificate=certificate,
            layout=layout,
        )
        batch.history.append(
            dict(
                common,
                block_hash=stored["block_hash"],
                event="submitted",
                actor=a["submitter"],
                previous=0,
                status=int(Status.PENDING),
                reason=0,
            )
        )
        return
    row = rows.get(cid)
    if row is None:  # an event for a certificate the index never saw submitted: keep the event
        return
    v = row.values
    previous = v["status"]
    if event.name == "CertificateEndorsed":
        v["endorsements"] = int(a["endorsements"])
        status, reason, actor = int(a["status"]), v["reason"], a["validator"]
        batch.votes.append(dict(common, validator=actor, kind="endorsed", reason_code=None))
        name = "endorsed"
    elif event.name == "CertificateRejected":
        v["rejections"] = int(a["rejections"])
        status, actor = int(a["status"]), a["validator"]
        reason = int(a["reasonCode"]) if status == Status.REJECTED else v["reason"]
        batch.votes.append(
            dict(common, validator=actor, kind="rejected", reason_code=int(a["reasonCode"]))
        )
        name = "rejected"
    else:
        status, reason, actor = int(a["status"]), int(a["reason"]), a["actor"]
        name = Status(status).label
        if status == Status.SUPERSEDED:  # as the contract does: in the renewal's activation
            v["replaced_by"] = batch.activated.get((bytes(event.tx_hash), cid))
        if status == Status.ACTIVE and previous == Status.SUSPENDED:
            name = "resumed"
            reason = 0
    if status == Status.ACTIVE and previous == Status.PENDING and v.get("replaces"):
        batch.activated[(bytes(event.tx_hash), v["replaces"])] = cid
    v["status"], v["reason"] = status, reason
    v["revision"] = revision
    row.dirty = True
    if status != previous:
        v["updated_block"], v["updated_at"] = event.block_number, timestamp
        batch.history.append(
            dict(
                common,
                block_hash=stored["block_hash"],
                event=name,
                actor=actor,
                previous=previous,
                status=status,
                reason=reason,
            )
        )
