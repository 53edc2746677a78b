"""Issue 10: each way one member could act alone, replayed as an attack on a real anvil chain.

Three members, Vendor A (accounts[0]), Operator B (accounts[1]) and CA C (accounts[2]), all
validators and submitters, threshold 2. B is the attacker unless a test says otherwise.
Validators are the real validator nodes (``dpki.validator.Validator``) run in-process, one
step at a time. Each test is the attacker's transaction sequence, then what must not have
happened. SECURITY.md points at these tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import ORGS, fake_submission, rpc
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from registry_helpers import (
    BOTH,
    ROLE_SUBMITTER,
    deploy,
    events,
    pass_proposal,
    propose,
    refused,
    status_changed,
    submit_active,
)

from dpki import errors
from dpki.chain.abi import decode_revert, revert_data
from dpki.chain.registry import PendingTx, ProposalKind, Registry, Status, Submission
from dpki.chain.rpc import RpcFailure
from dpki.commands import check as check_module
from dpki.dev.devices import Device, make_ca, make_device
from dpki.pki.codes import REJECTION_REASONS as REASON_CODES
from dpki.pki.x509 import facts, load_certificate, organization_hash
from dpki.submission import submission_for, submit_all
from dpki.validator import Validator

VENDOR, OPERATOR, CA = ORGS
KEY_COMPROMISE = 1


# ------------------------------------------------------------------ helpers


def sub(device: Device) -> Submission:
    """Return the submission of a minted certificate."""
    return submission_for(facts(load_certificate(device.der), der=device.der))


class Nodes:
    """The members' validator nodes, stepped by hand."""

    def __init__(
        self, registry: Registry, deploy_block: int, members: list[LocalAccount], tmp: Path
    ) -> None:
        self.registry = registry
        self.nodes = {
            m.address: Validator(
                registry, m, deploy_block=deploy_block, state_path=tmp / f"{m.address}.json"
            )
            for m in members
        }

    def decide(self, *members: LocalAccount) -> None:
        """Let these members' validators decide everything submitted so far."""
        for m in members:
            node = self.nodes[m.address]
            while node.step():
                pass


@pytest.fixture
def nodes(
    registry: Registry, deploy_block: int, accounts: list[LocalAccount], tmp_path: Path
) -> Nodes:
    return Nodes(registry, deploy_block, accounts[:3], tmp_path)


def activate(registry: Registry, nodes: Nodes, owner: LocalAccount, device: Device) -> bytes:
    """Submit ``device`` as ``owner`` and let the three validators make it active."""
    s = sub(device)
    registry.submit(owner, s).wait()
    nodes.decide(*[m for m in _members(nodes)])
    assert registry.status_of(s.cert_id).status is Status.ACTIVE
    return s.cert_id


def _members(nodes: Nodes) -> list[LocalAccount]:
    return [n.account for n in nodes.nodes.values()]


