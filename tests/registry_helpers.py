"""Helpers shared by the on-chain registry tests (test_registry.py, test_governance.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from conftest import fake_submission, rpc
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from dpki.chain.registry import (
    ROLE_SUBMITTER,
    ROLE_VALIDATOR,
    MemberSpec,
    ProposalKind,
    Receipt,
    Registry,
    Status,
    Submission,
    connect,
    proposal_id_of,
)
from dpki.errors import ContractError

BOTH = ROLE_VALIDATOR | ROLE_SUBMITTER
ZERO_ID = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20
DEPLOYER = 19  # fresh registries are deployed from accounts[19], which is never a member


@contextmanager
def refused(error: type[ContractError], **args: Any) -> Iterator[None]:
    """Expect the registry to refuse with ``error`` carrying exactly ``args``."""
    with pytest.raises(error) as info:
        yield
    assert type(info.value) is error
    assert info.value.args_by_name == args


def address(seed: int) -> str:
    """Return a deterministic checksummed address that is no dev account."""
    return to_checksum_address(keccak(text=f"dpki-test-member-{seed}")[12:])


Logged = tuple[str, dict[str, Any]]


def events(receipt: Receipt) -> list[Logged]:
    """Return a receipt's events as (name, args) pairs."""
    return [(e.name, e.args) for e in receipt.events]


def endorsed(cert_id: bytes, validator: str, endorsements: int, status: Status) -> Logged:
    """Return the expected CertificateEndorsed event."""
    args = {"certId": cert_id, "validator": validator, "endorsements": endorsements}
    return ("CertificateEndorsed", {**args, "status": status})


def rejected(
    cert_id: bytes, validator: str, reason_code: int, rejections: int, status: Status
) -> Logged:
    """Return the expected CertificateRejected event."""
    args = {"certId": cert_id, "validator": validator, "reasonCode": reason_code}
    return ("CertificateRejected", {**args, "rejections": rejections, "status": status})


def status_changed(
    cert_id: bytes, actor: str, previous: Status, status: Status, reason: int
) -> Logged:
    """Return the expected CertificateStatusChanged event."""
    args = {"certId": cert_id, "actor": actor, "previous": previous, "status": status}
    return ("CertificateStatusChanged", {**args, "reason": reason})


def chain_time(registry: Registry) -> int:
    """Return the latest block's timestamp."""
    return registry.block_timestamp()


def mine_at(url: str, timestamp: int) -> None:
    """Mine one empty block with exactly ``timestamp``."""
    rpc(url, "evm_setNextBlockTimestamp", timestamp)
    rpc(url, "evm_mine")


def advance(url: str, seconds: int) -> None:
    """Move chain time forward by ``seconds`` and mine a block."""
    rpc(url, "evm_increaseTime", seconds)
    rpc(url, "evm_mine")


def deploy(
    url: str,
    accounts: Sequence[LocalAccount],
    roster: Sequence[tuple[int, str, int]],
    threshold: int,
) -> Registry:
    """Deploy a fresh registry whose genesis is ``(account index, organization, roles)``."""
    specs = [MemberSpec(accounts[i].address, org, roles) for i, org, roles in roster]
    registry, _ = Registry.deploy(connect(url), accounts[DEPLOYER], specs, threshold)
    return registry


def with_key(submission: Submission, key_hash: bytes) -> Submission:
    """Return ``submission`` for another public key."""
    return dataclasses.replace(submission, key_hash=key_hash)


def submit_active(
    registry: Registry,
    submitter: LocalAccount,
    validators: Sequence[LocalAccount],
    seed: int,
    window: tuple[int, int] = (0, 2**39),
) -> Submission:
    """Submit a certificate from ``submitter`` and have ``validators`` endorse it."""
    submission = fake_submission(seed, window=window)
    registry.submit(submitter, submission).wait()
    for validator in validators:
        registry.endorse(validator, submission.cert_id).wait()
    return submission


def propose(
    registry: Registry, proposer: LocalAccount, kind: ProposalKind, *args: Any
) -> tuple[int, Receipt]:
    """Open a proposal; return its id and the receipt."""
    receipt = registry.propose(proposer, kind, *args).wait()
    return proposal_id_of(receipt), receipt


def pass_proposal(
    registry: Registry, voters: Sequence[LocalAccount], kind: ProposalKind, *args: Any
) -> tuple[int, Receipt]:
    """Propose with ``voters[0]``, approve with the rest; return the id and last receipt."""
    proposal_id, receipt = propose(registry, voters[0], kind, *args)
    for voter in voters[1:]:
        receipt = registry.approve(voter, proposal_id).wait()
    return proposal_id, receipt


def ledger_state(registry: Registry, cert_ids: Sequence[bytes] = ()) -> tuple[Any, ...]:
    """Return everything a refused call must leave as it was."""
    return (
        registry.block_number(),
        [registry.status_of(c) for c in cert_ids],
        registry.members(),
        registry.threshold(),
        registry.validator_count(),
        registry.proposal_count(),
    )


__all__ = [
    "BOTH",
    "DEPLOYER",
    "ROLE_SUBMITTER",
    "ROLE_VALIDATOR",
    "ZERO_ADDRESS",
    "ZERO_ID",
    "address",
    "advance",
    "chain_time",
    "deploy",
    "endorsed",
    "events",
    "ledger_state",
    "mine_at",
    "pass_proposal",
    "propose",
    "refused",
    "rejected",
    "status_changed",
    "submit_active",
    "with_key",
]
