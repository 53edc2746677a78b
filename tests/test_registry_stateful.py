"""Stateful property test of the registry: random call sequences by random accounts on anvil.

A hypothesis ``RuleBasedStateMachine`` drives a real registry (4 genesis members, threshold
2, two more accounts that may join) with snapshot/revert around each generated sequence.
After every step it checks the invariants of issue 10:

- an Active certificate had at least ``threshold`` endorsements from validators current at
  its activation;
- no single account changes membership, roles, the threshold, or the status of another
  member's certificate (votes and executed quorum proposals aside, which are checked as such);
- validators >= threshold;
- terminal statuses stay terminal: Revoked and Superseded never change; Rejected only goes
  back to Pending (an id registered again, by design).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from conftest import catch_up_the_clock, fake_submission, rpc
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from registry_helpers import BOTH, deploy

from dpki.chain.registry import Member, PendingTx, ProposalKind, Receipt, Registry, Status
from dpki.errors import ContractError

GENESIS = ("Org 0", "Org 1", "Org 2", "Org 3")
ACTORS = 6  # accounts[0..5]; 4 and 5 start outside
TERMINAL = (Status.REVOKED, Status.SUPERSEDED)
#: mostly the genesis members, sometimes the two outsiders
ACTOR = st.sampled_from([0, 1, 2, 3] * 3 + [4, 5])


@dataclass(frozen=True)
class Snapshot:
    members: tuple[Member, ...]
    threshold: int
    statuses: dict[bytes, tuple[Status, str | None]]

    @property
    def validators(self) -> set[str]:
        return {m.address for m in self.members if m.is_validator}


class RegistryMachine(RuleBasedStateMachine):
    """Random calls; invariants after each."""

    url: str = ""
    address: str = ""
    accounts: ClassVar[list[LocalAccount]] = []

    def __init__(self) -> None:
        super().__init__()
        self.snapshot_id = rpc(self.url, "evm_snapshot")
        self.registry = Registry.at(self.url, self.address)
        self.certs: list[bytes] = []
        self.submissions: dict[bytes, Any] = {}
        self.seed = 0
        self.before = self._read()

    def teardown(self) -> None:
        rpc(self.url, "evm_revert", self.snapshot_id)

    # ------------------------------------------------------------------ plumbing

    def _read(self) -> Snapshot:
        statuses = {r.cert_id: (r.status, r.submitter) for r in self.registry.statuses(self.certs)}
        return Snapshot(tuple(self.registry.members()), self.registry.threshold(), statuses)

    def _act(
        self, actor: int, call: Callable[[Registry, LocalAccount], PendingTx]
    ) -> Receipt | None:
        """Run one call by one account and check what it may have changed."""
        account = self.accounts[actor]
        before = self._read()
        receipt: Receipt | None
        try:
            receipt = call(self.registry, account).wait()
        except ContractError:
            receipt = None
        after = self._read()
        self._check_step(account.address, before, after, receipt)
        self.before = after
        return receipt

    def _check_step(
        self, actor: str, before: Snapshot, after: Snapshot, receipt: Receipt | None
    ) -> None:
        names = [e.name for e in receipt.events] if receipt else []
        quorum = "ProposalExecuted" in names
        if not quorum and "MemberKeyRotated" not in names:
            assert after.members == before.members, "membership changed without a quorum"
            assert after.threshold == before.threshold, "threshold changed without a quorum"
        for cid, (status, _) in after.statuses.items():
            old, old_submitter = before.statuses.get(cid, (Status.NONE, None))
            if old in TERMINAL:
                assert status is old, f"terminal {old.label} became {status.label}"
            if old is Status.REJECTED and status is not old:
                assert status is Status.PENDING
            if status is old or quorum or old_submitter in (None, actor):
                continue
            if old is Status.REJECTED:
                continue  # registered again by its (new) submitter
            # another member's certificate changed by one account: only by voting
            assert old is Status.PENDING, f"{old.label} -> {status.label} by {actor}"
            assert status in (Status.ACTIVE, Status.REJECTED)
        for cid, (status, _) in after.statuses.items():
            if status is Status.ACTIVE and before.statuses.get(cid, (None,))[0] is Status.PENDING:
                self._check_activation(cid, before)

    def _check_activation(self, cid: bytes, before: Snapshot) -> None:
        current = before.validators  # validators do not change in a vote
        endorsers = set(self.registry.endorsers_of(cid)) & current
        assert len(endorsers) >= before.threshold, "activated without a quorum of current ones"

    def _cert(self, pick: int) -> bytes | None:
        """Return one of the (at most four) certificates."""
        return self.certs[pick % len(self.certs)] if self.certs else None

    # ------------------------------------------------------------------ rules

    @initialize(endorser=st.integers(1, 3))
    def start(self, endorser: int) -> None:
        """Begin with a pending certificate that one validator endorsed (votes that may go
        stale are where counting goes wrong)."""
        self.submit(0, 1, 0)
        self.endorse([endorser], 0)

    @precondition(lambda self: len(self.certs) < 4)
    @rule(actor=ACTOR, own_org=st.integers(0, 3), other=st.integers(0, 3))
    def submit(self, actor: int, own_org: int, other: int) -> None:
        self.seed += 1
        org = GENESIS[actor] if own_org and actor < 4 else GENESIS[other]
        s = fake_submission(self.seed, organization=org if self.seed % 3 else None)
        self.certs.append(s.cert_id)  # read before the call: the step check sees it appear
        if self._act(actor, lambda r, a: r.submit(a, s)) is None:
            self.certs.pop()
        else:
            self.submissions[s.cert_id] = s

    @rule(actor=ACTOR, pick=st.integers(0, 50))
    def resubmit(self, actor: int, pick: int) -> None:
        """Send a known certificate again (a copy, or registering a rejected id)."""
        if (cid := self._cert(pick)) is not None:
            s = self.submissions[cid]
            self._act(actor, lambda r, a: r.submit(a, s))

    @rule(actors=st.lists(ACTOR, min_size=1, max_size=3), pick=st.integers(0, 50))
    def endorse(self, actors: list[int], pick: int) -> None:
        """One to three validators endorse the same certificate, one call each."""
        if (cid := self._cert(pick)) is not None:
            for actor in actors:
                self._act(actor, lambda r, a: r.endorse(a, cid))

    @rule(actor=ACTOR, pick=st.integers(0, 50), code=st.integers(1, 16))
    def reject(self, actor: int, pick: int, code: int) -> None:
        if (cid := self._cert(pick)) is not None:
            self._act(actor, lambda r, a: r.reject(a, cid, code))

    @rule(actor=ACTOR, pick=st.integers(0, 50))
    def settle(self, actor: int, pick: int) -> None:
        if (cid := self._cert(pick)) is not None:
            self._act(actor, lambda r, a: r.settle(a, cid))

    @rule(
        actor=ACTOR,
        pick=st.integers(0, 50),
        op=st.sampled_from(["revoke", "suspend", "resume", "withdraw"]),
    )
    def owner_action(self, actor: int, pick: int, op: str) -> None:
        if (cid := self._cert(pick)) is None:
            return
        calls: dict[str, Callable[[Registry, LocalAccount], PendingTx]] = {
            "revoke": lambda r, a: r.revoke(a, cid, 1),
            "suspend": lambda r, a: r.suspend(a, cid),
            "resume": lambda r, a: r.resume(a, cid),
            "withdraw": lambda r, a: r.withdraw(a, cid),
        }
        self._act(actor, calls[op])

    @rule(
        actor=ACTOR,
        subject=st.integers(0, ACTORS - 1),
        kind=st.sampled_from(
            [
                ProposalKind.ADD_MEMBER,
                ProposalKind.REMOVE_MEMBER,
                ProposalKind.SET_ROLES,
                ProposalKind.SET_THRESHOLD,
                ProposalKind.REVOKE,
                ProposalKind.SUSPEND,
                ProposalKind.RESUME,
            ]
        ),
        value=st.integers(1, 3),
        pick=st.integers(0, 50),
    )
    def propose(self, actor: int, subject: int, kind: ProposalKind, value: int, pick: int) -> None:
        who = self.accounts[subject].address
        cid = self._cert(pick) or bytes(32)
        args: dict[ProposalKind, tuple[Any, ...]] = {
            ProposalKind.ADD_MEMBER: (who, f"Org {subject}", BOTH if value != 2 else 2),
            ProposalKind.REMOVE_MEMBER: (who,),
            ProposalKind.SET_ROLES: (who, value),
            ProposalKind.SET_THRESHOLD: (value,),
            ProposalKind.REVOKE: (cid, 1),
            ProposalKind.SUSPEND: (cid,),
            ProposalKind.RESUME: (cid,),
        }
        self._act(actor, lambda r, a: _propose(r, a, kind, *args[kind]))

    @rule(
        proposer=ACTOR,
        second=ACTOR,
        subject=st.integers(0, ACTORS - 1),
        change=st.sampled_from(["remove", "demote", "promote", "add"]),
    )
    def membership_change(self, proposer: int, second: int, subject: int, change: str) -> None:
        """Two members pass a membership change (each step still checked on its own)."""
        who = self.accounts[subject].address
        kind, args = {
            "remove": (ProposalKind.REMOVE_MEMBER, (who,)),
            "demote": (ProposalKind.SET_ROLES, (who, 2)),
            "promote": (ProposalKind.SET_ROLES, (who, BOTH)),
            "add": (ProposalKind.ADD_MEMBER, (who, f"Org {subject}", BOTH)),
        }[change]
        if self._act(proposer, lambda r, a: _propose(r, a, kind, *args)) is not None:
            count = self.registry.proposal_count()
            self._act(second, lambda r, a: r.approve(a, count))

    @rule(second=ACTOR)
    def second_approval(self, second: int) -> None:
        """A second member approves the newest proposal (a quorum of two executes it)."""
        if count := self.registry.proposal_count():
            self._act(second, lambda r, a: r.approve(a, count))

    @rule(actor=ACTOR, pick=st.integers(1, 20))
    def approve(self, actor: int, pick: int) -> None:
        count = self.registry.proposal_count()
        if count:
            proposal_id = count - pick % min(3, count)  # one of the three newest
            self._act(actor, lambda r, a: r.approve(a, proposal_id))

    # ------------------------------------------------------------------ invariants

    @invariant()
    def validators_reach_the_threshold(self) -> None:
        assert self.registry.validator_count() >= self.registry.threshold()


def _propose(
    registry: Registry, account: LocalAccount, kind: ProposalKind, *args: Any
) -> PendingTx:
    return registry.propose(account, kind, *args)


@pytest.fixture(scope="module")
def machine_registry(anvil: Any, accounts: list[LocalAccount]) -> str:
    """Deploy the machine's registry once; every generated sequence reverts to this state."""
    registry = deploy(anvil.rpc_url, accounts, [(i, o, BOTH) for i, o in enumerate(GENESIS)], 2)
    return registry.address


def test_no_member_acts_alone(
    anvil: Any, accounts: list[LocalAccount], machine_registry: str
) -> None:
    RegistryMachine.url = anvil.rpc_url
    RegistryMachine.address = machine_registry
    RegistryMachine.accounts = accounts[:ACTORS]
    try:
        run_state_machine_as_test(
            RegistryMachine,
            settings=settings(
                max_examples=60,
                stateful_step_count=50,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        catch_up_the_clock(anvil.rpc_url)  # reverts set anvil's clock back
