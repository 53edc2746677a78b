"""The event-to-row projection, without a database: events in, rows out."""

from __future__ import annotations

import hashlib
from typing import Any

from dpki.chain.abi import Event
from dpki.dev.devices import make_device
from dpki.inquiry.projection import (
    CertRow,
    args_from_json,
    args_json,
    authorization_rows,
    member_rows,
    project_range,
)
from dpki.pki.codes import Status

VENDOR = "0x" + "11" * 20
V1 = "0x" + "22" * 20
V2 = "0x" + "33" * 20
ZERO = bytes(32)
T0 = 1_800_000_000


def _event(name: str, block: int, log: int, tx: int = 0, **args: Any) -> Event:
    return Event(name, args, block, bytes([block]) * 32, bytes([tx or block]) * 32, log)


def _submitted(der: bytes, block: int, replaces: bytes = ZERO) -> Event:
    return _event(
        "CertificateSubmitted",
        block,
        0,
        certId=hashlib.sha256(der).digest(),
        der=der,
        keyHash=b"\x01" * 32,
        orgHash=b"\x02" * 32,
        submitter=VENDOR,
        notBefore=T0,
        notAfter=T0 + 1000,
        replaces=replaces,
    )


def _endorsed(cid: bytes, block: int, who: str, count: int, status: Status, tx: int = 0) -> Event:
    return _event(
        "CertificateEndorsed",
        block,
        1,
        tx,
        certId=cid,
        validator=who,
        endorsements=count,
        status=int(status),
    )


def _times(*blocks: int) -> dict[int, int]:
    return {b: T0 + b for b in blocks}


def test_a_submission_makes_a_pending_row_with_parsed_names_and_a_history_row() -> None:
    device = make_device("Vendor A", "SN1")
    rows: dict[str, CertRow] = {}
    batch = project_range(rows, [_submitted(device.der, 5)], _times(5), revision=1)
    cid = hashlib.sha256(device.der).hexdigest()
    row = rows[cid]
    assert row.new and row.dirty
    v = row.values
    assert (v["status"], v["reason"], v["submitter"]) == (int(Status.PENDING), 0, VENDOR)
    assert (v["organization"], v["common_name"]) == ("Vendor A", "device-SN1")
    assert v["parse_error"] is None
    assert (v["submitted_block"], v["submitted_at"], v["revision"]) == (5, T0 + 5, 1)
    assert v["issuer_name_sha1"] and v["key_sha1"] is not None
    assert [h["event"] for h in batch.history] == ["submitted"]
    assert [e["name"] for e in batch.events] == ["CertificateSubmitted"]
    assert "der" not in args_from_json(batch.events[0]["args"])  # the DER is not kept twice
    assert batch.votes == [] and not batch.members_changed


def test_bytes_that_are_no_certificate_make_a_row_with_a_parse_error() -> None:
    rows: dict[str, CertRow] = {}
    project_range(rows, [_submitted(b"\x30\x03\x02\x01\x01", 5)], _times(5), revision=1)
    (row,) = rows.values()
    assert row.values["parse_error"] and row.values["subject"] is None


def test_endorsements_activate_and_each_is_a_vote() -> None:
    der = make_device("Vendor A", "SN2").der
    cid = hashlib.sha256(der).digest()
    rows: dict[str, CertRow] = {}
    events = [
        _submitted(der, 5),
        _endorsed(cid, 6, V1, 1, Status.PENDING),
        _endorsed(cid, 7, V2, 2, Status.ACTIVE),
    ]
    batch = project_range(rows, events, _times(5, 6, 7), revision=3)
    v = rows[cid.hex()].values
    assert (v["status"], v["endorsements"], v["updated_block"]) == (int(Status.ACTIVE), 2, 7)
    assert [(x["validator"], x["kind"]) for x in batch.votes] == [
        (V1, "endorsed"),
        (V2, "endorsed"),
    ]
    # the first endorsement changed no status: no history row for it
    assert [h["event"] for h in batch.history] == ["submitted", "endorsed"]


def test_a_rejection_keeps_its_reason_code() -> None:
    der = make_device("Vendor A", "SN3").der
    cid = hashlib.sha256(der).digest()
    rejected = _event(
        "CertificateRejected",
        6,
        1,
        certId=cid,
        validator=V1,
        rejections=1,
        status=int(Status.REJECTED),
        reasonCode=16,
    )
    rows: dict[str, CertRow] = {}
    batch = project_range(rows, [_submitted(der, 5), rejected], _times(5, 6), revision=1)
    v = rows[cid.hex()].values
    assert (v["status"], v["reason"], v["rejections"]) == (int(Status.REJECTED), 16, 1)
    assert batch.votes[0]["reason_code"] == 16
    assert batch.history[-1]["reason"] == 16


