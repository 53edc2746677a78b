"""The registry's custom errors in words: what happened and what to do next.

One table (:data:`CONTRACT_ERROR_WORDS`), as certbot keeps its ACME errors in one map: each
custom error of the contract has a sentence whose ``{fields}`` are the error's arguments
(ids and addresses in hex, statuses by name, revocation reasons by their RFC 5280 name).
A new custom error needs one line here; a test checks that every error of the ABI has one.
:func:`explain` fills it in; :func:`dpki.chain.abi.decode_revert` puts it in the exception's
message, which the command line prints.
"""

from __future__ import annotations

import enum
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["CONTRACT_ERROR_WORDS", "STATUS_NEXT_STEP", "explain"]

_QUORUM = "dpki propose revoke|suspend|resume {certId} --as ORG, then validators approve it"

#: each custom error of the registry in words, with the next step where there is one
CONTRACT_ERROR_WORDS: Final[dict[str, str]] = {
    "AccountRetired": "{account} handed its place to a new key and can never be a member again",
    "AuthorizationUnchanged": "the authorisation of issuer {caCertId} for organization hash "
    "{orgHash} is already {authorized} (see dpki authorizations)",
    "CertificateUndecided": "certificate {certId} has {endorsements} endorsements and "
    "{rejections} rejections by current validators, which neither activate nor reject it yet: "
    "wait for more votes, then dpki settle {certId} --as ORG",
    "HeldByQuorum": "a validator quorum suspended certificate {certId}: only a quorum resumes "
    "it (dpki propose resume {certId} --as ORG), and it cannot be renewed meanwhile",
    "MalformedCertificate": "certificate {certId} does not parse as far as its public key "
    "(dpki check says why)",
    "NotEntitled": "certificate {certId} names another member's organization (hash {orgHash}) "
    "and {submitter} has no issuer that member authorised for it: that member can authorise "
    "one with dpki authorize-issuer CA-FILE --as ORG",
    "NotRevokedForKeyCompromise": "certificate {certId} is not revoked for keyCompromise",
    "OrganizationNotCanonical": "the organization name {organization!r} is not in canonical "
    "form at byte {offset} (white space, a control or invisible character, or a combining "
    "mark); the command line normalizes names",
    "ProposalExpired": "proposal {proposalId} expired at {deadline}: propose it again "
    "(dpki propose ...)",
    "StaleAnchor": "the vote was decided on block {anchorBlock} ({anchorHash}), which this "
    "chain does not have (a reorganization replaced it) or which is over 256 blocks old: "
    "decide it again on the chain as it is now",
    "SubmitterNotActive": "certificate {certId} was submitted by {submitter}, which is no "
    "longer a submitting member: it can never become active; dpki withdraw or dpki settle "
    "clears it",
    "AlreadyAMember": "{account} is already a member (see dpki members)",
    "AlreadyApproved": "{validator} already approved proposal {proposalId}; it needs approvals "
    "of other validators (see dpki proposals)",
    "AlreadyVoted": "{validator} already endorsed or rejected certificate {certId}",
    "CertificateAlreadyRegistered": "certificate {certId} is already on the ledger "
    "(see dpki status {certId})",
    "EmptyBatch": "the batch is empty: give at least one certificate",
    "EmptyCertificate": "the certificate is empty (no DER bytes)",
    "InvalidOrganization": "the organization name {organization!r} is not 1 to 64 bytes long",
    "InvalidRevocationReason": "{reason} is not a reason a revocation can give; to put a "
    "certificate on hold use dpki suspend, to lift a hold dpki resume",
    "InvalidRoles": "roles {roles} are not validator, submitter or both",
    "InvalidStatus": "certificate {certId} is {status}, where this is not allowed; {next_step}",
    "InvalidThreshold": "a threshold of {threshold} is not possible with {validators} "
    "validators: it must be 1 to {validators}",
    "InvalidValidity": "notBefore {notBefore} must come before notAfter {notAfter}",
    "LengthMismatch": "the batch's lists differ in length: {expected} and {got}",
    "NotAMember": "{account} is not a current member of the consortium (see dpki members)",
    "NotASubmitter": "{account} does not have the submitter role (see dpki members; "
    "dpki propose set-roles changes roles)",
    "NotAValidator": "{account} does not have the validator role (see dpki members; "
    "dpki propose set-roles changes roles)",
    "NotCertificateOwner": "certificate {certId} was submitted by another member, so "
    f"{{account}} cannot change it alone; a validator quorum can: {_QUORUM}",
    "NotProposer": "only the member that made proposal {proposalId} can cancel it, not {account}",
    "OrganizationTaken": "another member already uses the organization name {organization!r}",
    "ProposalClosed": "proposal {proposalId} was already executed or cancelled "
    "(see dpki proposals)",
    "QuorumNotReached": "proposal {proposalId} has {approvals} approvals of current validators "
    "and needs {threshold}: more validators must run dpki approve {proposalId}",
    "TooManyMembers": "the registry holds at most {max} members over its lifetime",
    "UnknownCertificate": "no certificate {certId} on the ledger (dpki submit puts it there)",
    "UnknownProposal": "no proposal {proposalId} (see dpki proposals)",
    "ZeroAddress": "the zero address cannot be a member",
}

#: what to do about a certificate in a status where the operation was refused
STATUS_NEXT_STEP: Final[dict[str, str]] = {
    "unknown": "submit it first with dpki submit",
    "pending": "validators have not decided it yet: wait (dpki submit --wait) and see "
    "dpki status {certId}",
    "active": "it is in use; dpki status {certId} shows its record",
    "suspended": "resume it first with dpki resume {certId} --as ORG",
    "revoked": "a revocation is final; submit a new certificate",
    "superseded": "it was renewed; act on its renewal (dpki status {certId} names it)",
    "rejected": "a rejection is final; fix the certificate (dpki check) and submit it again",
}


#: arguments that are unix times (shown in ISO 8601 UTC)
_TIMES: Final = frozenset({"notBefore", "notAfter", "deadline"})


def _shown(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, enum.Enum) and hasattr(value, "label"):
        return str(value.label)
    return str(value)


def _fields(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    from dpki.pki.codes import CRL_REASONS, Status  # codes imports dpki.errors

    out: dict[str, Any] = {k: _shown(v) for k, v in args.items()}
    for key in _TIMES & args.keys():
        try:
            moment = datetime.fromtimestamp(int(args[key]), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (ValueError, OverflowError, OSError):
            continue  # a time past what a datetime holds: the number says it
        out[key] = moment
    if isinstance(args.get("authorized"), bool):
        out["authorized"] = "granted" if args["authorized"] else "withdrawn"
    if isinstance(args.get("organization"), str):
        out["organization"] = args["organization"]
    if name == "InvalidRevocationReason" and isinstance(args.get("reason"), int):
        number = args["reason"]
        out["reason"] = f"{CRL_REASONS.get(number, 'reason')} ({number})"
    if "status" in args and isinstance(args["status"], int):
        label = Status(args["status"]).label if args["status"] in set(Status) else "unknown"
        out["status"] = label
        out["next_step"] = STATUS_NEXT_STEP.get(label, "see dpki status {certId}").format_map(out)
    return out


def explain(name: str, args: Mapping[str, Any]) -> str | None:
    """Return a custom error of the registry in words, or None when the table has no entry
    (or the entry names an argument the error does not carry)."""
    words = CONTRACT_ERROR_WORDS.get(name)
    if words is None:
        return None
    fields = _fields(name, args)
    wanted = {f for _, f, _, _ in string.Formatter().parse(words) if f}
    if not wanted <= fields.keys():
        return None
    return words.format_map(fields)
