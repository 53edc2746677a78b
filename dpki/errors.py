"""The DPKI exception hierarchy: one root, a branch per area."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CONTRACT_ERRORS",
    "AccountRetired",
    "AlreadyAMember",
    "AlreadyApproved",
    "AlreadyVoted",
    "AuthorizationUnchanged",
    "CertificateAlreadyRegistered",
    "CertificateUndecided",
    "ChainError",
    "ConfigError",
    "ContractError",
    "DpkiError",
    "EmptyBatch",
    "EmptyCertificate",
    "HeldByQuorum",
    "InvalidOrganization",
    "InvalidRevocationReason",
    "InvalidRoles",
    "InvalidStatus",
    "InvalidThreshold",
    "InvalidValidity",
    "LengthMismatch",
    "MalformedCertificate",
    "NonceConflict",
    "NotAMember",
    "NotASubmitter",
    "NotAValidator",
    "NotCertificateOwner",
    "NotEntitled",
    "NotProposer",
    "NotRevokedForKeyCompromise",
    "OrganizationNotCanonical",
    "OrganizationTaken",
    "OutOfGas",
    "ParseError",
    "PolicyError",
    "ProposalClosed",
    "ProposalExpired",
    "QuorumNotReached",
    "RpcUnavailable",
    "StaleAnchor",
    "SubmitterNotActive",
    "TooManyMembers",
    "ToolchainError",
    "UnknownCertificate",
    "UnknownProposal",
    "ZeroAddress",
]


class DpkiError(Exception):
    """Root of every error DPKI raises on purpose."""

    #: process exit code the command line uses for this error
    exit_code = 2


class ParseError(DpkiError):
    """Input that is not a readable certificate (PEM or DER)."""


class PolicyError(DpkiError):
    """A policy that cannot be built or applied (not a violation: those are verdicts)."""


class ConfigError(DpkiError):
    """A missing or bad deployment file, keystore, organization name or option."""


class ToolchainError(DpkiError):
    """The Solidity compiler or the devnet binaries are missing or failed."""


class ChainError(DpkiError):
    """Anything that went wrong talking to the ledger."""

    exit_code = 3


class RpcUnavailable(ChainError):
    """The JSON-RPC endpoint did not answer."""


class NonceConflict(ChainError):
    """Another sender from the same account took the nonce, or the transaction was dropped.

    Ids are content hashes, so sending the same action again is safe: the registry refuses
    a second registration or vote with its custom error, which callers read as "done".
    """


class OutOfGas(ChainError):
    """A transaction sent with a computed gas limit ran out of gas (it changed nothing).

    The sender falls back to the node's estimate for what it sends next; the work of the
    failed transaction is sent again by its caller (submission node, validator).
    """


class ContractError(ChainError):
    """The registry refused a call with one of its custom errors.

    ``name`` is the Solidity error name and ``args`` its decoded arguments by name;
    every custom error of the contract has a subclass in ``dpki.chain.registry`` that
    carries the same name.
    """

    name: str = "ContractError"

    def __init__(self, args: dict[str, Any] | None = None, message: str | None = None) -> None:
        self.args_by_name: dict[str, Any] = dict(args or {})
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.args_by_name.items())
        super().__init__(message or f"registry refused: {self.name}({shown})")


def _show(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value)


# --- the registry's custom errors, one class each (tests check this list against the ABI)


class AlreadyAMember(ContractError):
    """`account` is already a member."""

    name = "AlreadyAMember"


class AlreadyApproved(ContractError):
    """This validator already approved the proposal."""

    name = "AlreadyApproved"


class AlreadyVoted(ContractError):
    """This validator already endorsed or rejected the certificate."""

    name = "AlreadyVoted"


class CertificateAlreadyRegistered(ContractError):
    """A certificate with this id is already on the ledger."""

    name = "CertificateAlreadyRegistered"


class EmptyBatch(ContractError):
    """An empty batch."""

    name = "EmptyBatch"


class EmptyCertificate(ContractError):
    """The DER is empty."""

    name = "EmptyCertificate"


class InvalidOrganization(ContractError):
    """Organization names are 1..64 bytes."""

    name = "InvalidOrganization"


class InvalidRevocationReason(ContractError):
    """Not an RFC 5280 CRLReason usable with revoke (certificateHold: use suspend)."""

    name = "InvalidRevocationReason"


class InvalidRoles(ContractError):
    """Roles must be a non-empty subset of VALIDATOR|SUBMITTER."""

    name = "InvalidRoles"


class InvalidStatus(ContractError):
    """The certificate is in `status`, where this operation is not allowed."""

    name = "InvalidStatus"


class InvalidThreshold(ContractError):
    """The threshold must be between 1 and the number of validators."""

    name = "InvalidThreshold"


class InvalidValidity(ContractError):
    """notBefore must be before notAfter."""

    name = "InvalidValidity"


class LengthMismatch(ContractError):
    """Parallel arrays of different lengths."""

    name = "LengthMismatch"


class NotAMember(ContractError):
    """`account` is not a current member."""

    name = "NotAMember"


class NotASubmitter(ContractError):
    """`account` lacks the SUBMITTER role."""

    name = "NotASubmitter"


class NotAValidator(ContractError):
    """`account` lacks the VALIDATOR role."""

    name = "NotAValidator"


class NotCertificateOwner(ContractError):
    """Only the submitting member (or a validator quorum) can do this."""

    name = "NotCertificateOwner"


class NotProposer(ContractError):
    """Only the proposer can cancel a proposal."""

    name = "NotProposer"


class OrganizationTaken(ContractError):
    """Another member already uses this organization name."""

    name = "OrganizationTaken"


class ProposalClosed(ContractError):
    """The proposal was already executed or cancelled."""

    name = "ProposalClosed"


class TooManyMembers(ContractError):
    """The registry holds at most `max` members over its lifetime."""

    name = "TooManyMembers"


class QuorumNotReached(ContractError):
    """The proposal has `approvals` approvals by current validators; it needs `threshold`."""

    name = "QuorumNotReached"


class UnknownCertificate(ContractError):
    """No certificate with this id is on the ledger."""

    name = "UnknownCertificate"


class UnknownProposal(ContractError):
    """No proposal has this id."""

    name = "UnknownProposal"


class ZeroAddress(ContractError):
    """The zero address cannot be a member."""

    name = "ZeroAddress"


class AccountRetired(ContractError):
    """The account handed its index to a new key; it can never be a member again."""

    name = "AccountRetired"


class AuthorizationUnchanged(ContractError):
    """The issuer authorisation is already in the wanted state."""

    name = "AuthorizationUnchanged"


class CertificateUndecided(ContractError):
    """The current validators' votes neither activate nor reject the certificate."""

    name = "CertificateUndecided"


