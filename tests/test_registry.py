"""On-chain tests of CertificateRegistry's certificate functions, views, events and errors.

The session registry has three genesis members, "Vendor A", "Operator B" and "CA C"
(accounts[0..2], both roles each) and threshold 2. Every test runs inside a chain snapshot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from conftest import ORGS, fake_submission, rpc
from eth_account.signers.local import LocalAccount
from registry_helpers import (
    BOTH,
    ROLE_SUBMITTER,
    ROLE_VALIDATOR,
    ZERO_ID,
    advance,
    chain_time,
    deploy,
    endorsed,
    events,
    ledger_state,
    mine_at,
    refused,
    rejected,
    status_changed,
    submit_active,
    with_key,
)

import dpki
from dpki import errors
from dpki.chain.registry import NO_EXPIRY, Member, Registry, Status, Submission

SUPERSEDED_REASON = 4
CERTIFICATE_HOLD = 6
REVOCATION_REASONS = [0, 1, 2, 3, 4, 5, 9, 10]
REFUSED_REASONS = [6, 7, 8, 11, 255]


@pytest.fixture
def vendor(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[0]


@pytest.fixture
def operator(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[1]


@pytest.fixture
def ca(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[2]


@pytest.fixture
def outsider(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[5]


@pytest.fixture
def active(registry: Registry, vendor: LocalAccount, operator: LocalAccount, ca: LocalAccount):
    """A certificate Vendor A submitted and the two other members activated."""
    return submit_active(registry, vendor, [operator, ca], seed=1000)


@pytest.fixture
def pending(registry: Registry, vendor: LocalAccount) -> Submission:
    """A certificate Vendor A submitted that nobody voted on yet."""
    submission = fake_submission(2000)
    registry.submit(vendor, submission).wait()
    return submission


def block_time(registry: Registry, receipt: Any) -> int:
    return registry.block_timestamp(receipt.block_number)


# ------------------------------------------------------------------ genesis and views


def test_genesis_members_threshold_and_version(
    registry: Registry, accounts: list[LocalAccount]
) -> None:
    expected = [Member(accounts[i].address, org, BOTH, i) for i, org in enumerate(ORGS)]
    assert registry.members() == expected
    for member in expected:
        assert registry.member_of(member.address) == member
        assert registry.member_by_organization(member.organization) == member.address
    assert registry.member_of(accounts[5].address) is None
    assert registry.member_by_organization("Nobody D") is None
    assert registry.threshold() == 2
    assert registry.validator_count() == 3
    assert registry.proposal_count() == 0
    assert registry.version() == "2.1.0" == dpki.__version__  # one version everywhere
    assert registry.call("MAX_MEMBERS") == 48
    assert (registry.call("ROLE_VALIDATOR"), registry.call("ROLE_SUBMITTER")) == (1, 2)


def test_genesis_events(
    registry: Registry, accounts: list[LocalAccount], deploy_block: int
) -> None:
    logged = [(e.name, e.args) for e in registry.events(deploy_block, deploy_block)]
    assert logged == [
        *(
            (
                "MemberAdded",
                {"account": accounts[i].address, "organization": org, "roles": BOTH, "index": i},
            )
            for i, org in enumerate(ORGS)
        ),
        ("ThresholdChanged", {"previousThreshold": 0, "threshold": 2}),
    ]


def test_views_of_an_unknown_certificate(registry: Registry, vendor: LocalAccount) -> None:
    unknown = fake_submission(1)
    record = registry.status_of(unknown.cert_id)
    assert record.status is Status.NONE
    assert record.submitter is None
    assert (record.not_before, record.not_after, record.updated_at) == (0, 0, 0)
    assert (record.endorsements, record.rejections, record.reason) == (0, 0, 0)
    assert record.replaces is None
    assert not registry.is_valid(unknown.cert_id)
    assert registry.endorsers_of(unknown.cert_id) == []
    assert registry.rejecters_of(unknown.cert_id) == []
    assert not registry.has_voted(unknown.cert_id, vendor.address)
    assert registry.latest_for_key(unknown.key_hash) is None
    assert registry.replaced_by(unknown.cert_id) is None


VIEW_CALLS: list[tuple[str, Callable[[Submission, str], tuple[Any, ...]]]] = [
    ("isValid", lambda s, _a: (s.cert_id,)),
    ("statusOf", lambda s, _a: (s.cert_id,)),
    ("endorsersOf", lambda s, _a: (s.cert_id,)),
    ("rejectersOf", lambda s, _a: (s.cert_id,)),
    ("hasVoted", lambda s, a: (s.cert_id, a)),
    ("latestForKey", lambda s, _a: (s.key_hash,)),
    ("replacedBy", lambda s, _a: (s.cert_id,)),
    ("members", lambda _s, _a: ()),
    ("memberOf", lambda _s, a: (a,)),
    ("memberByOrganization", lambda _s, _a: ("Vendor A",)),
    ("threshold", lambda _s, _a: ()),
    ("validatorCount", lambda _s, _a: ()),
    ("proposalCount", lambda _s, _a: ()),
    ("hasApproved", lambda _s, a: (1, a)),
    ("version", lambda _s, _a: ()),
]


@pytest.mark.parametrize(("name", "make_args"), VIEW_CALLS, ids=[v[0] for v in VIEW_CALLS])
def test_a_view_sent_as_a_transaction_emits_nothing_and_changes_nothing(
    registry: Registry, active: Submission, vendor: LocalAccount, name: str, make_args: Any
) -> None:
    before = ledger_state(registry, [active.cert_id])
    receipt = registry.transact(vendor, name, *make_args(active, vendor.address)).wait()
    assert receipt.events == []
    after = ledger_state(registry, [active.cert_id])
    assert after[1:] == before[1:]
    assert after[0] == before[0] + 1


# ------------------------------------------------------------------ submit


def test_submit_records_a_pending_certificate_and_logs_the_der(
    registry: Registry, vendor: LocalAccount
) -> None:
    submission = fake_submission(7, size=900, window=(1_700_000_000, NO_EXPIRY))
    receipt = registry.submit(vendor, submission).wait()
    assert events(receipt) == [
        (
            "CertificateSubmitted",
            {
                "certId": hashlib.sha256(submission.der).digest(),
                "submitter": vendor.address,
                "keyHash": submission.key_hash,
                "orgHash": submission.org_hash,
                "notBefore": 1_700_000_000,
                "notAfter": NO_EXPIRY,
                "replaces": ZERO_ID,
                "der": submission.der,
            },
        )
    ]
    record = registry.status_of(submission.cert_id)
    assert record.status is Status.PENDING
    assert record.submitter == vendor.address
    assert (record.not_before, record.not_after) == (1_700_000_000, NO_EXPIRY)
    assert record.updated_at == block_time(registry, receipt)
    assert (record.endorsements, record.rejections, record.reason) == (0, 0, 0)
    assert record.replaces is None
    assert not registry.is_valid(submission.cert_id)
    assert registry.latest_for_key(submission.key_hash) == submission.cert_id


def test_submitting_the_same_der_twice_is_refused(
    registry: Registry, operator: LocalAccount, pending: Submission
) -> None:
    before = ledger_state(registry, [pending.cert_id])
    with refused(errors.CertificateAlreadyRegistered, certId=pending.cert_id):
        registry.submit(operator, pending).wait()
    assert ledger_state(registry, [pending.cert_id]) == before


@pytest.mark.parametrize(
    ("window", "der"),
    [
        pytest.param((100, 100), b"x", id="notBefore-equals-notAfter"),
        pytest.param((200, 100), b"x", id="notBefore-after-notAfter"),
        pytest.param((2**40 - 1, 0), b"x", id="largest-notBefore"),
    ],
)
def test_submit_with_an_empty_window_is_refused(
    registry: Registry, vendor: LocalAccount, window: tuple[int, int], der: bytes
) -> None:
    submission = Submission(der, window[0], window[1], b"k" * 32, b"o" * 32)
    with refused(errors.InvalidValidity, notBefore=window[0], notAfter=window[1]):
        registry.submit(vendor, submission).wait()
    assert registry.status_of(submission.cert_id).status is Status.NONE


def test_submit_with_an_empty_der_is_refused(registry: Registry, vendor: LocalAccount) -> None:
    with refused(errors.EmptyCertificate):
        registry.submit(vendor, Submission(b"", 0, 100, b"k" * 32, b"o" * 32)).wait()
    with refused(errors.EmptyCertificate):
        registry.submit_batch(
            vendor, [fake_submission(1), Submission(b"", 0, 1, ZERO_ID, ZERO_ID)]
        ).wait()


# Every certificate function, as called by someone who is not a member.
OUTSIDER_CALLS: list[tuple[str, Callable[[Registry, LocalAccount, Submission], Any]]] = [
    ("submit", lambda r, a, s: r.submit(a, fake_submission(9)).wait()),
    ("submitBatch", lambda r, a, s: r.submit_batch(a, [fake_submission(9)]).wait()),
    ("renew", lambda r, a, s: r.renew(a, s.cert_id, fake_submission(9)).wait()),
    ("endorse", lambda r, a, s: r.endorse(a, s.cert_id).wait()),
    ("endorseBatch", lambda r, a, s: r.endorse_batch(a, [s.cert_id]).wait()),
    ("reject", lambda r, a, s: r.reject(a, s.cert_id, 1).wait()),
    ("rejectBatch", lambda r, a, s: r.reject_batch(a, [s.cert_id], [1]).wait()),
    ("revoke", lambda r, a, s: r.revoke(a, s.cert_id, 1).wait()),
    ("suspend", lambda r, a, s: r.suspend(a, s.cert_id).wait()),
    ("resume", lambda r, a, s: r.resume(a, s.cert_id).wait()),
]


@pytest.mark.parametrize("call", [c[1] for c in OUTSIDER_CALLS], ids=[c[0] for c in OUTSIDER_CALLS])
def test_a_non_member_is_refused(
    registry: Registry, outsider: LocalAccount, active: Submission, call: Any
) -> None:
    before = ledger_state(registry, [active.cert_id])
    with refused(errors.NotAMember, account=outsider.address):
        call(registry, outsider, active)
    assert ledger_state(registry, [active.cert_id]) == before


@pytest.fixture
def split_roles(chain: str, accounts: list[LocalAccount]) -> Registry:
    """A fresh registry: accounts[0] both roles, [1] validator only, [2] submitter only."""
    roster = [
        (0, "Both A", BOTH),
        (1, "Validator B", ROLE_VALIDATOR),
        (2, "Submitter C", ROLE_SUBMITTER),
    ]
    return deploy(chain, accounts, roster, 2)


VALIDATOR_CALLS: list[tuple[str, Callable[[Registry, LocalAccount, bytes], Any]]] = [
    ("endorse", lambda r, a, c: r.endorse(a, c).wait()),
    ("endorseBatch", lambda r, a, c: r.endorse_batch(a, [c]).wait()),
    ("reject", lambda r, a, c: r.reject(a, c, 3).wait()),
    ("rejectBatch", lambda r, a, c: r.reject_batch(a, [c], [3]).wait()),
]


@pytest.mark.parametrize(
    "call", [c[1] for c in VALIDATOR_CALLS], ids=[c[0] for c in VALIDATOR_CALLS]
)
def test_a_submitter_only_member_cannot_vote(
    split_roles: Registry, accounts: list[LocalAccount], call: Any
) -> None:
    submission = fake_submission(3)
    split_roles.submit(accounts[2], submission).wait()
    with refused(errors.NotAValidator, account=accounts[2].address):
        call(split_roles, accounts[2], submission.cert_id)
    assert split_roles.status_of(submission.cert_id).status is Status.PENDING


SUBMITTER_CALLS: list[tuple[str, Callable[[Registry, LocalAccount, bytes], Any]]] = [
    ("submit", lambda r, a, c: r.submit(a, fake_submission(4)).wait()),
    ("submitBatch", lambda r, a, c: r.submit_batch(a, [fake_submission(4)]).wait()),
    ("renew", lambda r, a, c: r.renew(a, c, fake_submission(4)).wait()),
]


@pytest.mark.parametrize(
    "call", [c[1] for c in SUBMITTER_CALLS], ids=[c[0] for c in SUBMITTER_CALLS]
)
def test_a_validator_only_member_cannot_submit(
    split_roles: Registry, accounts: list[LocalAccount], call: Any
) -> None:
    old = submit_active(split_roles, accounts[0], accounts[0:2], seed=5)
    with refused(errors.NotASubmitter, account=accounts[1].address):
        call(split_roles, accounts[1], old.cert_id)
    assert split_roles.status_of(fake_submission(4).cert_id).status is Status.NONE


def test_split_roles_work_together(split_roles: Registry, accounts: list[LocalAccount]) -> None:
    """The submitter-only member submits; the validators activate it."""
    submission = submit_active(split_roles, accounts[2], accounts[0:2], seed=6)
    record = split_roles.status_of(submission.cert_id)
    assert (record.status, record.submitter) == (Status.ACTIVE, accounts[2].address)


# ------------------------------------------------------------------ endorse and reject


def test_endorsements_activate_at_the_threshold(
    registry: Registry, pending: Submission, vendor: LocalAccount, operator, ca
) -> None:
    cert_id = pending.cert_id
    first = registry.endorse(operator, cert_id).wait()
    assert events(first) == [endorsed(cert_id, operator.address, 1, Status.PENDING)]
    record = registry.status_of(cert_id)
    assert (record.status, record.endorsements) == (Status.PENDING, 1)
    assert not registry.is_valid(cert_id)

    second = registry.endorse(ca, cert_id).wait()
    assert events(second) == [endorsed(cert_id, ca.address, 2, Status.ACTIVE)]
    record = registry.status_of(cert_id)
    assert (record.status, record.endorsements, record.rejections) == (Status.ACTIVE, 2, 0)
    assert record.updated_at == block_time(registry, second)
    assert registry.is_valid(cert_id)
    assert registry.endorsers_of(cert_id) == [operator.address, ca.address]
    assert [registry.has_voted(cert_id, a.address) for a in (vendor, operator, ca)] == [
        False,
        True,
        True,
    ]


def test_a_submitter_may_endorse_its_own_certificate(
    registry: Registry, pending: Submission, vendor: LocalAccount, operator: LocalAccount
) -> None:
    registry.endorse(vendor, pending.cert_id).wait()
    registry.endorse(operator, pending.cert_id).wait()
    assert registry.is_valid(pending.cert_id)


@pytest.mark.parametrize("first_vote", ["endorse", "reject"])
@pytest.mark.parametrize("second_vote", ["endorse", "reject"])
def test_a_validator_votes_once(
    registry: Registry, pending: Submission, operator: LocalAccount, first_vote, second_vote
) -> None:
    vote = {
        "endorse": lambda: registry.endorse(operator, pending.cert_id).wait(),
        "reject": lambda: registry.reject(operator, pending.cert_id, 9).wait(),
    }
    vote[first_vote]()
    before = ledger_state(registry, [pending.cert_id])
    with refused(errors.AlreadyVoted, certId=pending.cert_id, validator=operator.address):
        vote[second_vote]()
    assert ledger_state(registry, [pending.cert_id]) == before


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda r, a, c: r.endorse(a, c).wait(), id="endorse"),
        pytest.param(lambda r, a, c: r.reject(a, c, 1).wait(), id="reject"),
        pytest.param(lambda r, a, c: r.endorse_batch(a, [c]).wait(), id="endorseBatch"),
        pytest.param(lambda r, a, c: r.reject_batch(a, [c], [1]).wait(), id="rejectBatch"),
        pytest.param(lambda r, a, c: r.revoke(a, c, 1).wait(), id="revoke"),
        pytest.param(lambda r, a, c: r.suspend(a, c).wait(), id="suspend"),
        pytest.param(lambda r, a, c: r.resume(a, c).wait(), id="resume"),
        pytest.param(lambda r, a, c: r.renew(a, c, fake_submission(8)).wait(), id="renew"),
    ],
)
def test_an_unknown_certificate_is_refused(
    registry: Registry, vendor: LocalAccount, call: Any
) -> None:
    unknown = fake_submission(404).cert_id
    with refused(errors.UnknownCertificate, certId=unknown):
        call(registry, vendor, unknown)


def test_an_active_certificate_cannot_be_voted_on(
    registry: Registry, active: Submission, vendor: LocalAccount
) -> None:
    with refused(errors.InvalidStatus, certId=active.cert_id, status=Status.ACTIVE):
        registry.endorse(vendor, active.cert_id).wait()
    with refused(errors.InvalidStatus, certId=active.cert_id, status=Status.ACTIVE):
        registry.reject(vendor, active.cert_id, 2).wait()


def test_invalid_status_carries_a_status_enum(
    registry: Registry, active: Submission, vendor: LocalAccount
) -> None:
    with pytest.raises(errors.InvalidStatus) as info:
        registry.endorse(vendor, active.cert_id).wait()
    assert info.value.args_by_name["status"] is Status.ACTIVE


def test_one_rejection_of_three_leaves_it_pending_two_reject_it(
    registry: Registry, pending: Submission, vendor: LocalAccount, operator, ca
) -> None:
    cert_id = pending.cert_id
    first = registry.reject(operator, cert_id, 17).wait()
    assert events(first) == [rejected(cert_id, operator.address, 17, 1, Status.PENDING)]
    assert registry.status_of(cert_id).status is Status.PENDING

    second = registry.reject(ca, cert_id, 21).wait()
    assert events(second) == [rejected(cert_id, ca.address, 21, 2, Status.REJECTED)]
    record = registry.status_of(cert_id)
    assert (record.status, record.rejections, record.endorsements) == (Status.REJECTED, 2, 0)
    assert record.reason == 21
    assert record.updated_at == block_time(registry, second)
    assert registry.rejecters_of(cert_id) == [operator.address, ca.address]
    assert not registry.is_valid(cert_id)
    with refused(errors.InvalidStatus, certId=cert_id, status=Status.REJECTED):
        registry.endorse(vendor, cert_id).wait()


def test_a_certificate_with_one_rejection_can_still_activate(
    registry: Registry, pending: Submission, vendor: LocalAccount, operator, ca
) -> None:
    registry.reject(operator, pending.cert_id, 5).wait()
    registry.endorse(vendor, pending.cert_id).wait()
    registry.endorse(ca, pending.cert_id).wait()
    record = registry.status_of(pending.cert_id)
    assert (record.status, record.endorsements, record.rejections) == (Status.ACTIVE, 2, 1)
    assert registry.is_valid(pending.cert_id)


# ------------------------------------------------------------------ isValid and chain time


def test_is_valid_follows_the_chain_clock_inside_the_window(
    registry: Registry, chain: str, vendor: LocalAccount, operator, ca
) -> None:
    now = chain_time(registry)
    not_before, not_after = now + 1_000, now + 2_000
    submission = submit_active(registry, vendor, [operator, ca], 11, (not_before, not_after))
    assert registry.status_of(submission.cert_id).status is Status.ACTIVE
    assert not registry.is_valid(submission.cert_id)  # not yet
    mine_at(chain, not_before - 1)
    assert not registry.is_valid(submission.cert_id)
    mine_at(chain, not_before)
    assert registry.is_valid(submission.cert_id)
    mine_at(chain, not_after)
    assert registry.is_valid(submission.cert_id)
    mine_at(chain, not_after + 1)
    assert not registry.is_valid(submission.cert_id)  # expired, though still Active
    assert registry.status_of(submission.cert_id).status is Status.ACTIVE


def test_a_certificate_whose_window_has_passed_is_never_valid(
    registry: Registry, chain: str, vendor: LocalAccount, operator, ca
) -> None:
    now = chain_time(registry)
    expired = submit_active(registry, vendor, [operator, ca], 12, (now - 200, now - 100))
    current = submit_active(registry, vendor, [operator, ca], 13, (now - 200, now + 100))
    assert not registry.is_valid(expired.cert_id)
    assert registry.is_valid(current.cert_id)
    advance(chain, 3_600)
    assert not registry.is_valid(current.cert_id)


def test_no_expiry_stays_valid(
    registry: Registry, chain: str, vendor: LocalAccount, operator, ca
) -> None:
    submission = submit_active(registry, vendor, [operator, ca], 14, (0, NO_EXPIRY))
    advance(chain, 100 * 365 * 86_400)
    assert registry.is_valid(submission.cert_id)


# ------------------------------------------------------------------ renew


def renewal_of(old: Submission, seed: int) -> Submission:
    """A new certificate for the same key."""
    return with_key(fake_submission(seed), old.key_hash)


def test_renew_supersedes_the_old_certificate_when_the_new_one_activates(
    registry: Registry, active: Submission, vendor: LocalAccount, operator, ca
) -> None:
    new = renewal_of(active, 1001)
    receipt = registry.renew(vendor, active.cert_id, new).wait()
    assert receipt.event("CertificateSubmitted").args["replaces"] == active.cert_id
    assert receipt.event("CertificateSubmitted").args["certId"] == new.cert_id
    assert registry.status_of(new.cert_id).replaces == active.cert_id
    assert registry.replaced_by(active.cert_id) is None  # only once the renewal activates
    assert registry.latest_for_key(active.key_hash) == new.cert_id
    # Until the renewal activates the old certificate is still the valid one.
    registry.endorse(operator, new.cert_id).wait()
    assert registry.is_valid(active.cert_id)
    assert registry.status_of(active.cert_id).status is Status.ACTIVE

    activation = registry.endorse(ca, new.cert_id).wait()
    assert events(activation) == [
        endorsed(new.cert_id, ca.address, 2, Status.ACTIVE),
        status_changed(
            active.cert_id, ca.address, Status.ACTIVE, Status.SUPERSEDED, SUPERSEDED_REASON
        ),
    ]
    old = registry.status_of(active.cert_id)
    assert (old.status, old.reason) == (Status.SUPERSEDED, SUPERSEDED_REASON)
    assert old.updated_at == block_time(registry, activation)
    assert old.replaces is None
    assert registry.replaced_by(active.cert_id) == new.cert_id
    assert not registry.is_valid(active.cert_id)
    assert registry.is_valid(new.cert_id)


def test_renewing_a_suspended_certificate(
    registry: Registry, active: Submission, vendor: LocalAccount, operator, ca
) -> None:
    registry.suspend(vendor, active.cert_id).wait()
    new = submit_renewal(registry, vendor, active, 1002)
    activation = registry.endorse(operator, new.cert_id).wait()
    changed = activation.event("CertificateStatusChanged").args
    assert (changed["previous"], changed["status"]) == (Status.SUSPENDED, Status.SUPERSEDED)


def submit_renewal(
    registry: Registry, submitter: LocalAccount, old: Submission, seed: int
) -> Submission:
    """Renew ``old`` and have one validator endorse the renewal."""
    new = renewal_of(old, seed)
    registry.renew(submitter, old.cert_id, new).wait()
    registry.endorse(submitter, new.cert_id).wait()
    return new


def test_a_rejected_renewal_leaves_the_old_certificate_active(
    registry: Registry, active: Submission, vendor: LocalAccount, operator, ca
) -> None:
    new = renewal_of(active, 1003)
    registry.renew(vendor, active.cert_id, new).wait()
    registry.reject(operator, new.cert_id, 1).wait()
    registry.reject(ca, new.cert_id, 1).wait()
    assert registry.status_of(new.cert_id).status is Status.REJECTED
    assert registry.status_of(active.cert_id).status is Status.ACTIVE
    assert registry.is_valid(active.cert_id)
    assert registry.replaced_by(active.cert_id) is None


def test_only_the_submitter_renews(
    registry: Registry, active: Submission, operator: LocalAccount
) -> None:
    with refused(errors.NotCertificateOwner, certId=active.cert_id, account=operator.address):
        registry.renew(operator, active.cert_id, renewal_of(active, 1004)).wait()
    assert registry.replaced_by(active.cert_id) is None


@pytest.mark.parametrize(
    ("make_state", "status"),
    [
        pytest.param(lambda r, a, c: None, Status.PENDING, id="pending"),
        pytest.param(lambda r, a, c: r.withdraw(a, c).wait(), Status.REJECTED, id="withdrawn"),
    ],
)
def test_renewing_a_certificate_that_is_not_in_force_is_refused(
    registry: Registry, pending: Submission, vendor: LocalAccount, make_state: Any, status: Status
) -> None:
    make_state(registry, vendor, pending.cert_id)
    with refused(errors.InvalidStatus, certId=pending.cert_id, status=status):
        registry.renew(vendor, pending.cert_id, renewal_of(pending, 1005)).wait()


# ------------------------------------------------------------------ revoke, suspend, resume


@pytest.mark.parametrize("reason", REVOCATION_REASONS)
def test_revoke_with_a_crl_reason(
    registry: Registry, active: Submission, vendor: LocalAccount, reason: int
) -> None:
    receipt = registry.revoke(vendor, active.cert_id, reason).wait()
    assert events(receipt) == [
        status_changed(active.cert_id, vendor.address, Status.ACTIVE, Status.REVOKED, reason)
    ]
    record = registry.status_of(active.cert_id)
    assert (record.status, record.reason) == (Status.REVOKED, reason)
    assert record.updated_at == block_time(registry, receipt)
    assert record.endorsements == 2
    assert not registry.is_valid(active.cert_id)


@pytest.mark.parametrize("reason", REFUSED_REASONS)
def test_revoke_refuses_hold_unused_remove_from_crl_and_unknown_reasons(
    registry: Registry, active: Submission, vendor: LocalAccount, reason: int
) -> None:
    before = ledger_state(registry, [active.cert_id])
    with refused(errors.InvalidRevocationReason, reason=reason):
        registry.revoke(vendor, active.cert_id, reason).wait()
    assert ledger_state(registry, [active.cert_id]) == before
    assert registry.is_valid(active.cert_id)


@pytest.mark.parametrize(
    ("make_state", "previous"),
    [
        pytest.param(lambda r, a, c: None, Status.PENDING, id="pending"),
        pytest.param(lambda r, a, c: r.endorse_batch(a, [c]).wait(), Status.PENDING, id="endorsed"),
    ],
)
def test_a_pending_certificate_can_be_withdrawn(
    registry: Registry, pending: Submission, vendor: LocalAccount, make_state, previous
) -> None:
    """Withdrawing clears the claim (Rejected, WITHDRAWN): the id can be registered again;
    revoking a Pending certificate, which would burn the id, is refused."""
    make_state(registry, vendor, pending.cert_id)
    with refused(errors.InvalidStatus, certId=pending.cert_id, status=Status.PENDING):
        registry.revoke(vendor, pending.cert_id, 0).wait()
    receipt = registry.withdraw(vendor, pending.cert_id).wait()
    assert events(receipt) == [
        status_changed(pending.cert_id, vendor.address, previous, Status.REJECTED, WITHDRAWN)
    ]
    assert registry.status_of(pending.cert_id).status is Status.REJECTED
    registry.submit(vendor, pending).wait()
    assert registry.status_of(pending.cert_id).status is Status.PENDING


def test_revoking_twice_is_refused(
    registry: Registry, active: Submission, vendor: LocalAccount
) -> None:
    registry.revoke(vendor, active.cert_id, 1).wait()
    with refused(errors.InvalidStatus, certId=active.cert_id, status=Status.REVOKED):
        registry.revoke(vendor, active.cert_id, 4).wait()
    assert registry.status_of(active.cert_id).reason == 1


WITHDRAWN = 18


def test_a_rejected_certificate_cannot_be_revoked(
    registry: Registry, pending: Submission, vendor: LocalAccount, operator, ca
) -> None:
    registry.reject(operator, pending.cert_id, 3).wait()
    registry.reject(ca, pending.cert_id, 3).wait()
    with refused(errors.InvalidStatus, certId=pending.cert_id, status=Status.REJECTED):
        registry.revoke(vendor, pending.cert_id, 1).wait()


OWNER_CALLS: list[tuple[str, Callable[[Registry, LocalAccount, bytes], Any]]] = [
    ("revoke", lambda r, a, c: r.revoke(a, c, 1).wait()),
    ("suspend", lambda r, a, c: r.suspend(a, c).wait()),
    ("resume", lambda r, a, c: r.resume(a, c).wait()),
]


@pytest.mark.parametrize("call", [c[1] for c in OWNER_CALLS], ids=[c[0] for c in OWNER_CALLS])
def test_only_the_submitting_member_revokes_suspends_resumes(
    registry: Registry, active: Submission, operator: LocalAccount, call: Any
) -> None:
    before = ledger_state(registry, [active.cert_id])
    with refused(errors.NotCertificateOwner, certId=active.cert_id, account=operator.address):
        call(registry, operator, active.cert_id)
    assert ledger_state(registry, [active.cert_id]) == before


def test_suspend_and_resume(registry: Registry, active: Submission, vendor: LocalAccount) -> None:
    cert_id = active.cert_id
    suspended = registry.suspend(vendor, cert_id).wait()
    assert events(suspended) == [
        status_changed(cert_id, vendor.address, Status.ACTIVE, Status.SUSPENDED, CERTIFICATE_HOLD)
    ]
    record = registry.status_of(cert_id)
    assert (record.status, record.reason) == (Status.SUSPENDED, CERTIFICATE_HOLD)
    assert record.updated_at == block_time(registry, suspended)
    assert not registry.is_valid(cert_id)
    with refused(errors.InvalidStatus, certId=cert_id, status=Status.SUSPENDED):
        registry.suspend(vendor, cert_id).wait()

    resumed = registry.resume(vendor, cert_id).wait()
    assert events(resumed) == [
        status_changed(cert_id, vendor.address, Status.SUSPENDED, Status.ACTIVE, 0)
    ]
    record = registry.status_of(cert_id)
    assert (record.status, record.reason) == (Status.ACTIVE, 0)
    assert registry.is_valid(cert_id)
    with refused(errors.InvalidStatus, certId=cert_id, status=Status.ACTIVE):
        registry.resume(vendor, cert_id).wait()


def test_a_suspended_certificate_can_be_revoked(
    registry: Registry, active: Submission, vendor: LocalAccount
) -> None:
    registry.suspend(vendor, active.cert_id).wait()
    receipt = registry.revoke(vendor, active.cert_id, 1).wait()
    assert receipt.event("CertificateStatusChanged").args["previous"] == Status.SUSPENDED
    with refused(errors.InvalidStatus, certId=active.cert_id, status=Status.REVOKED):
        registry.resume(vendor, active.cert_id).wait()


def test_a_pending_certificate_cannot_be_suspended(
    registry: Registry, pending: Submission, vendor: LocalAccount
) -> None:
    with refused(errors.InvalidStatus, certId=pending.cert_id, status=Status.PENDING):
        registry.suspend(vendor, pending.cert_id).wait()


# ------------------------------------------------------------------ latestForKey


def test_latest_for_key_follows_the_newest_submission(
    registry: Registry, vendor: LocalAccount, operator: LocalAccount
) -> None:
    first = fake_submission(21)
    second = with_key(fake_submission(22), first.key_hash)
    other = fake_submission(23)
    registry.submit(vendor, first).wait()
    assert registry.latest_for_key(first.key_hash) == first.cert_id
    registry.submit_batch(operator, [second, other]).wait()
    assert registry.latest_for_key(first.key_hash) == second.cert_id
    assert registry.latest_for_key(other.key_hash) == other.cert_id


# ------------------------------------------------------------------ batches


def test_submit_batch_then_endorse_batch_activates_all(
    registry: Registry, vendor: LocalAccount, operator: LocalAccount, ca: LocalAccount
) -> None:
    batch = [fake_submission(100 + i, size=300 + i) for i in range(8)]
    ids = [s.cert_id for s in batch]
    submitted = registry.submit_batch(vendor, batch).wait()
    assert [e.name for e in submitted.events] == ["CertificateSubmitted"] * len(batch)
    assert [e.args["certId"] for e in submitted.events] == ids
    assert [e.args["der"] for e in submitted.events] == [s.der for s in batch]
    assert {registry.status_of(c).status for c in ids} == {Status.PENDING}

    first = registry.endorse_batch(operator, ids).wait()
    assert [(e.args["certId"], e.args["status"]) for e in first.events] == [
        (c, Status.PENDING) for c in ids
    ]
    second = registry.endorse_batch(ca, ids).wait()
    assert [
        (e.args["certId"], e.args["endorsements"], e.args["status"]) for e in second.events
    ] == [(c, 2, Status.ACTIVE) for c in ids]
    assert all(registry.is_valid(c) for c in ids)


def test_endorse_batch_skips_decided_certificates_without_an_event(
    registry: Registry, active: Submission, pending: Submission, vendor: LocalAccount, operator
) -> None:
    registry.reject(operator, pending.cert_id, 1).wait()
    rejected = fake_submission(3000)
    registry.submit(vendor, rejected).wait()
    registry.reject_batch(operator, [rejected.cert_id], [2]).wait()
    registry.reject(vendor, rejected.cert_id, 2).wait()

    receipt = registry.endorse_batch(
        vendor, [active.cert_id, rejected.cert_id, pending.cert_id]
    ).wait()
    assert events(receipt) == [endorsed(pending.cert_id, vendor.address, 1, Status.PENDING)]
    # A batch where every certificate is already decided changes nothing and emits nothing.
    before = ledger_state(registry, [active.cert_id, rejected.cert_id])
    assert registry.endorse_batch(vendor, [active.cert_id, rejected.cert_id]).wait().events == []
    assert ledger_state(registry, [active.cert_id, rejected.cert_id])[1:] == before[1:]
    assert not registry.has_voted(active.cert_id, vendor.address)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(
            lambda r, a, c: r.endorse_batch(a, [c, c]).wait(), "voted", id="endorse-twice"
        ),
        pytest.param(
            lambda r, a, c: r.reject_batch(a, [c, c], [1, 1]).wait(), "voted", id="reject-twice"
        ),
        pytest.param(
            lambda r, a, c: r.endorse_batch(a, [c, fake_submission(404).cert_id]).wait(),
            "unknown",
            id="endorse-unknown",
        ),
        pytest.param(
            lambda r, a, c: r.reject_batch(a, [c, fake_submission(404).cert_id], [1, 1]).wait(),
            "unknown",
            id="reject-unknown",
        ),
    ],
)
def test_a_vote_batch_with_a_bad_entry_reverts_as_a_whole(
    registry: Registry, pending: Submission, operator: LocalAccount, call: Any, error: str
) -> None:
    cases: dict[str, tuple[type[errors.ContractError], dict[str, Any]]] = {
        "voted": (errors.AlreadyVoted, {"certId": pending.cert_id, "validator": operator.address}),
        "unknown": (errors.UnknownCertificate, {"certId": fake_submission(404).cert_id}),
    }
    expected = cases[error]
    before = ledger_state(registry, [pending.cert_id])
    with refused(expected[0], **expected[1]):
        call(registry, operator, pending.cert_id)
    assert ledger_state(registry, [pending.cert_id]) == before
    assert not registry.has_voted(pending.cert_id, operator.address)


def test_reject_batch_rejects_each_with_its_reason(
    registry: Registry, vendor: LocalAccount, operator: LocalAccount, ca: LocalAccount
) -> None:
    batch = [fake_submission(200 + i) for i in range(3)]
    ids = [s.cert_id for s in batch]
    registry.submit_batch(vendor, batch).wait()
    registry.reject_batch(operator, ids, [11, 12, 13]).wait()
    receipt = registry.reject_batch(ca, ids, [21, 22, 23]).wait()
    assert [
        (e.args["reasonCode"], e.args["rejections"], e.args["status"]) for e in receipt.events
    ] == [
        (21, 2, Status.REJECTED),
        (22, 2, Status.REJECTED),
        (23, 2, Status.REJECTED),
    ]
    assert [registry.status_of(c).reason for c in ids] == [21, 22, 23]
    # Decided certificates are skipped, as in endorseBatch.
    assert registry.reject_batch(vendor, ids, [1, 1, 1]).wait().events == []


@pytest.mark.parametrize(("codes", "got"), [([1], 1), ([1, 2, 3], 3), ([], 0)])
def test_reject_batch_with_mismatched_lengths_is_refused(
    registry: Registry, operator: LocalAccount, pending: Submission, codes: list[int], got: int
) -> None:
    ids = [pending.cert_id, fake_submission(5000).cert_id]
    with refused(errors.LengthMismatch, expected=2, got=got):
        registry.reject_batch(operator, ids, codes).wait()
    assert registry.status_of(pending.cert_id).rejections == 0


# ------------------------------------------------------------------ anchored votes


def head(url: str) -> tuple[int, bytes]:
    """Return the number and hash of the newest block: the anchor a validator names."""
    block: Any = rpc(url, "eth_getBlockByNumber", "latest", False)
    return int(block["number"], 16), bytes.fromhex(block["hash"][2:])


def test_an_anchored_vote_counts_on_the_chain_it_was_decided_on(
    registry: Registry, chain: str, pending: Submission, operator: LocalAccount, ca: LocalAccount
) -> None:
    receipt = registry.endorse_batch(operator, [pending.cert_id], anchor=head(chain)).wait()
    assert events(receipt) == [endorsed(pending.cert_id, operator.address, 1, Status.PENDING)]
    receipt = registry.reject_batch(ca, [pending.cert_id], [3], anchor=head(chain)).wait()
    assert events(receipt) == [rejected(pending.cert_id, ca.address, 3, 1, Status.PENDING)]


@pytest.mark.parametrize("anchor", ["another-hash", "zero-hash", "this-block", "too-old"])
def test_an_anchor_this_chain_does_not_have_is_refused(
    registry: Registry, chain: str, pending: Submission, operator: LocalAccount, anchor: str
) -> None:
    number, block_hash = head(chain)
    if anchor == "too-old":  # BLOCKHASH reaches 256 blocks back
        rpc(chain, "anvil_mine", hex(256))
    bad = {
        "another-hash": (number, hashlib.sha256(block_hash).digest()),
        "zero-hash": (number, bytes(32)),
        "this-block": (number + 1, block_hash),  # the block the vote is mined in: no hash yet
        "too-old": (number, block_hash),
    }[anchor]
    before = ledger_state(registry, [pending.cert_id])
    with refused(errors.StaleAnchor, anchorBlock=bad[0], anchorHash=bad[1]):
        registry.endorse_batch(operator, [pending.cert_id], anchor=bad).wait()
    with refused(errors.StaleAnchor, anchorBlock=bad[0], anchorHash=bad[1]):
        registry.reject_batch(operator, [pending.cert_id], [3], anchor=bad).wait()
    assert ledger_state(registry, [pending.cert_id]) == before
    assert not registry.has_voted(pending.cert_id, operator.address)


def test_the_newest_block_blockhash_reaches_is_still_an_anchor(
    registry: Registry, chain: str, pending: Submission, operator: LocalAccount
) -> None:
    anchor = head(chain)
    rpc(chain, "anvil_mine", hex(255))  # the vote is mined 256 blocks after its anchor
    registry.endorse_batch(operator, [pending.cert_id], anchor=anchor).wait()
    assert registry.has_voted(pending.cert_id, operator.address)


def test_a_vote_decided_on_a_replaced_block_counts_nowhere(
    registry: Registry,
    chain: str,
    vendor: LocalAccount,
    operator: LocalAccount,
    ca: LocalAccount,
) -> None:
    """What makes voting before confirmations safe: a validator decides on block N as its
    node has it, then a fork replaces block N (here a snapshot reverted and another block
    mined at that height, as a competing sealer's block would be). The vote sent meanwhile
    reaches the new chain and must count for nothing there, whatever the new block holds;
    decided again on the new block, it counts."""
    submission = fake_submission(7000)
    fork = rpc(chain, "evm_snapshot")
    registry.submit(vendor, submission).wait()
    seen = head(chain)  # the validator's view: block N with the submission
    assert rpc(chain, "evm_revert", fork) is True
    registry.resync_nonce(vendor.address)
    rpc(chain, "evm_setNextBlockTimestamp", chain_time(registry) + 7)
    registry.submit(vendor, submission).wait()  # the same transaction, in another block N
    replaced = head(chain)
    assert replaced[0] == seen[0] and replaced[1] != seen[1]
    with refused(errors.StaleAnchor, anchorBlock=seen[0], anchorHash=seen[1]):
        registry.endorse_batch(operator, [submission.cert_id], anchor=seen).wait()
    assert registry.status_of(submission.cert_id).endorsements == 0
    registry.endorse_batch(operator, [submission.cert_id], anchor=replaced).wait()
    registry.endorse_batch(ca, [submission.cert_id], anchor=head(chain)).wait()
    assert registry.status_of(submission.cert_id).status is Status.ACTIVE


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda r, a: r.submit_batch(a, []).wait(), id="submitBatch"),
        pytest.param(lambda r, a: r.endorse_batch(a, []).wait(), id="endorseBatch"),
        pytest.param(lambda r, a: r.reject_batch(a, [], []).wait(), id="rejectBatch"),
    ],
)
def test_an_empty_batch_is_refused(registry: Registry, vendor: LocalAccount, call: Any) -> None:
    with refused(errors.EmptyBatch):
        call(registry, vendor)


@pytest.mark.parametrize(
    "duplicate_of", ["inside-the-batch", "already-on-the-ledger"], ids=lambda d: d
)
def test_a_submit_batch_skips_an_id_already_registered(
    registry: Registry, vendor: LocalAccount, pending: Submission, duplicate_of: str
) -> None:
    """One item already on the ledger (for example a copy another member sent first) does
    not revert the batch: it is skipped without an event and its record is untouched."""
    fresh = [fake_submission(300 + i) for i in range(3)]
    duplicate = fresh[0] if duplicate_of == "inside-the-batch" else pending
    before = registry.status_of(pending.cert_id)
    receipt = registry.submit_batch(vendor, [*fresh, duplicate]).wait()
    assert [e.args["certId"] for e in receipt.events] == [s.cert_id for s in fresh]
    assert {registry.status_of(s.cert_id).status for s in fresh} == {Status.PENDING}
    assert registry.status_of(pending.cert_id) == before
