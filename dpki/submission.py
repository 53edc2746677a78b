"""Submission node: turn certificates into ledger submissions and send them in batches."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from dpki.chain.registry import PendingTx, Registry, Status, Submission
from dpki.errors import RpcUnavailable
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
    """What happened to one certificate."""

    cert_id: bytes
    submitted: bool
    status: Status
    tx_hash: bytes | None = None
    block: int | None = None
    #: how many times its transaction had to be sent again (a node lost it)
    resent: int = 0


def submit_all(
    registry: Registry,
    account: LocalAccount,
    submissions: Sequence[Submission],
    *,
    batch_size: int = 50,
    progress: Callable[[int], None] | None = None,
    confirmations: int = 0,
    timeout: float = 300.0,
) -> list[SubmitOutcome]:
    """Submit certificates not yet on the ledger, ``batch_size`` per transaction.

    Idempotent: a certificate already on the ledger is reported with its status and not
    sent again (so a run interrupted half-way can simply be repeated). Batches are pipelined:
    all are sent, then awaited until ``confirmations`` blocks deep. The node may restart
    meanwhile: sending waits for it, and a signed batch it lost is sent again byte for byte
    (its nonce lets it execute once at most).
    """
    outcomes: dict[bytes, SubmitOutcome] = {}
    fresh: list[Submission] = []
    unique = list({s.cert_id: s for s in submissions}.values())
    for s, record in zip(unique, registry.statuses([s.cert_id for s in unique]), strict=True):
        outcomes[s.cert_id] = SubmitOutcome(s.cert_id, False, record.status)
        if record.status is Status.NONE:
            fresh.append(s)
    in_flight: list[tuple[list[Submission], PendingTx]] = []
    deadline = time.monotonic() + timeout
    for start in range(0, len(fresh), batch_size):
        chunk = fresh[start : start + batch_size]
        in_flight.append((chunk, _send(registry, account, chunk, deadline)))
    receipts = registry.settle(
        [p for _, p in in_flight],
        confirmations=confirmations,
        timeout=max(1.0, deadline - time.monotonic()),
    )
    for (chunk, pending), receipt in zip(in_flight, receipts, strict=True):
        for s in chunk:
            outcomes[s.cert_id] = SubmitOutcome(
                s.cert_id,
                True,
                Status.PENDING,
                receipt.tx_hash,
                receipt.block_number,
                pending.resent,
            )
        if progress:
            progress(len(chunk))
    return [outcomes[s.cert_id] for s in submissions]


def _send(
    registry: Registry, account: LocalAccount, chunk: list[Submission], deadline: float
) -> PendingTx:
    """Sign and send one batch, waiting for a node that does not answer."""
    backoff = 0.1
    while True:
        try:
            if len(chunk) == 1:
                return registry.submit(account, chunk[0])
            return registry.submit_batch(account, chunk)
        except RpcUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(backoff)
            backoff = min(5.0, backoff * 2)