class HeldByQuorum(ContractError):
    """A validator quorum suspended the certificate: only a quorum resumes it."""

    name = "HeldByQuorum"


class MalformedCertificate(ContractError):
    """The DER does not parse as far as the SubjectPublicKeyInfo."""

    name = "MalformedCertificate"


class NotEntitled(ContractError):
    """The certificate names another member's organization; no issuer authorised."""

    name = "NotEntitled"


class NotRevokedForKeyCompromise(ContractError):
    """The certificate is not revoked for keyCompromise (reason 1)."""

    name = "NotRevokedForKeyCompromise"


class OrganizationNotCanonical(ContractError):
    """The organization name is not canonical (white space, control, mark)."""

    name = "OrganizationNotCanonical"


class ProposalExpired(ContractError):
    """The proposal's deadline passed."""

    name = "ProposalExpired"


class StaleAnchor(ContractError):
    """A vote's anchor block is not on this chain (reorganized away) or too old: what it
    decided was read on another chain, and the validator decides it again."""

    name = "StaleAnchor"


class SubmitterNotActive(ContractError):
    """The submitter is no longer an active submitter: it never becomes active."""

    name = "SubmitterNotActive"


CONTRACT_ERRORS: dict[str, type[ContractError]] = {
    "AccountRetired": AccountRetired,
    "AlreadyAMember": AlreadyAMember,
    "AlreadyApproved": AlreadyApproved,
    "AlreadyVoted": AlreadyVoted,
    "AuthorizationUnchanged": AuthorizationUnchanged,
    "CertificateAlreadyRegistered": CertificateAlreadyRegistered,
    "CertificateUndecided": CertificateUndecided,
    "EmptyBatch": EmptyBatch,
    "EmptyCertificate": EmptyCertificate,
    "HeldByQuorum": HeldByQuorum,
    "InvalidOrganization": InvalidOrganization,
    "InvalidRevocationReason": InvalidRevocationReason,
    "InvalidRoles": InvalidRoles,
    "InvalidStatus": InvalidStatus,
    "InvalidThreshold": InvalidThreshold,
    "InvalidValidity": InvalidValidity,
    "LengthMismatch": LengthMismatch,
    "MalformedCertificate": MalformedCertificate,
    "NotAMember": NotAMember,
    "NotASubmitter": NotASubmitter,
    "NotAValidator": NotAValidator,
    "NotCertificateOwner": NotCertificateOwner,
    "NotEntitled": NotEntitled,
    "NotProposer": NotProposer,
    "NotRevokedForKeyCompromise": NotRevokedForKeyCompromise,
    "OrganizationNotCanonical": OrganizationNotCanonical,
    "OrganizationTaken": OrganizationTaken,
    "ProposalClosed": ProposalClosed,
    "ProposalExpired": ProposalExpired,
    "QuorumNotReached": QuorumNotReached,
    "StaleAnchor": StaleAnchor,
    "SubmitterNotActive": SubmitterNotActive,
    "TooManyMembers": TooManyMembers,
    "UnknownCertificate": UnknownCertificate,
    "UnknownProposal": UnknownProposal,
    "ZeroAddress": ZeroAddress,
}
