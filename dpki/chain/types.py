"""The registry's records as Python values: submissions, statuses, members, proposals."""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from typing import TypeAlias

from eth_utils.address import is_checksum_address, to_checksum_address

from dpki.errors import ConfigError
from dpki.pki.codes import Status

__all__ = [
    "CERT_ID_PATTERN",
    "NO_EXPIRY",
    "PROPOSAL_LIFETIME",
    "ROLE_SUBMITTER",
    "ROLE_VALIDATOR",
    "CertificateStatus",
    "Member",
    "MemberSpec",
    "Proposal",
    "ProposalKind",
    "Submission",
    "address_problem",
    "as_cert_id",
    "checked_address",
    "parse_cert_id",
]

ROLE_VALIDATOR = 1
ROLE_SUBMITTER = 2
NO_EXPIRY = 253402300799  # 9999-12-31T23:59:59Z, IEEE 802.1AR "no well-defined expiration"
#: seconds a proposal stays open (the contract's PROPOSAL_LIFETIME)
PROPOSAL_LIFETIME = 7 * 24 * 3600

#: the number and hash of the newest block a validator's decision read: an anchored vote
#: counts only on a chain that has that block (``endorseBatchAt``, ``rejectBatchAt``)
Anchor: TypeAlias = tuple[int, bytes]


class ProposalKind(enum.IntEnum):
    """What a governance proposal does."""

    ADD_MEMBER = 0
    REMOVE_MEMBER = 1
    SET_ROLES = 2
    SET_THRESHOLD = 3
    REVOKE = 4
    SUSPEND = 5
    RESUME = 6
    AUTHORIZE_ISSUER = 7
    DEAUTHORIZE_ISSUER = 8


@dataclass(frozen=True)
class Submission:
    """A certificate as submitted: the DER and the fields validators check against it."""

    der: bytes
    not_before: int
    not_after: int
    key_hash: bytes
    org_hash: bytes

    @property
    def cert_id(self) -> bytes:
        """Return sha256(DER), the id the contract will compute."""
        return hashlib.sha256(self.der).digest()

    def as_tuple(self) -> tuple[bytes, int, int, bytes, bytes]:
        """Return the ABI tuple."""
        return (self.der, self.not_before, self.not_after, self.key_hash, self.org_hash)


@dataclass(frozen=True)
class CertificateStatus:
    """The ledger record of one certificate (``statusOf``)."""

    cert_id: bytes
    status: Status
    submitter: str | None
    not_before: int
    not_after: int
    updated_at: int
    endorsements: int
    rejections: int
    reason: int
    replaces: bytes | None

    def valid_at(self, when: int) -> bool:
        """Return True when Active and ``when`` (unix seconds) is inside the window."""
        return self.status is Status.ACTIVE and self.not_before <= when <= self.not_after


@dataclass(frozen=True)
class Member:
    """A current consortium member."""

    address: str
    organization: str
    roles: int
    index: int

    @property
    def is_validator(self) -> bool:
        """Return True when the member holds the VALIDATOR role."""
        return bool(self.roles & ROLE_VALIDATOR)

    @property
    def is_submitter(self) -> bool:
        """Return True when the member holds the SUBMITTER role."""
        return bool(self.roles & ROLE_SUBMITTER)


@dataclass(frozen=True)
class MemberSpec:
    """A genesis member for deployment."""

    address: str
    organization: str
    roles: int = ROLE_VALIDATOR | ROLE_SUBMITTER


@dataclass(frozen=True)
class Proposal:
    """A governance proposal."""

    proposal_id: int
    kind: ProposalKind
    proposer: str
    executed: bool
    cancelled: bool
    approvals: int
    account: str
    roles: int
    threshold: int
    cert_id: bytes
    reason: int
    organization: str
    deadline: int = 0


#: A certificate id as text, the one rule every surface applies (JSON API, web page, OCSP
#: helpers, command line): 64 hex digits (the SHA-256 of the DER) in any case, optionally
#: after ``0x`` or ``0X``, and nothing else: no spaces, no trailing newline. In ECMA-262 form
#: for OpenAPI schemas, where ``$`` is the end of the text (Python's ``$`` also matches before
#: a final newline, hence :func:`parse_cert_id` uses ``fullmatch``).
CERT_ID_PATTERN = r"^(0[xX])?[0-9a-fA-F]{64}$"
_CERT_ID = re.compile(r"(?:0[xX])?[0-9a-fA-F]{64}")


def parse_cert_id(text: str) -> str | None:
    """Return an id given as text in canonical form (64 lowercase hex digits), or None."""
    if _CERT_ID.fullmatch(text) is None:
        return None
    return text[-64:].lower()


def as_cert_id(value: str | bytes) -> bytes:
    """Return a 32-byte certificate id from bytes or text (see :data:`CERT_ID_PATTERN`)."""
    if isinstance(value, bytes | bytearray):
        if len(value) != 32:
            raise ConfigError(f"a certificate id is 32 bytes, got {len(value)}")
        return bytes(value)
    canonical = parse_cert_id(value)
    if canonical is None:
        raise ConfigError(
            f"a certificate id is 64 hex digits (sha256 of the DER, 0x optional), got {value!r}"
        )
    return bytes.fromhex(canonical)


_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def checked_address(value: str, what: str = "address") -> str:
    """Return ``value`` as a checksummed address; refuse anything else with a ConfigError.

    All-lowercase or all-uppercase hex carries no checksum and is taken as written; mixed
    case is an EIP-55 checksum and must be right (a typo in it is caught, not obeyed).
    """
    problem = address_problem(value)
    if problem:
        raise ConfigError(f"{what}: {problem}")
    return str(to_checksum_address(value.strip()))


def address_problem(value: str) -> str | None:
    """Say what is wrong with ``value`` as an address (None: nothing)."""
    text = value.strip()
    if not _HEX_ADDRESS.fullmatch(text):
        return f"got {value!r}; want 0x and 40 hex digits"
    digits = text[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(text):
        return (
            f"{value!r} has mixed case but a wrong EIP-55 checksum (a typo?); "
            "copy the address again, or write it all in lowercase"
        )
    return None