def test_suspend_then_resume_is_a_resumed_row_without_reason() -> None:
    der = make_device("Vendor A", "SN4").der
    cid = hashlib.sha256(der).digest()

    def changed(block: int, previous: Status, status: Status, reason: int) -> Event:
        return _event(
            "CertificateStatusChanged",
            block,
            0,
            certId=cid,
            actor=VENDOR,
            previous=int(previous),
            status=int(status),
            reason=reason,
        )

    events = [
        _submitted(der, 5),
        _endorsed(cid, 6, V1, 1, Status.ACTIVE),
        changed(7, Status.ACTIVE, Status.SUSPENDED, 6),
        changed(8, Status.SUSPENDED, Status.ACTIVE, 0),
    ]
    rows: dict[str, CertRow] = {}
    batch = project_range(rows, events, _times(5, 6, 7, 8), revision=1)
    assert [(h["event"], h["reason"]) for h in batch.history] == [
        ("submitted", 0),
        ("endorsed", 0),
        ("suspended", 6),
        ("resumed", 0),
    ]
    assert rows[cid.hex()].values["status"] == int(Status.ACTIVE)


def test_a_renewal_that_activates_supersedes_what_it_renews_in_the_same_transaction() -> None:
    old_der = make_device("Vendor A", "SN5").der
    new_der = make_device("Vendor A", "SN5b").der
    old, new = hashlib.sha256(old_der).digest(), hashlib.sha256(new_der).digest()
    superseded = _event(
        "CertificateStatusChanged",
        8,
        2,
        tx=99,
        certId=old,
        actor=V1,
        previous=int(Status.ACTIVE),
        status=int(Status.SUPERSEDED),
        reason=4,
    )
    events = [
        _submitted(old_der, 5),
        _endorsed(old, 6, V1, 1, Status.ACTIVE),
        _submitted(new_der, 7, replaces=old),
        _endorsed(new, 8, V1, 1, Status.ACTIVE, tx=99),
        superseded,
    ]
    rows: dict[str, CertRow] = {}
    project_range(rows, events, _times(5, 6, 7, 8), revision=1)
    assert rows[new.hex()].values["replaces"] == old.hex()
    assert rows[old.hex()].values["replaced_by"] == new.hex()
    assert rows[old.hex()].values["status"] == int(Status.SUPERSEDED)


def test_an_event_for_a_certificate_never_submitted_is_kept_but_makes_no_row() -> None:
    stray = _endorsed(b"\x09" * 32, 6, V1, 1, Status.ACTIVE)
    rows: dict[str, CertRow] = {}
    batch = project_range(rows, [stray], _times(6), revision=1)
    assert rows == {} and batch.votes == [] and len(batch.events) == 1


def test_member_events_make_member_rows_and_the_threshold() -> None:
    added = {"account": V1, "organization": "Operator B", "roles": 3, "index": 0}
    events: list[tuple[str, dict[str, Any], int]] = [
        ("MemberAdded", added, 1),
        ("MemberAdded", dict(added, account=V2, organization="CA C", index=1), 1),
        ("ThresholdChanged", {"threshold": 2}, 2),
        ("RolesChanged", {"account": V1, "roles": 1}, 3),
        ("MemberRemoved", {"account": V2}, 4),
    ]
    members, threshold = member_rows(events)
    assert threshold == 2
    assert [(m["address"], m["roles"], m["active"]) for m in members] == [
        (V1, 1, True),
        (V2, 3, False),
    ]
    batch = project_range({}, [_event("ThresholdChanged", 2, 0, threshold=2)], {}, 1)
    assert batch.members_changed


def test_event_arguments_survive_json() -> None:
    args = {"certId": b"\x07" * 32, "validator": V1, "status": 2, "der": b"\x30\x00"}
    assert args_from_json(args_json(args)) == {k: v for k, v in args.items() if k != "der"}


def test_a_key_rotation_moves_the_member_to_its_new_address() -> None:
    old, new = "0x" + "11" * 20, "0x" + "22" * 20
    added = {"account": old, "organization": "Vendor A", "roles": 3, "index": 0}
    rows, _ = member_rows(
        [
            ("MemberAdded", added, 5),
            ("MemberKeyRotated", {"previousAccount": old, "account": new, "index": 0}, 9),
        ]
    )
    by_address = {r["address"]: r for r in rows}
    assert by_address[old]["active"] is False
    assert by_address[new] == {
        "address": new,
        "organization": "Vendor A",
        "roles": 3,
        "idx": 0,
        "active": True,
        "since_block": 9,
    }


def test_authorisations_fold_grants_and_withdrawals() -> None:
    ca, org = b"\x01" * 32, b"\x02" * 32
    grant = {"caCertId": ca, "orgHash": org, "member": "0xA", "actor": "0xB", "authorized": True}
    assert authorization_rows([grant]) == [
        {"issuer": ca.hex(), "org_hash": org.hex(), "member": "0xA", "granted_by": "0xB"}
    ]
    assert authorization_rows([grant, dict(grant, authorized=False)]) == []