def front_run(
    url: str,
    registry: Registry,
    victim: LocalAccount,
    attacker: LocalAccount,
    name: str,
    *args: Any,
    copy_data: bytes | None = None,
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Send the victim's transaction, copy its calldata from the pool and send the copy from
    ``attacker`` with a higher tip, then mine one block (the copy is ordered first).
    ``copy_data`` sends that calldata instead (part of the victim's transaction).

    Return two callables that give the victim's and the copy's outcome: the receipt, or
    the contract error raised (for the copy, the error its call raised just before the block:
    anvil keeps no history to replay it in).
    """
    rpc(url, "evm_setAutomine", False)
    try:
        victim_tx = registry.transact(victim, name, *args)
        seen: Any = rpc(url, "eth_getTransactionByHash", "0x" + victim_tx.tx_hash.hex())
        fee = int(seen["maxFeePerGas"], 16)
        if copy_data is not None:
            seen = dict(seen, input="0x" + copy_data.hex())
        copy = {
            "to": to_checksum_address(seen["to"]),
            "data": seen["input"],
            "value": 0,
            "gas": int(seen["gas"], 16),
            "nonce": int(str(rpc(url, "eth_getTransactionCount", attacker.address, "pending")), 16),
            "maxFeePerGas": 4 * fee + 10**9,
            "maxPriorityFeePerGas": 2 * fee + 10**9,
            "chainId": registry.chain_id,
            "type": 2,
        }
        probe = registry.rpc.request(
            "eth_call",
            [{"from": attacker.address, "to": copy["to"], "data": seen["input"]}, "latest"],
        )
        copy_error = (
            decode_revert(revert_data(RpcFailure(probe["error"]))) if "error" in probe else None
        )
        raw = attacker.sign_transaction(copy).raw_transaction
        copy_hash = str(rpc(url, "eth_sendRawTransaction", "0x" + raw.hex()))
        rpc(url, "evm_mine")
    finally:
        rpc(url, "evm_setAutomine", True)
    registry.resync_nonce(attacker.address)  # the copy was signed outside the client
    mined: Any = rpc(url, "eth_getTransactionReceipt", copy_hash)
    victim_receipt: Any = rpc(url, "eth_getTransactionReceipt", "0x" + victim_tx.tx_hash.hex())
    assert mined["blockNumber"] == victim_receipt["blockNumber"]
    assert int(mined["transactionIndex"], 16) < int(victim_receipt["transactionIndex"], 16)

    def copied() -> Any:
        if int(mined["status"], 16) == 1:
            return mined
        return copy_error or errors.ChainError("the copy reverted")

    return (lambda: _outcome(registry, victim_tx)), copied


def _outcome(registry: Registry, tx: PendingTx) -> Any:
    """Return the receipt, or the error: replayed on the latest state when it reverted (anvil
    runs with --prune-history and keeps no state of earlier blocks to replay in)."""
    try:
        return tx.wait()
    except errors.ContractError as exc:
        return exc
    except errors.ChainError:
        call = {"from": tx.call["from"], "to": registry.address, "data": tx.call["data"]}
        if isinstance(call["data"], bytes):
            call["data"] = "0x" + call["data"].hex()
        probe = registry.rpc.request("eth_call", [call, "latest"])
        assert "error" in probe, "reverted in its block but not on the latest state"
        return decode_revert(revert_data(RpcFailure(probe["error"])))


# ------------------------------------------------------------------ 2. take or burn


@pytest.mark.parametrize("issued", [False, True], ids=["self-signed", "issued-by-A's-CA"])
def test_2_a_copy_of_a_certificate_naming_the_victims_organization_is_refused(
    chain: str,
    registry: Registry,
    nodes: Nodes,
    a: LocalAccount,
    b: LocalAccount,
    issued: bool,
) -> None:
    """B copies A's pending submission from the pool and sends it first: the copy reverts
    (NotEntitled), A's own transaction registers the certificate, and only A controls it."""
    issuer = None
    if issued:
        issuer = make_ca(VENDOR)
        activate(registry, nodes, a, issuer)
    device = sub(make_device(VENDOR, "COPIED-1", issuer=issuer))
    victim, copy = front_run(chain, registry, a, b, "submit", device.as_tuple())
    refusal = copy()
    assert isinstance(refusal, errors.NotEntitled)
    assert refusal.args_by_name == {
        "certId": device.cert_id,
        "submitter": b.address,
        "orgHash": organization_hash(VENDOR),
    }
    assert not isinstance(victim(), errors.ContractError)
    assert registry.status_of(device.cert_id).submitter == a.address
    nodes.decide(*_members(nodes))
    assert registry.status_of(device.cert_id).status is Status.ACTIVE
    with refused(errors.NotCertificateOwner, certId=device.cert_id, account=b.address):
        registry.revoke(b, device.cert_id, KEY_COMPROMISE).wait()


def test_2_a_copy_of_a_certificate_without_organization_is_rejected_then_registered_by_its_owner(
    chain: str, registry: Registry, nodes: Nodes, a: LocalAccount, b: LocalAccount
) -> None:
    """A leaf of A's active CA that names no organization: B's copy lands first, but the
    validators reject it (B does not own the issuing CA), and A registers the same id again
    and controls it; B never had it active and cannot revoke it."""
    ca = make_ca(VENDOR)
    activate(registry, nodes, a, ca)
    device = sub(make_device(None, "COPIED-2", issuer=ca))
    victim, copy = front_run(chain, registry, a, b, "submit", device.as_tuple())
    assert not isinstance(copy(), errors.ContractError)
    taken = victim()
    assert isinstance(taken, errors.CertificateAlreadyRegistered)
    # the submission node sees who holds the id
    (outcome,) = submit_all(registry, a, [device])
    assert (outcome.submitted, outcome.submitter) == (False, b.address)
    assert outcome.taken_by_other(a.address)

    nodes.decide(*_members(nodes))
    record = registry.status_of(device.cert_id)
    assert (record.status, record.reason) == (Status.REJECTED, REASON_CODES["NOT_ENTITLED"])
    (outcome,) = submit_all(registry, a, [device])
    assert outcome.submitted and outcome.submitter == a.address
    nodes.decide(*_members(nodes))
    record = registry.status_of(device.cert_id)
    assert (record.status, record.submitter) == (Status.ACTIVE, a.address)
    with refused(errors.NotCertificateOwner, certId=device.cert_id, account=b.address):
        registry.revoke(b, device.cert_id, KEY_COMPROMISE).wait()


def test_2_a_copier_cannot_burn_the_id_it_took(
    chain: str, registry: Registry, nodes: Nodes, a: LocalAccount, b: LocalAccount
) -> None:
    """B revokes its own pending copy to burn the id: refused; withdrawing only gives the id
    back (Rejected, WITHDRAWN), and A registers it."""
    ca = make_ca(VENDOR)
    activate(registry, nodes, a, ca)
    device = sub(make_device(None, "BURNT", issuer=ca))
    victim, copy = front_run(chain, registry, a, b, "submit", device.as_tuple())
    assert not isinstance(copy(), errors.ContractError)
    assert isinstance(victim(), errors.CertificateAlreadyRegistered)
    with refused(errors.InvalidStatus, certId=device.cert_id, status=Status.PENDING):
        registry.revoke(b, device.cert_id, 0).wait()
    receipt = registry.withdraw(b, device.cert_id).wait()
    assert events(receipt) == [
        status_changed(
            device.cert_id, b.address, Status.PENDING, Status.REJECTED, REASON_CODES["WITHDRAWN"]
        )
    ]
    registry.submit(a, device).wait()
    nodes.decide(*_members(nodes))
    record = registry.status_of(device.cert_id)
    assert (record.status, record.submitter) == (Status.ACTIVE, a.address)


def test_2_one_item_taken_by_another_member_does_not_revert_a_batch(
    chain: str, registry: Registry, a: LocalAccount, b: LocalAccount
) -> None:
    ca_less = [sub(make_device(None, f"BATCH-{i}")) for i in range(3)]
    registry.submit(b, ca_less[1]).wait()  # B got one of them in first
    outcomes = submit_all(registry, a, ca_less)
    assert [(o.submitted, o.submitter) for o in outcomes] == [
        (True, a.address),
        (False, b.address),
        (True, a.address),
    ]

    # B copies one item of A's pending batch and sends it first: the batch still goes through
    racing = [sub(make_device(None, f"RACE-{i}")) for i in range(3)]
    one = registry.abi.encode_call("submit", [racing[1].as_tuple()])
    victim, copy = front_run(
        chain, registry, a, b, "submitBatch", [s.as_tuple() for s in racing], copy_data=one
    )
    assert not isinstance(copy(), errors.ContractError)
    receipt = victim()
    assert not isinstance(receipt, errors.ContractError), receipt
    assert [e.args["certId"] for e in receipt.events] == [racing[0].cert_id, racing[2].cert_id]
    assert registry.status_of(racing[1].cert_id).submitter == b.address


def test_2_a_rejected_id_can_be_registered_again_by_its_entitled_member(
    registry: Registry, nodes: Nodes, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    device = sub(make_device(VENDOR, "SECOND-CHANCE"))
    registry.submit(a, device).wait()
    registry.reject(b, device.cert_id, 3).wait()
    registry.reject(c, device.cert_id, 3).wait()
    assert registry.status_of(device.cert_id).status is Status.REJECTED
    registry.submit(a, device).wait()
    record = registry.status_of(device.cert_id)
    assert (record.status, record.endorsements, record.rejections) == (Status.PENDING, 0, 0)
    assert not registry.has_voted(device.cert_id, b.address)
    nodes.decide(*_members(nodes))
    assert registry.status_of(device.cert_id).status is Status.ACTIVE


# ------------------------------------------------------------------ 3. undo a quorum


def test_3_only_a_quorum_undoes_a_quorums_suspension(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    x = submit_active(registry, a, [b, c], seed=301).cert_id
    pass_proposal(registry, [b, c], ProposalKind.SUSPEND, x)
    assert registry.held_by_quorum(x)
    with refused(errors.HeldByQuorum, certId=x):
        registry.resume(a, x).wait()
    with refused(errors.HeldByQuorum, certId=x):
        registry.renew(a, x, fake_submission(302)).wait()
    assert registry.status_of(x).status is Status.SUSPENDED
    pass_proposal(registry, [b, c], ProposalKind.RESUME, x)
    assert registry.status_of(x).status is Status.ACTIVE
    assert not registry.held_by_quorum(x)


def test_3_a_quorum_holds_a_certificate_its_owner_suspended(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    x = submit_active(registry, a, [b, c], seed=303).cert_id
    registry.suspend(a, x).wait()
    pass_proposal(registry, [b, c], ProposalKind.SUSPEND, x)
    with refused(errors.HeldByQuorum, certId=x):
        registry.resume(a, x).wait()


def test_3_renewing_out_of_a_quorum_revocation_is_refused(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    x = submit_active(registry, a, [b, c], seed=304).cert_id
    pass_proposal(registry, [b, c], ProposalKind.REVOKE, x, KEY_COMPROMISE)
    with refused(errors.InvalidStatus, certId=x, status=Status.REVOKED):
        registry.renew(a, x, fake_submission(305)).wait()
    with refused(errors.InvalidStatus, certId=x, status=Status.REVOKED):
        registry.resume(a, x).wait()


# ------------------------------------------------------------------ 4. leave


def test_4_a_member_being_removed_cannot_get_an_impostor_active(
    chain: str,
    registry: Registry,
    nodes: Nodes,
    deploy_block: int,
    accounts: list[LocalAccount],
    a: LocalAccount,
    b: LocalAccount,
    c: LocalAccount,
    tmp_path: Path,
) -> None:
    """B submits a self-signed O=Vendor A certificate in the block of the final approval of its
    removal: the ledger refuses it at submission (judged against B's membership then)."""
    impostor = sub(make_device(VENDOR, "LEAVER"))
    proposal_id, _ = propose(registry, a, ProposalKind.REMOVE_MEMBER, b.address)
    rpc(chain, "evm_setAutomine", False)
    try:
        try:
            sneaked: Any = registry.transact(b, "submit", impostor.as_tuple())
        except errors.ContractError as exc:  # refused already when estimated
            sneaked = exc
        final = registry.transact(c, "approve", proposal_id)
        rpc(chain, "evm_mine")
    finally:
        rpc(chain, "evm_setAutomine", True)
    final.wait()
    refusal = sneaked if isinstance(sneaked, errors.ContractError) else _outcome(registry, sneaked)
    assert isinstance(refusal, errors.NotEntitled)
    assert refusal.args_by_name["submitter"] == b.address
    assert registry.status_of(impostor.cert_id).status is Status.NONE
    fresh = Nodes(registry, deploy_block, [a, c], tmp_path / "fresh")
    fresh.decide(a, c)
    assert registry.status_of(impostor.cert_id).status is Status.NONE


def test_4_a_submission_of_a_member_that_left_never_becomes_active(
    registry: Registry,
    deploy_block: int,
    a: LocalAccount,
    b: LocalAccount,
    c: LocalAccount,
    tmp_path: Path,
) -> None:
    """B's own certificate, pending when B is removed: fresh validators reject it and the
    contract refuses to activate it even if they endorsed."""
    own = sub(make_device(OPERATOR, "GONE"))
    registry.submit(b, own).wait()
    pass_proposal(registry, [a, c], ProposalKind.REMOVE_MEMBER, b.address)
    with refused(errors.SubmitterNotActive, certId=own.cert_id, submitter=b.address):
        registry.endorse(a, own.cert_id).wait()
    Nodes(registry, deploy_block, [a, c], tmp_path).decide(a, c)
    record = registry.status_of(own.cert_id)
    assert (record.status, record.reason) == (
        Status.REJECTED,
        REASON_CODES["SUBMITTER_NOT_ACTIVE"],
    )


def test_4_demoting_a_submitter_also_stops_its_pending_submissions(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    pending = fake_submission(401)
    registry.submit(b, pending).wait()
    registry.endorse(a, pending.cert_id).wait()
    pass_proposal(registry, [a, c], ProposalKind.SET_ROLES, b.address, 1)
    with refused(errors.SubmitterNotActive, certId=pending.cert_id, submitter=b.address):
        registry.endorse(c, pending.cert_id).wait()
    registry.endorse_batch(c, [pending.cert_id]).wait()  # skipped in a batch, no event
    assert registry.status_of(pending.cert_id).status is Status.PENDING
    receipt = registry.settle(a, pending.cert_id).wait()
    assert events(receipt) == [
        status_changed(
            pending.cert_id,
            a.address,
            Status.PENDING,
            Status.REJECTED,
            REASON_CODES["SUBMITTER_NOT_ACTIVE"],
        )
    ]


# ------------------------------------------------------------------ 5. own CA


def test_5_a_members_own_ca_does_not_vouch_for_another_members_organization(
    registry: Registry, nodes: Nodes, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    everyone = (a, b, c)
    for name, own_org in (("O=Operator B", OPERATOR), ("no O", None)):
        ca = make_ca(own_org) if own_org else make_ca(OPERATOR, f"CA {name}")
        ca_id = activate(registry, nodes, b, ca)
        leaf = sub(make_device(VENDOR, f"VIA-B-{len(name)}", issuer=ca))
        # B cannot register it: the ledger judges entitlement at submission
        with refused(
            errors.NotEntitled,
            certId=leaf.cert_id,
            submitter=b.address,
            orgHash=organization_hash(VENDOR),
        ):
            registry.submit(b, leaf).wait()
        # A registering it does not help B's CA either: validators reject it
        registry.submit(a, leaf).wait()
        nodes.decide(*everyone)
        record = registry.status_of(leaf.cert_id)
        assert (record.status, record.reason) == (
            Status.REJECTED,
            REASON_CODES["ISSUER_NOT_AUTHORIZED"],
        )
        assert not registry.is_issuer_authorized(ca_id, organization_hash(VENDOR))


def test_5_an_authorised_ca_vouches_and_the_authorisation_is_on_the_ledger(
    registry: Registry, nodes: Nodes, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    everyone = (a, b, c)
    ca = make_ca(OPERATOR, "B's CA for A")
    ca_id = activate(registry, nodes, b, ca)
    other = make_ca(OPERATOR, "B's other CA")
    activate(registry, nodes, b, other)
    receipt = registry.authorize_issuer(a, ca_id).wait()
    assert events(receipt) == [
        (
            "IssuerAuthorizationChanged",
            {
                "caCertId": ca_id,
                "orgHash": organization_hash(VENDOR),
                "member": a.address,
                "actor": a.address,
                "authorized": True,
            },
        )
    ]
    assert registry.is_issuer_authorized(ca_id, organization_hash(VENDOR))
    with refused(
        errors.AuthorizationUnchanged,
        caCertId=ca_id,
        orgHash=organization_hash(VENDOR),
        authorized=True,
    ):
        registry.authorize_issuer(a, ca_id).wait()
    good = sub(make_device(VENDOR, "VOUCHED", issuer=ca))
    registry.submit(b, good).wait()
    # B owns an authorised CA, so the ledger lets it submit; its other CA is not authorised
    bad = sub(make_device(VENDOR, "NOT-VOUCHED", issuer=other))
    registry.submit(b, bad).wait()
    nodes.decide(*everyone)
    assert registry.status_of(good.cert_id).status is Status.ACTIVE
    record = registry.status_of(bad.cert_id)
    assert (record.status, record.reason) == (
        Status.REJECTED,
        REASON_CODES["ISSUER_NOT_AUTHORIZED"],
    )
    # A takes it back; a quorum may grant it too
    registry.deauthorize_issuer(a, ca_id).wait()
    assert not registry.is_issuer_authorized(ca_id, organization_hash(VENDOR))
    pass_proposal(registry, [b, c], ProposalKind.AUTHORIZE_ISSUER, ca_id, a.address)
    assert registry.is_issuer_authorized(ca_id, organization_hash(VENDOR))


# ------------------------------------------------------------------ 6. votes that no longer exist


@pytest.mark.parametrize("leave", ["removed", "demoted"])
def test_6_an_endorsement_of_a_validator_that_left_does_not_count(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount, leave: str
) -> None:
    x = fake_submission(601)
    registry.submit(a, x).wait()
    registry.endorse(b, x.cert_id).wait()
    if leave == "removed":
        pass_proposal(registry, [a, c], ProposalKind.REMOVE_MEMBER, b.address)
    else:
        pass_proposal(registry, [a, c], ProposalKind.SET_ROLES, b.address, ROLE_SUBMITTER)
    receipt = registry.endorse(a, x.cert_id).wait()
    assert receipt.event("CertificateEndorsed").args["endorsements"] == 1
    assert registry.status_of(x.cert_id).status is Status.PENDING
    registry.endorse(c, x.cert_id).wait()
    assert registry.status_of(x.cert_id).status is Status.ACTIVE


def test_6_an_account_removed_and_added_again_votes_once(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    x = fake_submission(602)
    registry.submit(a, x).wait()
    registry.endorse(b, x.cert_id).wait()
    pass_proposal(registry, [a, c], ProposalKind.REMOVE_MEMBER, b.address)
    assert registry.has_voted(x.cert_id, b.address)  # its node will not vote again
    pass_proposal(registry, [a, c], ProposalKind.ADD_MEMBER, b.address, OPERATOR, BOTH)
    assert registry.member_of(b.address).index == 1  # type: ignore[union-attr]
    with refused(errors.AlreadyVoted, certId=x.cert_id, validator=b.address):
        registry.endorse(b, x.cert_id).wait()
    assert registry.status_of(x.cert_id).status is Status.PENDING


def test_6_a_stale_rejection_does_not_reject_what_current_validators_can_activate(
    chain: str, accounts: list[LocalAccount]
) -> None:
    names = ("V0", "V1", "V2", "V3", "V4")
    registry = deploy(chain, accounts, [(i, n, BOTH) for i, n in enumerate(names)], 2)
    v = accounts[:5]
    x = fake_submission(603)
    registry.submit(v[0], x).wait()
    registry.reject(v[1], x.cert_id, 3).wait()
    registry.reject(v[2], x.cert_id, 3).wait()
    for gone in (v[1], v[2]):
        pass_proposal(registry, [v[0], v[3]], ProposalKind.REMOVE_MEMBER, gone.address)
    receipt = registry.reject(v[3], x.cert_id, 3).wait()
    assert receipt.event("CertificateRejected").args["rejections"] == 1
    assert registry.status_of(x.cert_id).status is Status.PENDING
    registry.endorse(v[0], x.cert_id).wait()
    registry.endorse(v[4], x.cert_id).wait()
    assert registry.status_of(x.cert_id).status is Status.ACTIVE


def test_6_the_consortium_decides_a_stuck_certificate(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    stuck = fake_submission(604)
    registry.submit(a, stuck).wait()
    registry.endorse(b, stuck.cert_id).wait()
    with refused(errors.CertificateUndecided, certId=stuck.cert_id, endorsements=1, rejections=0):
        registry.settle(c, stuck.cert_id).wait()
    registry.reject(c, stuck.cert_id, 3).wait()
    assert registry.status_of(stuck.cert_id).status is Status.PENDING
    # a's validator leaves: every current validator voted, nothing would ever decide it
    pass_proposal(registry, [b, c], ProposalKind.SET_ROLES, a.address, ROLE_SUBMITTER)
    receipt = registry.settle(b, stuck.cert_id).wait()
    assert events(receipt) == [
        status_changed(stuck.cert_id, b.address, Status.PENDING, Status.REJECTED, 3)
    ]
    # and one that current votes can activate once the threshold is lowered
    other = fake_submission(605)
    registry.submit(a, other).wait()
    registry.endorse(b, other.cert_id).wait()
    pass_proposal(registry, [b, c], ProposalKind.SET_THRESHOLD, 1)
    registry.settle(c, other.cert_id).wait()
    assert registry.status_of(other.cert_id).status is Status.ACTIVE


# ------------------------------------------------------------------ 7. compromised keys


def test_7_a_key_revoked_for_key_compromise_is_refused_in_later_certificates(
    registry: Registry, nodes: Nodes, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    everyone = (a, b, c)
    d1 = make_device(VENDOR, "D1")
    d1_id = activate(registry, nodes, a, d1)
    pass_proposal(registry, [b, c], ProposalKind.REVOKE, d1_id, KEY_COMPROMISE)
    d2 = sub(make_device(VENDOR, "D2", key=d1.key))
    registry.submit(a, d2).wait()
    nodes.decide(*everyone)  # validators list the key, then decide d2
    assert registry.compromised_key(d2.key_hash) == d1_id
    record = registry.status_of(d2.cert_id)
    assert (record.status, record.reason) == (Status.REJECTED, REASON_CODES["KEY_COMPROMISED"])


def test_7_dpki_check_refuses_a_compromised_key(
    registry: Registry,
    nodes: Nodes,
    a: LocalAccount,
    b: LocalAccount,
    c: LocalAccount,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d1 = make_device(VENDOR, "D1-CHECK")
    d1_id = activate(registry, nodes, a, d1)
    d2 = tmp_path / "d2.pem"
    d2.write_bytes(make_device(VENDOR, "D2-CHECK", key=d1.key).pem)
    monkeypatch.setattr(check_module, "_ledger_lookup", lambda: (None, registry, None))
    before = CliRunner().invoke(check_module.check, [str(d2), "--org", VENDOR, "--json"])
    assert before.exit_code == 0, before.output
    registry.revoke(a, d1_id, KEY_COMPROMISE).wait()
    registry.report_key_compromise(c, d1.der).wait()
    after = CliRunner().invoke(check_module.check, [str(d2), "--org", VENDOR, "--json"])
    assert after.exit_code == 1
    (entry,) = json.loads(after.output)["certificates"]
    assert [v["code"] for v in entry["violations"]] == ["KEY_COMPROMISED"]


def test_7_only_a_certificate_revoked_for_key_compromise_lists_its_key(
    registry: Registry, nodes: Nodes, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    d = make_device(VENDOR, "D3")
    d_id = activate(registry, nodes, a, d)
    with refused(errors.NotRevokedForKeyCompromise, certId=d_id):
        registry.report_key_compromise(b, d.der).wait()
    registry.revoke(a, d_id, KEY_COMPROMISE).wait()
    receipt = registry.report_key_compromise(b, d.der).wait()
    key = sub(d).key_hash
    assert events(receipt) == [
        ("KeyCompromised", {"keyHash": key, "certId": d_id, "actor": b.address})
    ]
    assert events(registry.report_key_compromise(c, d.der).wait()) == []  # listed once


# ------------------------------------------------------------------ 8. look-alike organizations


@pytest.mark.parametrize(
    ("name", "offset"),
    [
        pytest.param("Vendor A ", 8, id="trailing-space"),
        pytest.param(" Vendor A", 0, id="leading-space"),
        pytest.param("Vendor  A", 6, id="double-space"),
        pytest.param("Vendor\u00a0A", 6, id="no-break-space"),
        pytest.param("Vendor\u3000A", 6, id="ideographic-space"),
        pytest.param("Vendor A\u200b", 8, id="zero-width-space"),
        pytest.param("Vendor\tA", 6, id="tab"),
        pytest.param("Socie\u0301te\u0301 Ge\u0301ne\u0301rale", 5, id="NFD"),
    ],
)
def test_8_a_look_alike_organization_cannot_join(
    registry: Registry, a: LocalAccount, accounts: list[LocalAccount], name: str, offset: int
) -> None:
    with refused(errors.OrganizationNotCanonical, organization=name, offset=offset):
        propose(registry, a, ProposalKind.ADD_MEMBER, accounts[5].address, name, BOTH)


def test_8_the_canonical_name_is_unique(
    registry: Registry, a: LocalAccount, b: LocalAccount, accounts: list[LocalAccount]
) -> None:
    pass_proposal(
        registry, [a, b], ProposalKind.ADD_MEMBER, accounts[5].address, "Société Générale", BOTH
    )
    with refused(errors.OrganizationTaken, organization="Société Générale"):
        propose(registry, a, ProposalKind.ADD_MEMBER, accounts[6].address, "Société Générale", BOTH)
    assert registry.member_by_organization("Société Générale") == accounts[5].address


# ------------------------------------------------------------------ 10. low


def test_10_latest_for_key_is_not_repointed_by_another_member(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    mine = submit_active(registry, a, [b, c], seed=1001)
    forged = fake_submission(1002)
    registry.submit(b, Submission(forged.der, 0, 2**39, mine.key_hash, bytes(32))).wait()
    assert registry.latest_for_key(mine.key_hash) == mine.cert_id


def test_10_key_rotation_keeps_the_index_and_the_certificates(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount, accounts: list[Any]
) -> None:
    x = submit_active(registry, a, [b, c], seed=1003).cert_id
    pending = fake_submission(1004)
    registry.submit(a, pending).wait()
    registry.endorse(b, pending.cert_id).wait()
    new_b = accounts[7]
    receipt = registry.rotate_key(b, new_b.address).wait()
    assert events(receipt) == [
        ("MemberKeyRotated", {"previousAccount": b.address, "account": new_b.address, "index": 1})
    ]
    assert registry.member_of(new_b.address).index == 1  # type: ignore[union-attr]
    assert registry.member_of(b.address) is None
    with refused(errors.AlreadyVoted, certId=pending.cert_id, validator=new_b.address):
        registry.endorse(new_b, pending.cert_id).wait()
    with refused(errors.AccountRetired, account=b.address):
        propose(registry, a, ProposalKind.ADD_MEMBER, b.address, "Old B", BOTH)
    registry.suspend(a, x).wait()  # A's certificates are untouched
    assert len(registry.members()) == 3


def test_10_proposals_expire_and_a_removed_proposer_cannot_cancel(
    chain: str, registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    from registry_helpers import advance

    proposal_id, _ = propose(registry, b, ProposalKind.SET_THRESHOLD, 3)
    deadline = registry.proposal(proposal_id).deadline
    advance(chain, 7 * 24 * 3600 + 1)
    with refused(errors.ProposalExpired, proposalId=proposal_id, deadline=deadline):
        registry.approve(a, proposal_id).wait()
    second, _ = propose(registry, b, ProposalKind.SET_THRESHOLD, 3)
    pass_proposal(registry, [a, c], ProposalKind.REMOVE_MEMBER, b.address)
    with refused(errors.NotAMember, account=b.address):
        registry.cancel(b, second)


def test_10_a_demoted_validator_no_longer_counts_as_approving(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    proposal_id, _ = propose(registry, b, ProposalKind.SET_THRESHOLD, 3)
    pass_proposal(registry, [a, c], ProposalKind.SET_ROLES, b.address, ROLE_SUBMITTER)
    assert not registry.has_approved(proposal_id, b.address)
    assert registry.proposal(proposal_id).approvals == 0


def test_10_a_member_demoted_to_validator_only_no_longer_acts_alone_on_its_certificates(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    x = submit_active(registry, a, [b, c], seed=1005).cert_id
    pass_proposal(registry, [b, c], ProposalKind.SET_ROLES, a.address, 1)
    with refused(errors.NotASubmitter, account=a.address):
        registry.revoke(a, x, 1).wait()
    with refused(errors.NotASubmitter, account=a.address):
        registry.suspend(a, x).wait()


def test_7_bytes_that_do_not_parse_list_no_key(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    filler = submit_active(registry, a, [b, c], seed=701)
    registry.revoke(a, filler.cert_id, KEY_COMPROMISE).wait()
    with refused(errors.MalformedCertificate, certId=filler.cert_id):
        registry.report_key_compromise(b, filler.der).wait()
