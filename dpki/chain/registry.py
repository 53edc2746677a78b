"""The typed client of the ``CertificateRegistry`` contract.

:class:`Registry` is the contract's API in Python: views return records
(:mod:`dpki.chain.types`), writes return a :class:`~dpki.chain.transactions.PendingTx`
whose ``wait()`` gives the receipt. Underneath are the JSON-RPC transport
(:mod:`dpki.chain.rpc`), the ABI (:mod:`dpki.chain.abi`) and the transaction sender
(:mod:`dpki.chain.transactions`), joined in :mod:`dpki.chain.contract`. Reads are plain
``eth_call``s with no web3 middleware (a relying party's hot path). A revert with one of the
registry's custom errors is raised as the matching subclass of
:class:`dpki.errors.ContractError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3

from dpki.chain.abi import (
    ARTIFACT_PATH,
    ContractAbi,
    Event,
    decode_revert,
    load_artifact,
)
from dpki.chain.contract import ContractClient
from dpki.chain.rpc import RpcClient, connect
from dpki.chain.transactions import PendingTx, Receipt, Transactions
from dpki.chain.types import (
    NO_EXPIRY,
    PROPOSAL_LIFETIME,
    ROLE_SUBMITTER,
    ROLE_VALIDATOR,
    Anchor,
    CertificateStatus,
    Member,
    MemberSpec,
    Proposal,
    ProposalKind,
    Submission,
    as_cert_id,
)
from dpki.errors import ChainError
from dpki.pki.codes import Status

__all__ = [
    "ARTIFACT_PATH",
    "NO_EXPIRY",
    "PROPOSAL_LIFETIME",
    "ROLE_SUBMITTER",
    "ROLE_VALIDATOR",
    "Anchor",
    "CertificateStatus",
    "Event",
    "Member",
    "MemberSpec",
    "PendingTx",
    "Proposal",
    "ProposalKind",
    "Receipt",
    "Registry",
    "Status",
    "Submission",
    "as_cert_id",
    "connect",
    "decode_revert",
    "load_artifact",
    "proposal_id_of",
]

_PROPOSE = {
    ProposalKind.ADD_MEMBER: "proposeAddMember",
    ProposalKind.REMOVE_MEMBER: "proposeRemoveMember",
    ProposalKind.SET_ROLES: "proposeSetRoles",
    ProposalKind.SET_THRESHOLD: "proposeThreshold",
    ProposalKind.REVOKE: "proposeRevoke",
    ProposalKind.SUSPEND: "proposeSuspend",
    ProposalKind.RESUME: "proposeResume",
    ProposalKind.AUTHORIZE_ISSUER: "proposeAuthorizeIssuer",
    ProposalKind.DEAUTHORIZE_ISSUER: "proposeDeauthorizeIssuer",
}


def proposal_id_of(receipt: Receipt) -> int:
    """Return the id of the proposal a ``propose`` transaction opened."""
    return int(receipt.event("ProposalCreated").args["proposalId"])


class Registry(ContractClient):
    """A deployed ``CertificateRegistry`` at ``address`` on the chain behind ``w3``."""

    # ------------------------------------------------------------------ construction

    @classmethod
    def at(cls, rpc_url: str, address: str) -> Registry:
        """Return a client for the registry at ``address`` behind ``rpc_url``."""
        return cls(connect(rpc_url), address)

    @classmethod
    def deploy(
        cls,
        w3: Web3,
        deployer: LocalAccount,
        members: Sequence[MemberSpec],
        threshold: int,
    ) -> tuple[Registry, Receipt]:
        """Deploy a registry with genesis ``members`` and ``threshold``; return it, receipt."""
        artifact = load_artifact()
        abi = ContractAbi(artifact["abi"])
        args = abi.encode_constructor(
            [
                [to_checksum_address(m.address) for m in members],
                [m.organization for m in members],
                [m.roles for m in members],
                threshold,
            ]
        )
        data = bytes.fromhex(artifact["bytecode"].removeprefix("0x")) + args
        receipt = Transactions(RpcClient(w3), abi).send(deployer, None, data).wait()
        if receipt.contract_address is None:
            raise ChainError("deployment created no contract")
        return cls(w3, receipt.contract_address, artifact), receipt

    def statuses(self, cert_ids: Sequence[str | bytes]) -> list[CertificateStatus]:
        """Return ``status_of`` for many certificates in batched round trips."""
        ids = [as_cert_id(c) for c in cert_ids]
        raw = self.call_many("statusOf", [(c,) for c in ids])
        return [self._status(c, s) for c, s in zip(ids, raw, strict=True)]

    def have_voted(self, cert_ids: Sequence[bytes], validator: str) -> list[bool]:
        """Return ``has_voted`` for many certificates in batched round trips."""
        who = to_checksum_address(validator)
        return [bool(v) for v in self.call_many("hasVoted", [(c, who) for c in cert_ids])]

    # ------------------------------------------------------------------ views

    @cached_property
    def is_valid_selector(self) -> bytes:
        """Return the selector of ``isValid(bytes32)`` (for callers that build raw calls)."""
        return self.abi.selector("isValid")

    def is_valid(self, cert_id: str | bytes) -> bool:
        """Return True when the ledger says the certificate is Active and in its window."""
        data = self.is_valid_selector + as_cert_id(cert_id)
        return self._eth_call(data)[-1] == 1

    def status_of(self, cert_id: str | bytes, block: int | str = "latest") -> CertificateStatus:
        """Return the full record of a certificate (status NONE when unknown)."""
        cid = as_cert_id(cert_id)
        return self._status(cid, self.call("statusOf", cid, block=block))

    def status_at_head(self, cert_id: str | bytes) -> tuple[CertificateStatus, int]:
        """Return the record of a certificate and the head block's time in one round trip."""
        cid = as_cert_id(cert_id)
        data = "0x" + self.abi.encode_call("statusOf", [cid]).hex()
        try:
            head, raw = self.batch(
                [
                    ("eth_getBlockByNumber", ["latest", False]),
                    ("eth_call", [{"to": self.address, "data": data}, "latest"]),
                ]
            )
        except ChainError:  # a transient node error: the single calls retry it
            return self.status_of(cid), self.block_timestamp()
        record = self.abi.decode_output("statusOf", bytes.fromhex(str(raw).removeprefix("0x")))
        return self._status(cid, record), int(head["timestamp"], 16)

    @staticmethod
    def _status(cid: bytes, s: Any) -> CertificateStatus:
        status = Status(s[0])
        zero = b"\x00" * 32
        return CertificateStatus(
            cert_id=cid,
            status=status,
            submitter=to_checksum_address(s[1]) if status is not Status.NONE else None,
            not_before=s[2],
            not_after=s[3],
            updated_at=s[4],
            endorsements=s[5],
            rejections=s[6],
            reason=s[7],
            replaces=None if s[8] == zero else bytes(s[8]),
        )

    def endorsers_of(self, cert_id: str | bytes) -> list[str]:
        """Return the validators that endorsed a certificate."""
        return [to_checksum_address(a) for a in self.call("endorsersOf", as_cert_id(cert_id))]

    def rejecters_of(self, cert_id: str | bytes) -> list[str]:
        """Return the validators that rejected a certificate."""
        return [to_checksum_address(a) for a in self.call("rejectersOf", as_cert_id(cert_id))]

    def has_voted(self, cert_id: str | bytes, validator: str) -> bool:
        """Return True when ``validator`` endorsed or rejected the certificate."""
        return bool(self.call("hasVoted", as_cert_id(cert_id), to_checksum_address(validator)))

    def latest_for_key(self, key_hash: bytes) -> bytes | None:
        """Return the latest certificate submitted for an SPKI hash, or None."""
        value = bytes(self.call("latestForKey", key_hash))
        return None if value == b"\x00" * 32 else value

    def submitted_der(self, cert_id: bytes, from_block: int) -> bytes | None:
        """Return the DER of a certificate from its latest submission event, or None."""
        found = self.events(from_block, "latest", ["CertificateSubmitted"], cert_id=cert_id)
        return bytes(found[-1].args["der"]) if found else None

    def compromised_key(self, key_hash: bytes) -> bytes | None:
        """Return the certificate that put ``key_hash`` on the compromised list, or None."""
        value = bytes(self.call("compromisedKey", key_hash))
        return None if value == bytes(32) else value

    def compromised_keys(self, key_hashes: Sequence[bytes]) -> list[bool]:
        """Return, per key hash, whether it is on the compromised list (batched)."""
        found = self.call_many("compromisedKey", [(k,) for k in key_hashes])
        return [bytes(v) != bytes(32) for v in found]

    def is_issuer_authorized(self, ca_cert_id: str | bytes, org_hash: bytes) -> bool:
        """Return whether ``ca_cert_id`` may vouch for the organization ``org_hash``."""
        return bool(self.call("isIssuerAuthorized", as_cert_id(ca_cert_id), org_hash))

    def held_by_quorum(self, cert_id: str | bytes) -> bool:
        """Return whether a quorum holds the certificate suspended."""
        return bool(self.call("heldByQuorum", as_cert_id(cert_id)))

    def replaced_by(self, cert_id: str | bytes) -> bytes | None:
        """Return the certificate that renewed ``cert_id``, or None."""
        value = bytes(self.call("replacedBy", as_cert_id(cert_id)))
        return None if value == b"\x00" * 32 else value

    def members(self) -> list[Member]:
        """Return the current members."""
        return [Member(to_checksum_address(m[0]), m[1], m[2], m[3]) for m in self.call("members")]

    def member_of(self, address: str) -> Member | None:
        """Return the member at ``address``, or None."""
        m = self.call("memberOf", to_checksum_address(address))
        return None if m[2] == 0 else Member(to_checksum_address(m[0]), m[1], m[2], m[3])

    def member_by_organization(self, organization: str) -> str | None:
        """Return the address of the member named ``organization``, or None."""
        address = self.call("memberByOrganization", organization)
        return None if int(address, 16) == 0 else to_checksum_address(address)

    def threshold(self) -> int:
        """Return the endorsement threshold (also the governance quorum)."""
        return int(self.call("threshold"))

    def validator_count(self) -> int:
        """Return the number of current validators."""
        return int(self.call("validatorCount"))

    def proposal_count(self) -> int:
        """Return how many proposals were ever made."""
        return int(self.call("proposalCount"))

    def proposal(self, proposal_id: int) -> Proposal:
        """Return one proposal."""
        p = self.call("proposal", proposal_id)
        return Proposal(
            proposal_id=proposal_id,
            kind=ProposalKind(p[0]),
            proposer=to_checksum_address(p[1]),
            executed=p[2],
            cancelled=p[3],
            approvals=p[4],
            account=to_checksum_address(p[5]),
            roles=p[6],
            threshold=p[7],
            cert_id=bytes(p[8]),
            reason=p[9],
            organization=p[10],
            deadline=p[11],
        )

    def has_approved(self, proposal_id: int, validator: str) -> bool:
        """Return True when ``validator`` approved ``proposal_id``."""
        return bool(self.call("hasApproved", proposal_id, to_checksum_address(validator)))

    def version(self) -> str:
        """Return the contract's semantic version."""
        return str(self.call("version"))

    # ------------------------------------------------------------------ transactions

    def submit(self, account: LocalAccount, submission: Submission) -> PendingTx:
        """Submit one certificate."""
        return self.transact(account, "submit", submission.as_tuple())

    def submit_batch(
        self, account: LocalAccount, submissions: Sequence[Submission], *, gas: int | None = None
    ) -> PendingTx:
        """Submit many certificates in one transaction (``gas``: a computed bound, no estimate;
        see :func:`dpki.chain.gas.submit_batch_gas`)."""
        return self.transact(account, "submitBatch", [s.as_tuple() for s in submissions], gas=gas)

    def renew(self, account: LocalAccount, old: str | bytes, submission: Submission) -> PendingTx:
        """Submit ``submission`` as the renewal of ``old``."""
        return self.transact(account, "renew", as_cert_id(old), submission.as_tuple())

    def endorse(self, account: LocalAccount, cert_id: str | bytes) -> PendingTx:
        """Endorse a pending certificate."""
        return self.transact(account, "endorse", as_cert_id(cert_id))

    def endorse_batch(
        self,
        account: LocalAccount,
        cert_ids: Sequence[str | bytes],
        *,
        gas: int | None = None,
        anchor: Anchor | None = None,
    ) -> PendingTx:
        """Endorse many pending certificates (``gas``: a computed bound, no estimate; see
        :func:`dpki.chain.gas.endorse_batch_gas`). With an ``anchor`` (the number and hash of
        the newest block the decision read) the vote counts only on a chain that has that
        block (``endorseBatchAt``; elsewhere it reverts with StaleAnchor)."""
        ids = [as_cert_id(c) for c in cert_ids]
        if anchor is None:
            return self.transact(account, "endorseBatch", ids, gas=gas)
        return self.transact(account, "endorseBatchAt", ids, anchor[0], anchor[1], gas=gas)

    def reject(self, account: LocalAccount, cert_id: str | bytes, reason_code: int) -> PendingTx:
        """Reject a pending certificate with a rejection reason code."""
        return self.transact(account, "reject", as_cert_id(cert_id), reason_code)

    def reject_batch(
        self,
        account: LocalAccount,
        cert_ids: Sequence[str | bytes],
        reason_codes: Sequence[int],
        *,
        anchor: Anchor | None = None,
    ) -> PendingTx:
        """Reject many pending certificates (``anchor``: as for :meth:`endorse_batch`)."""
        ids, codes = [as_cert_id(c) for c in cert_ids], list(reason_codes)
        if anchor is None:
            return self.transact(account, "rejectBatch", ids, codes)
        return self.transact(account, "rejectBatchAt", ids, codes, anchor[0], anchor[1])

    def revoke(self, account: LocalAccount, cert_id: str | bytes, reason: int) -> PendingTx:
        """Revoke a certificate the account's organization submitted."""
        return self.transact(account, "revoke", as_cert_id(cert_id), reason)

    def suspend(self, account: LocalAccount, cert_id: str | bytes) -> PendingTx:
        """Suspend an active certificate the account's organization submitted."""
        return self.transact(account, "suspend", as_cert_id(cert_id))

    def resume(self, account: LocalAccount, cert_id: str | bytes) -> PendingTx:
        """Resume a suspended certificate the account's organization submitted."""
        return self.transact(account, "resume", as_cert_id(cert_id))

    def withdraw(self, account: LocalAccount, cert_id: str | bytes) -> PendingTx:
        """Withdraw one's own pending certificate (its id can be registered again)."""
        return self.transact(account, "withdraw", as_cert_id(cert_id))

    def settle(self, account: LocalAccount, cert_id: str | bytes) -> PendingTx:
        """Decide a pending certificate from the current validators' votes."""
        return self.transact(account, "settle", as_cert_id(cert_id))

    def report_key_compromise(self, account: LocalAccount, der: bytes) -> PendingTx:
        """List the key of a certificate revoked for keyCompromise as compromised."""
        return self.transact(account, "reportKeyCompromise", der)

    def authorize_issuer(self, account: LocalAccount, ca_cert_id: str | bytes) -> PendingTx:
        """Let another member's CA vouch for certificates naming the account's organization."""
        return self.transact(account, "authorizeIssuer", as_cert_id(ca_cert_id))

    def deauthorize_issuer(self, account: LocalAccount, ca_cert_id: str | bytes) -> PendingTx:
        """Withdraw the account's authorisation of a CA."""
        return self.transact(account, "deauthorizeIssuer", as_cert_id(ca_cert_id))

    def rotate_key(self, account: LocalAccount, new_address: str) -> PendingTx:
        """Move the account's membership to a new key."""
        return self.transact(account, "rotateKey", to_checksum_address(new_address))

    def propose(self, account: LocalAccount, kind: ProposalKind, *args: Any) -> PendingTx:
        """Open a governance proposal (its id: ``proposal_id_of(pending.wait())``)."""
        return self.transact(account, _PROPOSE[kind], *args)

    def approve(self, account: LocalAccount, proposal_id: int) -> PendingTx:
        """Approve a proposal (executes it when the quorum is reached)."""
        return self.transact(account, "approve", proposal_id)

    def execute(self, account: LocalAccount, proposal_id: int) -> PendingTx:
        """Execute a proposal that already has the quorum (after the threshold was lowered)."""
        return self.transact(account, "execute", proposal_id)

    def cancel(self, account: LocalAccount, proposal_id: int) -> PendingTx:
        """Withdraw one's own proposal."""
        return self.transact(account, "cancel", proposal_id)
