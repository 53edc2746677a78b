"""One table per code set: every surface shows the same label for every code.

The surfaces are the policy (violation numbers), the validator (its reject codes), the
command line (``dpki status --json``), the inquiry node's JSON (list, record and ``/status``),
its web page and its OCSP responder (revocationReason).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from dpki.chain.registry import CertificateStatus
from dpki.commands.lifecycle import status_json as cli_status_json
from dpki.inquiry.app import status_json as node_status_json
from dpki.inquiry.ocsp import CertState, StatusIndex, revocation_reason
from dpki.inquiry.store import Store
from dpki.inquiry.views import certificate_json, summary_json
from dpki.inquiry.web import detail_page
from dpki.pki.codes import (
    CRL_REASONS,
    REJECTION_REASONS,
    REVOCATION_REASONS,
    Status,
    reason_label,
    rejection_name,
)
from dpki.pki.policy import Violation
from dpki.validator import SUBMISSION_MISMATCH

CID = "ab" * 32
NOW = 1_800_000_000

# every (status, reason) a ledger record can hold, plus numbers no table names
CASES = (
    [(Status.REJECTED, n) for n in [0, *REJECTION_REASONS.values(), 99]]
    + [(s, n) for s in (Status.REVOKED,) for n in [*CRL_REASONS, 7, 99]]
    + [(Status.SUSPENDED, 6), (Status.SUPERSEDED, 4), (Status.ACTIVE, 0), (Status.PENDING, 0)]
)


def _case_id(case: tuple[Status, int]) -> str:
    return f"{case[0].label}-{case[1]}"


class _LedgerReads:
    """The three reads ``dpki status`` makes besides ``statusOf``, answered from memory."""

    def endorsers_of(self, cert_id: bytes) -> list[str]:
        return []

    def block_timestamp(self) -> int:
        return NOW

    def replaced_by(self, cert_id: bytes) -> bytes | None:
        return None


def _row(status: Status, reason: int) -> dict[str, Any]:
    return {
        "id": CID,
        "status": int(status),
        "reason": reason,
        "not_before": NOW - 10,
        "not_after": NOW + 10,
        "updated_at": NOW,
        "updated_block": 7,
        "subject": "CN=x",
        "organization": "Org",
        "common_name": "x",
        "serial": "01",
        "key_hash": "00" * 32,
        "submitter": "0x" + "11" * 20,
        "endorsements": 0,
        "rejections": 0,
        "issuer": "CN=x",
        "self_issued": True,
        "parse_error": None,
        "replaces": None,
        "replaced_by": None,
        "submitted_block": 1,
        "submitted_at": NOW - 20,
        "der": b"\x30\x00",
    }


@pytest.fixture(scope="module")
def status_index(tmp_path_factory: pytest.TempPathFactory) -> StatusIndex:
    db = Path(tmp_path_factory.mktemp("codes")) / "index.db"
    return StatusIndex(Store(f"sqlite:///{db}"))


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_every_surface_shows_the_same_label(
    case: tuple[Status, int], status_index: StatusIndex
) -> None:
    status, reason = case
    label = reason_label(status, reason)

    record = CertificateStatus(
        bytes.fromhex(CID), status, None, NOW - 10, NOW + 10, NOW, 0, 0, reason, None
    )
    cli = cli_status_json(_LedgerReads(), record, {})  # type: ignore[arg-type]
    assert (cli["status"], cli["reason"]) == (status.label, label)

    row = _row(status, reason)
    assert summary_json(row, {}, NOW)["reason"] == label
    vote = {"kind": "rejected", "validator": "0x" + "22" * 20, "reason_code": reason}
    vote |= {"block_number": 3, "timestamp": NOW}
    event = {"event": "CertificateStatusChanged", "status": int(status), "previous": 1}
    event |= {"reason": reason, "actor": "0x" + "22" * 20, "block_number": 4}
    event |= {"block_hash": "cd" * 32, "log_index": 0, "tx_hash": "ef" * 32, "timestamp": NOW}
    full = certificate_json(row, [vote] if status is Status.REJECTED else [], [event], {})
    assert full["reason"] == label
    assert full["history"][0]["reason"] == label
    if status is Status.REJECTED:
        assert full["rejecters"][0]["reason"] == label

    page = detail_page(full)
    if label is not None:
        assert f"<tr><th>reason</th><td>{label}</td></tr>" in page
        assert f"<td>{label}</td>" in page  # the history row

    status_index.by_id[CID] = CertState(CID, 1, int(status), reason, NOW, NOW - 10, NOW + 10)
    assert node_status_json(status_index, CID)["reason"] == label  # type: ignore[index]

    flag = revocation_reason(status, reason)
    if status in (Status.REVOKED, Status.SUSPENDED, Status.SUPERSEDED) and label in {
        f.value for f in x509.ReasonFlags
    }:
        # OCSP leaves out "unspecified" (RFC 5280 section 5.3.1); every other name agrees
        assert (flag.value if flag else "unspecified") == label
    else:
        assert flag is None


def test_rejection_codes_agree_between_policy_validator_and_labels() -> None:
    for name, number in REJECTION_REASONS.items():
        assert rejection_name(number) == name == reason_label(Status.REJECTED, number)
        if name not in ("MALFORMED", "SUBMISSION_MISMATCH"):
            assert Violation(name, "x").number == number
    assert rejection_name(SUBMISSION_MISMATCH) == "SUBMISSION_MISMATCH"


def test_revocation_reasons_are_the_crl_reasons_a_revoke_may_give() -> None:
    assert {CRL_REASONS[n]: n for n in (0, 1, 2, 3, 4, 5, 9, 10)} == REVOCATION_REASONS
    for name in CRL_REASONS.values():
        x509.ReasonFlags(name)  # every name is an RFC 5280 name cryptography knows
