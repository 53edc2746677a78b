"""On-chain tests of CertificateRegistry governance: proposals, quorums, membership limits.

The session registry has three genesis validators (accounts[0..2], both roles) and
threshold 2; registries with other genesis sets are deployed fresh inside the test's snapshot.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ORGS, fake_submission
from eth_account.signers.local import LocalAccount
from registry_helpers import (
    BOTH,
    ROLE_SUBMITTER,
    ROLE_VALIDATOR,
    ZERO_ADDRESS,
    ZERO_ID,
    address,
    deploy,
    events,
    ledger_state,
    pass_proposal,
    propose,
    refused,
    status_changed,
    submit_active,
)

from dpki import errors
from dpki.chain.registry import (
    ARTIFACT_PATH,
    PROPOSAL_LIFETIME,
    Member,
    MemberSpec,
    ProposalKind,
    Registry,
    Status,
    connect,
    load_artifact,
)

MAX_MEMBERS = 48


@pytest.fixture
def newcomer(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[3]


def add_member(
    registry: Registry, voters: list[LocalAccount], account: str, org: str, roles: int = BOTH
) -> int:
    proposal_id, _ = pass_proposal(registry, voters, ProposalKind.ADD_MEMBER, account, org, roles)
    return proposal_id


def created(
    proposal_id: int,
    proposer: str,
    kind: ProposalKind,
    account=ZERO_ADDRESS,
    cert=ZERO_ID,
    *,
    opened_at: int,
    organization: str = "",
    roles: int = 0,
    threshold: int = 0,
    reason: int = 0,
):
    """Return the expected ProposalCreated event (it carries every field of the proposal)."""
    return (
        "ProposalCreated",
        {
            "proposalId": proposal_id,
            "proposer": proposer,
            "kind": kind,
            "account": account,
            "certId": cert,
            "organization": organization,
            "roles": roles,
            "threshold": threshold,
            "reason": reason,
            "deadline": opened_at + PROPOSAL_LIFETIME,
        },
    )


def approved(proposal_id: int, validator: str, approvals: int) -> tuple[str, dict[str, Any]]:
    return (
        "ProposalApproved",
        {"proposalId": proposal_id, "validator": validator, "approvals": approvals},
    )


def executed(proposal_id: int) -> tuple[str, dict[str, Any]]:
    return ("ProposalExecuted", {"proposalId": proposal_id})


# ------------------------------------------------------------------ quorums


def test_threshold_one_executes_on_propose(
    chain: str, accounts: list[LocalAccount], a: LocalAccount, newcomer: LocalAccount
) -> None:
    registry = deploy(chain, accounts, [(0, "Solo A", BOTH)], 1)
    proposal_id, receipt = propose(
        registry, a, ProposalKind.ADD_MEMBER, newcomer.address, "Newcomer D", ROLE_SUBMITTER
    )
    assert proposal_id == 1
    assert events(receipt) == [
        created(
            1,
            a.address,
            ProposalKind.ADD_MEMBER,
            newcomer.address,
            opened_at=registry.block_timestamp(receipt.block_number),
            organization="Newcomer D",
            roles=ROLE_SUBMITTER,
        ),
        approved(1, a.address, 1),
        (
            "MemberAdded",
            {
                "account": newcomer.address,
                "organization": "Newcomer D",
                "roles": ROLE_SUBMITTER,
                "index": 1,
            },
        ),
        executed(1),
    ]
    proposal = registry.proposal(1)
    assert (proposal.executed, proposal.cancelled, proposal.approvals) == (True, False, 1)
    assert (proposal.kind, proposal.proposer) == (ProposalKind.ADD_MEMBER, a.address)
    assert (proposal.account, proposal.organization, proposal.roles) == (
        newcomer.address,
        "Newcomer D",
        ROLE_SUBMITTER,
    )
    assert registry.member_of(newcomer.address) == Member(
        newcomer.address, "Newcomer D", ROLE_SUBMITTER, 1
    )
    # A single validator activates certificates on its own too.
    submission = submit_active(registry, newcomer, [a], seed=1)
    assert registry.is_valid(submission.cert_id)


def test_threshold_n_needs_every_validator(chain: str, accounts: list[LocalAccount]) -> None:
    voters = accounts[0:3]
    registry = deploy(chain, accounts, [(i, ORGS[i], BOTH) for i in range(3)], 3)
    proposal_id, _ = propose(registry, voters[0], ProposalKind.SET_THRESHOLD, 2)
    registry.approve(voters[1], proposal_id).wait()
    assert registry.proposal(proposal_id).approvals == 2
    assert not registry.proposal(proposal_id).executed
    assert registry.threshold() == 3
    last = registry.approve(voters[2], proposal_id).wait()
    assert events(last) == [
        approved(proposal_id, voters[2].address, 3),
        ("ThresholdChanged", {"previousThreshold": 3, "threshold": 2}),
        executed(proposal_id),
    ]
    assert registry.threshold() == 2


def test_threshold_n_activation_and_rejection(chain: str, accounts: list[LocalAccount]) -> None:
    voters = accounts[0:3]
    registry = deploy(chain, accounts, [(i, ORGS[i], BOTH) for i in range(3)], 3)
    two = submit_active(registry, voters[0], voters[0:2], seed=2)
    assert registry.status_of(two.cert_id).status is Status.PENDING
    registry.endorse(voters[2], two.cert_id).wait()
    assert registry.is_valid(two.cert_id)
    # With n of n, a single rejection decides.
    rejected = fake_submission(3)
    registry.submit(voters[0], rejected).wait()
    receipt = registry.reject(voters[1], rejected.cert_id, 7).wait()
    assert receipt.event("CertificateRejected").args["status"] == Status.REJECTED


def test_one_validator_cannot_add_a_member_alone(
    registry: Registry, a: LocalAccount, b: LocalAccount, newcomer: LocalAccount
) -> None:
    before = registry.members()
    proposal_id, receipt = propose(
        registry, a, ProposalKind.ADD_MEMBER, newcomer.address, "Newcomer D", BOTH
    )
    assert events(receipt) == [
        created(
            proposal_id,
            a.address,
            ProposalKind.ADD_MEMBER,
            newcomer.address,
            opened_at=registry.block_timestamp(receipt.block_number),
            organization="Newcomer D",
            roles=BOTH,
        ),
        approved(proposal_id, a.address, 1),
    ]
    assert registry.members() == before
    assert registry.member_of(newcomer.address) is None
    assert registry.has_approved(proposal_id, a.address)
    assert not registry.has_approved(proposal_id, b.address)
    with refused(errors.AlreadyApproved, proposalId=proposal_id, validator=a.address):
        registry.approve(a, proposal_id).wait()
    # The would-be member cannot let itself in either.
    with refused(errors.NotAMember, account=newcomer.address):
        registry.approve(newcomer, proposal_id).wait()
    assert registry.proposal(proposal_id).approvals == 1
    assert registry.members() == before

    receipt = registry.approve(b, proposal_id).wait()
    assert events(receipt) == [
        approved(proposal_id, b.address, 2),
        (
            "MemberAdded",
            {"account": newcomer.address, "organization": "Newcomer D", "roles": BOTH, "index": 3},
        ),
        executed(proposal_id),
    ]
    assert registry.members() == [*before, Member(newcomer.address, "Newcomer D", BOTH, 3)]
    assert registry.validator_count() == 4
    with refused(errors.ProposalClosed, proposalId=proposal_id):
        registry.approve(newcomer, proposal_id).wait()


def test_proposals_are_the_only_way_to_change_membership() -> None:
    """Every state-changing function is a certificate operation or a proposal step."""
    abi = load_artifact(ARTIFACT_PATH)["abi"]
    writers = {
        item["name"]
        for item in abi
        if item["type"] == "function" and item["stateMutability"] not in ("view", "pure")
    }
    assert writers == {
        "submit",
        "submitBatch",
        "renew",
        "endorse",
        "endorseBatch",
        "endorseBatchAt",
        "reject",
        "rejectBatch",
        "rejectBatchAt",
        "revoke",
        "suspend",
        "resume",
        "withdraw",
        "settle",
        "reportKeyCompromise",
        "authorizeIssuer",  # for the caller's own organization only
        "deauthorizeIssuer",
        "rotateKey",  # the caller's own key only
        "proposeAddMember",
        "proposeRemoveMember",
        "proposeSetRoles",
        "proposeThreshold",
        "proposeRevoke",
        "proposeSuspend",
        "proposeResume",
        "proposeAuthorizeIssuer",
        "proposeDeauthorizeIssuer",
        "approve",
        "execute",
        "cancel",
    }


def test_a_removed_validators_approval_no_longer_counts(
    registry: Registry, accounts: list[LocalAccount], a, b, c
) -> None:
    x = accounts[3]
    add_member(registry, [a, b], x.address, "Validator X")
    pass_proposal(registry, [a, b], ProposalKind.SET_THRESHOLD, 3)
    assert (registry.validator_count(), registry.threshold()) == (4, 3)

    target = address(1)
    pending_id, _ = propose(registry, a, ProposalKind.ADD_MEMBER, target, "Target E", BOTH)
    registry.approve(x, pending_id).wait()
    assert registry.proposal(pending_id).approvals == 2

    removal_id, receipt = pass_proposal(registry, [b, c, a], ProposalKind.REMOVE_MEMBER, x.address)
    assert events(receipt)[-2:] == [
        ("MemberRemoved", {"account": x.address, "organization": "Validator X"}),
        executed(removal_id),
    ]
    assert registry.proposal(pending_id).approvals == 1
    assert not registry.has_approved(pending_id, x.address)

    receipt = registry.approve(b, pending_id).wait()
    assert events(receipt) == [approved(pending_id, b.address, 2)]
    assert registry.member_of(target) is None
    receipt = registry.approve(c, pending_id).wait()
    assert receipt.events[0].args["approvals"] == 3
    assert registry.member_of(target) is not None
    assert registry.proposal(removal_id).executed


def test_a_removal_below_the_threshold_is_refused_at_execution(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    pass_proposal(registry, [a, b], ProposalKind.SET_THRESHOLD, 3)
    proposal_id, _ = pass_proposal(registry, [a, b], ProposalKind.REMOVE_MEMBER, c.address)
    before = ledger_state(registry)
    with refused(errors.InvalidThreshold, threshold=3, validators=2):
        registry.approve(c, proposal_id).wait()
    assert ledger_state(registry) == before
    assert not registry.proposal(proposal_id).executed
    assert registry.member_of(c.address) is not None


def test_removing_validators_down_to_the_threshold(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    pass_proposal(registry, [a, b], ProposalKind.REMOVE_MEMBER, c.address)
    assert registry.validator_count() == 2
    proposal_id, _ = propose(registry, a, ProposalKind.REMOVE_MEMBER, b.address)
    with refused(errors.InvalidThreshold, threshold=2, validators=1):
        registry.approve(b, proposal_id).wait()
    # Lowering the threshold first makes the removal possible. The open proposal already has
    # a's approval, but it only executes on a further approval (here by b itself).
    pass_proposal(registry, [b, a], ProposalKind.SET_THRESHOLD, 1)
    assert not registry.proposal(proposal_id).executed
    receipt = registry.approve(b, proposal_id).wait()
    assert events(receipt)[-2:] == [
        ("MemberRemoved", {"account": b.address, "organization": "Operator B"}),
        executed(proposal_id),
    ]
    assert [m.address for m in registry.members()] == [a.address]


def test_execute_after_the_threshold_was_lowered(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    newcomer = address(4242)
    proposal_id, _ = propose(registry, a, ProposalKind.ADD_MEMBER, newcomer, "Org X", BOTH)
    with refused(errors.QuorumNotReached, proposalId=proposal_id, approvals=1, threshold=2):
        registry.execute(c, proposal_id).wait()
    pass_proposal(registry, [b, c], ProposalKind.SET_THRESHOLD, 1)
    # a already approved and cannot approve again; any validator may now execute
    with refused(errors.AlreadyApproved, proposalId=proposal_id, validator=a.address):
        registry.approve(a, proposal_id).wait()
    receipt = registry.execute(c, proposal_id).wait()
    assert events(receipt)[-1] == executed(proposal_id)
    assert registry.member_by_organization("Org X") == newcomer
    with refused(errors.ProposalClosed, proposalId=proposal_id):
        registry.execute(c, proposal_id).wait()


# ------------------------------------------------------------------ roles and threshold


def test_set_roles_makes_a_submitter_only_member(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    proposal_id, receipt = pass_proposal(
        registry, [a, b], ProposalKind.SET_ROLES, c.address, ROLE_SUBMITTER
    )
    assert events(receipt)[1:] == [
        ("RolesChanged", {"account": c.address, "previousRoles": BOTH, "roles": ROLE_SUBMITTER}),
        executed(proposal_id),
    ]
    assert registry.member_of(c.address).roles == ROLE_SUBMITTER  # type: ignore[union-attr]
    assert registry.validator_count() == 2
    submission = fake_submission(10)
    registry.submit(c, submission).wait()
    with refused(errors.NotAValidator, account=c.address):
        registry.endorse(c, submission.cert_id).wait()
    with refused(errors.NotAValidator, account=c.address):
        registry.approve(c, proposal_id).wait()
    with refused(errors.NotAValidator, account=c.address):
        propose(registry, c, ProposalKind.SET_THRESHOLD, 1)
    # With 2 validators and threshold 2, a single rejection now decides.
    receipt = registry.reject(a, submission.cert_id, 1).wait()
    assert receipt.event("CertificateRejected").args["status"] == Status.REJECTED


def test_set_roles_makes_a_validator_only_member(
    registry: Registry, a: LocalAccount, b: LocalAccount
) -> None:
    pass_proposal(registry, [a, b], ProposalKind.SET_ROLES, b.address, ROLE_VALIDATOR)
    assert registry.validator_count() == 3
    with refused(errors.NotASubmitter, account=b.address):
        registry.submit(b, fake_submission(11)).wait()
    submission = submit_active(registry, a, [a, b], seed=12)
    assert registry.is_valid(submission.cert_id)


def test_removing_the_validator_role_below_the_threshold_is_refused(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    pass_proposal(registry, [a, b], ProposalKind.SET_THRESHOLD, 3)
    proposal_id, _ = pass_proposal(
        registry, [a, b], ProposalKind.SET_ROLES, c.address, ROLE_SUBMITTER
    )
    with refused(errors.InvalidThreshold, threshold=3, validators=2):
        registry.approve(c, proposal_id).wait()
    assert registry.member_of(c.address).roles == BOTH  # type: ignore[union-attr]


@pytest.mark.parametrize("roles", [0, 4, 7, 255])
@pytest.mark.parametrize("kind", [ProposalKind.ADD_MEMBER, ProposalKind.SET_ROLES], ids=str)
def test_invalid_roles_are_refused(
    registry: Registry, a: LocalAccount, c: LocalAccount, kind: ProposalKind, roles: int
) -> None:
    args = (address(2), "Org", roles) if kind is ProposalKind.ADD_MEMBER else (c.address, roles)
    with refused(errors.InvalidRoles, roles=roles):
        propose(registry, a, kind, *args)
    assert registry.proposal_count() == 0


@pytest.mark.parametrize("threshold", [0, 4, 255])
def test_threshold_out_of_bounds_is_refused(
    registry: Registry, a: LocalAccount, threshold: int
) -> None:
    with refused(errors.InvalidThreshold, threshold=threshold, validators=3):
        propose(registry, a, ProposalKind.SET_THRESHOLD, threshold)
    assert registry.proposal_count() == 0


@pytest.mark.parametrize("threshold", [1, 2, 3])
def test_threshold_within_bounds(
    registry: Registry, a: LocalAccount, b: LocalAccount, threshold: int
) -> None:
    proposal_id, receipt = pass_proposal(registry, [a, b], ProposalKind.SET_THRESHOLD, threshold)
    assert receipt.event("ThresholdChanged").args == {
        "previousThreshold": 2,
        "threshold": threshold,
    }
    assert registry.threshold() == threshold
    assert registry.proposal(proposal_id).threshold == threshold


@pytest.mark.parametrize("threshold", [0, 2], ids=["zero", "above-validators"])
def test_a_genesis_threshold_out_of_bounds_is_refused(
    chain: str, accounts: list[LocalAccount], threshold: int
) -> None:
    with refused(errors.InvalidThreshold, threshold=threshold, validators=1):
        deploy(chain, accounts, [(0, "Solo A", BOTH), (1, "Sub B", ROLE_SUBMITTER)], threshold)


# ------------------------------------------------------------------ quorum revoke/suspend/resume


QUORUM_ACTIONS = [
    pytest.param(ProposalKind.REVOKE, (1,), None, Status.ACTIVE, Status.REVOKED, 1, id="revoke"),
    pytest.param(
        ProposalKind.REVOKE, (9,), "suspend", Status.SUSPENDED, Status.REVOKED, 9, id="revoke-held"
    ),
    pytest.param(ProposalKind.SUSPEND, (), None, Status.ACTIVE, Status.SUSPENDED, 6, id="suspend"),
    pytest.param(
        ProposalKind.RESUME, (), "suspend", Status.SUSPENDED, Status.ACTIVE, 0, id="resume"
    ),
]


@pytest.mark.parametrize(("kind", "extra", "setup", "previous", "status", "reason"), QUORUM_ACTIONS)
def test_validators_act_on_a_certificate_they_did_not_submit(
    registry: Registry,
    a: LocalAccount,
    b: LocalAccount,
    c: LocalAccount,
    kind: ProposalKind,
    extra: tuple[int, ...],
    setup: str | None,
    previous: Status,
    status: Status,
    reason: int,
) -> None:
    cert = submit_active(registry, a, [b, c], seed=20).cert_id
    if setup == "suspend":
        registry.suspend(a, cert).wait()
    proposal_id, receipt = propose(registry, b, kind, cert, *extra)
    assert events(receipt) == [
        created(
            proposal_id,
            b.address,
            kind,
            cert=cert,
            opened_at=registry.block_timestamp(receipt.block_number),
            reason=extra[0] if extra else 0,
        ),
        approved(proposal_id, b.address, 1),
    ]
    assert registry.status_of(cert).status is previous
    receipt = registry.approve(c, proposal_id).wait()
    assert events(receipt) == [
        approved(proposal_id, c.address, 2),
        status_changed(cert, c.address, previous, status, reason),
        executed(proposal_id),
    ]
    record = registry.status_of(cert)
    assert (record.status, record.reason, record.submitter) == (status, reason, a.address)
    proposal = registry.proposal(proposal_id)
    assert (proposal.kind, proposal.cert_id, proposal.reason) == (
        kind,
        cert,
        extra[0] if extra else 0,
    )


@pytest.mark.parametrize(
    ("kind", "extra", "error", "args"),
    [
        pytest.param(
            ProposalKind.REVOKE, (6,), errors.InvalidRevocationReason, {"reason": 6}, id="hold"
        ),
        pytest.param(
            ProposalKind.REVOKE, (11,), errors.InvalidRevocationReason, {"reason": 11}, id="11"
        ),
        pytest.param(
            ProposalKind.RESUME, (), errors.InvalidStatus, {"status": Status.ACTIVE}, id="resume"
        ),
    ],
)
def test_quorum_actions_check_the_certificate_when_proposed(
    registry: Registry, a, b, c, kind: ProposalKind, extra, error, args: dict[str, Any]
) -> None:
    cert = submit_active(registry, a, [b, c], seed=21).cert_id
    if error is errors.InvalidStatus:
        args = {"certId": cert, **args}
    with refused(error, **args):
        propose(registry, b, kind, cert, *extra)
    assert registry.proposal_count() == 0


@pytest.mark.parametrize(
    ("kind", "extra"),
    [(ProposalKind.REVOKE, (1,)), (ProposalKind.SUSPEND, ()), (ProposalKind.RESUME, ())],
    ids=str,
)
def test_quorum_actions_on_unknown_or_pending_certificates(
    registry: Registry, a: LocalAccount, b: LocalAccount, kind: ProposalKind, extra: tuple[int, ...]
) -> None:
    unknown = fake_submission(404).cert_id
    with refused(errors.UnknownCertificate, certId=unknown):
        propose(registry, b, kind, unknown, *extra)
    if kind is not ProposalKind.REVOKE:  # a pending certificate may be revoked (withdrawn)
        pending = fake_submission(22)
        registry.submit(a, pending).wait()
        with refused(errors.InvalidStatus, certId=pending.cert_id, status=Status.PENDING):
            propose(registry, b, kind, pending.cert_id, *extra)


def test_a_quorum_revoke_fails_if_the_certificate_was_revoked_meanwhile(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    cert = submit_active(registry, a, [b, c], seed=23).cert_id
    proposal_id, _ = propose(registry, b, ProposalKind.REVOKE, cert, 1)
    registry.revoke(a, cert, 4).wait()
    with refused(errors.InvalidStatus, certId=cert, status=Status.REVOKED):
        registry.approve(c, proposal_id).wait()
    assert registry.status_of(cert).reason == 4
    registry.cancel(b, proposal_id).wait()


# ------------------------------------------------------------------ cancel and closed proposals


def test_only_the_proposer_cancels(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    proposal_id, _ = propose(registry, a, ProposalKind.SET_THRESHOLD, 3)
    with refused(errors.NotProposer, proposalId=proposal_id, account=b.address):
        registry.cancel(b, proposal_id).wait()
    receipt = registry.cancel(a, proposal_id).wait()
    assert events(receipt) == [("ProposalCancelled", {"proposalId": proposal_id})]
    proposal = registry.proposal(proposal_id)
    assert (proposal.cancelled, proposal.executed) == (True, False)
    with refused(errors.ProposalClosed, proposalId=proposal_id):
        registry.approve(b, proposal_id).wait()
    with refused(errors.ProposalClosed, proposalId=proposal_id):
        registry.cancel(a, proposal_id).wait()
    assert registry.threshold() == 2


def test_an_executed_proposal_is_closed(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    proposal_id, _ = pass_proposal(registry, [a, b], ProposalKind.SET_THRESHOLD, 3)
    before = ledger_state(registry)
    with refused(errors.ProposalClosed, proposalId=proposal_id):
        registry.approve(c, proposal_id).wait()
    with refused(errors.ProposalClosed, proposalId=proposal_id):
        registry.cancel(a, proposal_id).wait()
    assert ledger_state(registry) == before


@pytest.mark.parametrize("proposal_id", [0, 2, 2**256 - 1])
def test_unknown_proposals(registry: Registry, a: LocalAccount, proposal_id: int) -> None:
    propose(registry, a, ProposalKind.SET_THRESHOLD, 3)  # id 1 exists
    for call in (
        lambda: registry.approve(a, proposal_id).wait(),
        lambda: registry.cancel(a, proposal_id).wait(),
        lambda: registry.proposal(proposal_id),
    ):
        with refused(errors.UnknownProposal, proposalId=proposal_id):
            call()
    assert not registry.has_approved(proposal_id, a.address)


# ------------------------------------------------------------------ member checks


def test_add_member_refusals_and_who_may_propose(
    registry: Registry, accounts: list[LocalAccount], a: LocalAccount, b: LocalAccount
) -> None:
    outsider = accounts[5]
    with refused(errors.NotAMember, account=outsider.address):
        propose(registry, outsider, ProposalKind.ADD_MEMBER, address(3), "Org", BOTH)
    pass_proposal(registry, [a, b], ProposalKind.SET_ROLES, b.address, ROLE_SUBMITTER)
    with refused(errors.NotAValidator, account=b.address):
        propose(registry, b, ProposalKind.ADD_MEMBER, address(3), "Org", BOTH)


@pytest.mark.parametrize(
    ("account", "organization", "error", "args"),
    [
        pytest.param(ZERO_ADDRESS, "Org", errors.ZeroAddress, {}, id="zero-address"),
        pytest.param(
            "member:1", "Org", errors.AlreadyAMember, {"account": "member:1"}, id="already-member"
        ),
        pytest.param(
            "new",
            "Operator B",
            errors.OrganizationTaken,
            {"organization": "Operator B"},
            id="organization-taken",
        ),
        pytest.param("new", "", errors.InvalidOrganization, {"organization": ""}, id="empty-org"),
        pytest.param(
            "new", "x" * 65, errors.InvalidOrganization, {"organization": "x" * 65}, id="65-bytes"
        ),
        pytest.param(
            "new",
            "é" * 33,
            errors.InvalidOrganization,
            {"organization": "é" * 33},
            id="66-utf8-bytes",
        ),
    ],
)
def test_add_member_is_checked_when_proposed(
    registry: Registry,
    accounts: list[LocalAccount],
    a: LocalAccount,
    account: str,
    organization: str,
    error: type[errors.ContractError],
    args: dict[str, Any],
) -> None:
    def resolve(value: Any) -> Any:
        if value == "new":
            return address(4)
        if isinstance(value, str) and value.startswith("member:"):
            return accounts[int(value.split(":")[1])].address
        return value

    before = ledger_state(registry)
    with refused(error, **{k: resolve(v) for k, v in args.items()}):
        propose(registry, a, ProposalKind.ADD_MEMBER, resolve(account), organization, BOTH)
    assert ledger_state(registry) == before


@pytest.mark.parametrize("organization", ["x", "x" * 64, "é" * 32, "Vendor A2", "Société Générale"])
def test_organization_names_of_1_to_64_bytes_are_accepted(
    registry: Registry, a: LocalAccount, b: LocalAccount, organization: str
) -> None:
    add_member(registry, [a, b], address(5), organization)
    assert registry.member_by_organization(organization) == address(5)


def test_add_member_is_checked_again_when_executed(
    registry: Registry, a: LocalAccount, b: LocalAccount
) -> None:
    first, _ = propose(registry, a, ProposalKind.ADD_MEMBER, address(6), "Same Org", BOTH)
    second, _ = propose(registry, b, ProposalKind.ADD_MEMBER, address(7), "Same Org", BOTH)
    registry.approve(b, first).wait()
    with refused(errors.OrganizationTaken, organization="Same Org"):
        registry.approve(a, second).wait()
    assert registry.member_by_organization("Same Org") == address(6)


@pytest.mark.parametrize("kind", [ProposalKind.REMOVE_MEMBER, ProposalKind.SET_ROLES], ids=str)
def test_proposals_about_a_non_member_are_refused(
    registry: Registry, a: LocalAccount, kind: ProposalKind
) -> None:
    args = (address(8),) if kind is ProposalKind.REMOVE_MEMBER else (address(8), BOTH)
    with refused(errors.NotAMember, account=address(8)):
        propose(registry, a, kind, *args)


def test_a_removed_member_frees_its_name_and_leaves_the_list(
    registry: Registry, a: LocalAccount, b: LocalAccount, c: LocalAccount
) -> None:
    cert = submit_active(registry, c, [a, b], seed=30).cert_id
    proposal_id, receipt = pass_proposal(registry, [a, b], ProposalKind.REMOVE_MEMBER, c.address)
    assert events(receipt)[1:] == [
        ("MemberRemoved", {"account": c.address, "organization": "CA C"}),
        executed(proposal_id),
    ]
    assert [m.organization for m in registry.members()] == ["Vendor A", "Operator B"]
    assert registry.member_of(c.address) is None
    assert registry.member_by_organization("CA C") is None
    assert registry.validator_count() == 2
    with refused(errors.NotAMember, account=c.address):
        registry.submit(c, fake_submission(31)).wait()
    with refused(errors.NotAMember, account=c.address):
        registry.revoke(c, cert, 1).wait()
    # Its certificates stay as they were, still attributed to it.
    assert registry.status_of(cert).submitter == c.address
    assert registry.is_valid(cert)

    add_member(registry, [a, b], address(9), "CA C", ROLE_SUBMITTER)
    assert registry.member_by_organization("CA C") == address(9)
    # The removed account may come back: it gets its old index back (its old votes stay
    # its own, never cast twice) and, being the same key, its old certificates.
    add_member(registry, [a, b], c.address, "CA C Reborn", BOTH)
    assert registry.members() == [
        Member(a.address, "Vendor A", BOTH, 0),
        Member(b.address, "Operator B", BOTH, 1),
        Member(c.address, "CA C Reborn", BOTH, 2),
        Member(address(9), "CA C", ROLE_SUBMITTER, 3),
    ]
    registry.revoke(c, cert, 1).wait()


def test_too_many_members_over_the_registry_lifetime(
    chain: str, accounts: list[LocalAccount], a: LocalAccount
) -> None:
    genesis = [(0, "Solo A", BOTH)]
    registry = deploy(chain, accounts, genesis, 1)
    pending = [
        registry.transact(a, "proposeAddMember", address(100 + i), f"Member {i}", ROLE_SUBMITTER)
        for i in range(1, MAX_MEMBERS - 1)
    ]
    for tx in pending:
        tx.wait()
    assert len(registry.members()) == MAX_MEMBERS - 1
    last = address(100 + MAX_MEMBERS)
    add_member(registry, [a], last, "Last Member", ROLE_SUBMITTER)
    assert registry.member_of(last).index == MAX_MEMBERS - 1  # type: ignore[union-attr]
    with refused(errors.TooManyMembers, max=MAX_MEMBERS):
        propose(registry, a, ProposalKind.ADD_MEMBER, address(999), "One Too Many", BOTH)
    # Removing a member does not give its index back.
    pass_proposal(registry, [a], ProposalKind.REMOVE_MEMBER, last)
    assert len(registry.members()) == MAX_MEMBERS - 1
    with refused(errors.TooManyMembers, max=MAX_MEMBERS):
        propose(registry, a, ProposalKind.ADD_MEMBER, address(999), "One Too Many", BOTH)


def test_too_many_genesis_members(chain: str, accounts: list[LocalAccount]) -> None:
    specs = [MemberSpec(address(200 + i), f"Genesis {i}", BOTH) for i in range(MAX_MEMBERS + 1)]
    with refused(errors.TooManyMembers, max=MAX_MEMBERS):
        Registry.deploy(connect(chain), accounts[19], specs, 1)
