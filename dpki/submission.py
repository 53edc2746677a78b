"""Submission node: turn certificates into ledger submissions and send them in batches."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from dpki.chain.gas import submit_batch_gas
from dpki.chain.registry import PendingTx, Registry, Status, Submission
from dpki.errors import (
    CertificateAlreadyRegistered,
    ChainError,
    NonceConflict,
    OutOfGas,
    RpcUnavailable,
)
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
    #: how many times its transaction had to be sent again (a node lost it)
    resent: int = 0
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
    attempts: int = 5,
    confirmations: int = 0,
    timeout: float = 300.0,
) -> list[SubmitOutcome]:
    """Submit certificates not yet on the ledger, ``batch_size`` per transaction.

    Idempotent: a certificate already on the ledger is reported with its status and not
    sent again (so a run interrupted half-way can simply be repeated). Batches are pipelined:
    all are sent, then awaited. A batch that fails because another process sends from the
    same account (its nonce taken, its transaction dropped) or because an item of it got
    registered meanwhile is re-read and what is still missing is sent again; an item that
    is on the ledger from this account by then (an earlier send that was mined after all)
    counts as submitted, not as a failure. A batch is sent with a computed gas bound, not
    estimated; one whose bound fell short (``OutOfGas``) is sent again the same way, estimated
    from then on. Each batch is awaited until ``confirmations``
    blocks deep; the node may restart meanwhile: sending waits for it, and a signed batch it
    lost is sent again byte for byte (its nonce lets it execute once at most). A Rejected id
    (withdrawn, or a copy validators rejected) is registered again; each outcome names the
    member whose submission holds the id, and the contract skips an id another member
    registered meanwhile (the outcome comes from the events of its batch).
    """
    outcomes: dict[bytes, SubmitOutcome] = {}
    unique = list({s.cert_id: s for s in submissions}.values())
    for s in unique:
        outcomes[s.cert_id] = SubmitOutcome(s.cert_id, False, Status.NONE)
    fresh = _not_on_ledger(registry, account, unique, outcomes)
    for attempt in range(attempts):
        failed, error = _send_batches(
            registry, account, fresh, batch_size, outcomes, progress, confirmations, timeout
        )
        if not failed:
            break
        if attempt == attempts - 1:
            raise error or NonceConflict("submission failed")
        time.sleep(0.1 * (attempt + 1))
        fresh = _not_on_ledger(registry, account, failed, outcomes, progress, retry=True)
    return [outcomes[s.cert_id] for s in submissions]


def _not_on_ledger(
    registry: Registry,
    account: LocalAccount,
    submissions: list[Submission],
    outcomes: dict[bytes, SubmitOutcome],
    progress: Callable[[int], None] | None = None,
    *,
    retry: bool = False,
) -> list[Submission]:
    """Record the outcome of submissions already on the ledger; return the others.

    On a ``retry`` an item registered from this account is one of ours that was mined
    after all: submitted, not a failure.
    """
    fresh: list[Submission] = []
    records = registry.statuses([s.cert_id for s in submissions])
    for s, record in zip(submissions, records, strict=True):
        if record.status in (Status.NONE, Status.REJECTED):
            fresh.append(s)
            continue
        ours = retry and (record.submitter or "").lower() == account.address.lower()
        outcomes[s.cert_id] = SubmitOutcome(
            s.cert_id, ours, record.status, submitter=record.submitter
        )
        if ours and progress:
            progress(1)
    return fresh


def _send_batches(
    registry: Registry,
    account: LocalAccount,
    fresh: list[Submission],
    batch_size: int,
    outcomes: dict[bytes, SubmitOutcome],
    progress: Callable[[int], None] | None,
    confirmations: int = 0,
    timeout: float = 300.0,
) -> tuple[list[Submission], ChainError | None]:
    """Send and await every batch; return the submissions of failed batches, and the error."""
    deadline = time.monotonic() + timeout
    in_flight: list[tuple[list[Submission], PendingTx]] = []
    failed: list[Submission] = []
    error: ChainError | None = None
    for start in range(0, len(fresh), batch_size):
        chunk = fresh[start : start + batch_size]
        try:
            pending = _send(registry, account, chunk, deadline)
        except _RETRIED as exc:
            failed += chunk
            error = exc
            continue
        in_flight.append((chunk, pending))
    for chunk, pending in in_flight:
        try:
            (receipt,) = registry.wait_settled(
                [pending],
                confirmations=confirmations,
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except _RETRIED as exc:
            failed += chunk
            error = exc
            continue
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
                    pending.resent,
                    submitter=account.address,
                )
        for cert_id, record in zip(taken, registry.statuses(taken), strict=True):
            outcomes[cert_id] = SubmitOutcome(
                cert_id, False, record.status, submitter=record.submitter
            )
        if progress:
            progress(len(chunk))
    return failed, error


def _send(
    registry: Registry, account: LocalAccount, chunk: list[Submission], deadline: float
) -> PendingTx:
    """Sign and send one batch, waiting for a node that does not answer."""
    backoff = 0.1
    while True:
        try:
            if len(chunk) == 1:
                return registry.submit(account, chunk[0])
            # a computed bound instead of the node's estimate (see dpki.chain.gas); one that
            # falls short raises OutOfGas when awaited and the batch is sent again, estimated
            return registry.submit_batch(account, chunk, gas=submit_batch_gas(chunk))
        except RpcUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(backoff)
            backoff = min(5.0, backoff * 2)


#: failures after which a batch is re-read and what is missing sent again
_RETRIED = (NonceConflict, CertificateAlreadyRegistered, OutOfGas)
