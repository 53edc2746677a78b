"""Submission node: turn certificates into ledger submissions and send them in batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from dpki.chain.registry import PendingTx, Registry, Status, Submission
from dpki.pki.x509 import CertificateFacts, organization_hash, validity_seconds

__all__ = ["SubmitOutcome", "submission_for", "submit_all"]


def submission_for(f: CertificateFacts) -> Submission:
    """Return the submission of a certificate: DER, window, SPKI hash and organization hash."""
    not_before, not_after = validity_seconds(f)
    return Submission(
        der=f.der,
        not_before=not_before,
        not_after=not_after,
        key_hash=f.spki_sha256,
        org_hash=organization_hash(f.subject_organization),
    )


@dataclass
class SubmitOutcome:
    """What happened to one certificate.

    ``submitter`` is the member whose submission holds the id on the ledger; when it is not
    the caller, the id was taken by someone else (a copy sent first): the caller controls
    nothing about it, and validators judge that copy (a Rejected one can be sent again).
    """

    cert_id: bytes
    submitted: bool
    status: Status
    tx_hash: bytes | None = None
    block: int | None = None
    submitter: str | None = None

    def taken_by_other(self, account: str) -> bool:
        """Return True when another member's submission holds the id."""
        return self.submitter is not None and self.submitter.lower() != account.lower()


def submit_all(
    registry: Registry,
    account: LocalAccount,
    submissions: Sequence[Submission],
    *,
    batch_size: int = 50,
    progress: Callable[[int], None] | None = None,
) -> list[SubmitOutcome]:
    """Submit certificates not yet on the ledger, ``batch_size`` per transaction.

    Idempotent: a certificate already on the ledger is reported with its status and its
    submitter, and not sent again (so a run interrupted half-way can simply be repeated); a
    Rejected one (withdrawn, or a copy validators rejected) is registered again. The contract
    skips an id that another member registered meanwhile, so the outcome of each item comes
    from the events of its batch. Batches are pipelined: all are sent, then awaited.
    """
    outcomes: dict[bytes, SubmitOutcome] = {}
    fresh: list[Submission] = []
    unique = list({s.cert_id: s for s in submissions}.values())
    for s, record in zip(unique, registry.statuses([s.cert_id for s in unique]), strict=True):
        outcomes[s.cert_id] = SubmitOutcome(
            s.cert_id, False, record.status, submitter=record.submitter
        )
        if record.status in (Status.NONE, Status.REJECTED):
            fresh.append(s)
    in_flight: list[tuple[list[Submission], PendingTx]] = []
    for start in range(0, len(fresh), batch_size):
        chunk = fresh[start : start + batch_size]
        if len(chunk) == 1:
            pending = registry.submit(account, chunk[0])
        else:
            pending = registry.submit_batch(account, chunk)
        in_flight.append((chunk, pending))
    for chunk, pending in in_flight:
        receipt = pending.wait()
        registered = {
            bytes(e.args["certId"]) for e in receipt.events if e.name == "CertificateSubmitted"
        }
        taken = [s.cert_id for s in chunk if s.cert_id not in registered]
        for s in chunk:
            if s.cert_id in registered:
                outcomes[s.cert_id] = SubmitOutcome(
                    s.cert_id,
                    True,
                    Status.PENDING,
                    receipt.tx_hash,
                    receipt.block_number,
                    submitter=account.address,
                )
        for cert_id, record in zip(taken, registry.statuses(taken), strict=True):
            outcomes[cert_id] = SubmitOutcome(
                cert_id, False, record.status, submitter=record.submitter
            )
        if progress:
            progress(len(chunk))
    return [outcomes[s.cert_id] for s in submissions]
