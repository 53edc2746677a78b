"""The code tables: certificate statuses, rejection reasons and RFC 5280 revocation reasons.

One table per code set. The policy, the validators, the command line, the inquiry node's
JSON, its web page and its OCSP responder all read their names from here, so every surface
shows the same label for the same number.
"""

from __future__ import annotations

import enum
from typing import Final

from dpki.errors import PolicyError

__all__ = [
    "CRL_REASONS",
    "REJECTION_REASONS",
    "REVOCATION_REASONS",
    "Status",
    "reason_label",
    "rejection_name",
]


class Status(enum.IntEnum):
    """Certificate status as the contract stores it."""

    NONE = 0
    PENDING = 1
    ACTIVE = 2
    SUSPENDED = 3
    REVOKED = 4
    SUPERSEDED = 5
    REJECTED = 6

    @property
    def label(self) -> str:
        """Return the lower-case name used in output (``unknown`` for NONE)."""
        return "unknown" if self is Status.NONE else self.name.lower()


#: stable numbers of the rejection reasons, as validators put them on the ledger when they
#: reject; 0 is "unspecified". 1-14 are policy violations (in the order the policy reports
#: them); MALFORMED (15) is for submissions whose bytes do not parse; SUBMISSION_MISMATCH (16)
#: for submissions whose declared fields (window, key hash, organization hash) disagree with
#: their DER; 22-24 are policy violations added later (the issuer's key, keyCertSign
#: without cA, explicit curve parameters).
REJECTION_REASONS: Final[dict[str, int]] = {
    "ORG_MISMATCH": 1,
    "KU_SIGNATURE_WITHOUT_IDENTITY": 2,
    "BAD_SIGNATURE": 3,
    "UNKNOWN_ISSUER": 4,
    "ISSUER_NOT_ACTIVE": 5,
    "ISSUER_NOT_CA": 6,
    "EXPIRED": 7,
    "NOT_YET_VALID": 8,
    "VALIDITY_TOO_LONG": 9,
    "WEAK_KEY": 10,
    "WEAK_SIGNATURE_HASH": 11,
    "NOT_V3": 12,
    "UNKNOWN_CRITICAL_EXTENSION": 13,
    "CA_WITHOUT_KEYCERTSIGN": 14,
    "MALFORMED": 15,
    "SUBMISSION_MISMATCH": 16,
    # 17-21 are kept for the contract's entitlement codes (issue 10)
    "WEAK_ISSUER_KEY": 22,
    "KEYCERTSIGN_WITHOUT_CA": 23,
    "EXPLICIT_CURVE_PARAMETERS": 24,
}
_REJECTION_NAMES: Final = {number: name for name, number in REJECTION_REASONS.items()}

#: RFC 5280 CRLReason names by number (7 is unused; certificateHold is a suspension). The
#: names are also the values of ``cryptography.x509.ReasonFlags``.
CRL_REASONS: Final[dict[int, str]] = {
    0: "unspecified",
    1: "keyCompromise",
    2: "cACompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
    6: "certificateHold",
    8: "removeFromCRL",
    9: "privilegeWithdrawn",
    10: "aACompromise",
}

#: the CRLReason names a revocation may give (certificateHold is ``suspend``; removeFromCRL
#: is ``resume``)
REVOCATION_REASONS: Final[dict[str, int]] = {
    name: number for number, name in CRL_REASONS.items() if number not in (6, 8)
}


def rejection_name(number: int) -> str:
    """Return the rejection reason with this ledger number (0 is ``UNSPECIFIED``)."""
    if number == 0:
        return "UNSPECIFIED"
    try:
        return _REJECTION_NAMES[number]
    except KeyError:
        raise PolicyError(
            f"got reason number {number}; want 0 or one of 1..{max(_REJECTION_NAMES)}"
        ) from None


def reason_label(status: int, reason: int) -> str | None:
    """Return the reason of a status in words, as every surface shows it.

    None for pending and active certificates and for a rejection without a reason; the
    rejection reason's name for a rejection; the CRLReason name otherwise; the number itself
    when the table has no name for it.
    """
    if status in (Status.NONE, Status.PENDING, Status.ACTIVE):
        return None
    if status == Status.REJECTED:
        return _REJECTION_NAMES.get(reason, str(reason)) if reason else None
    return CRL_REASONS.get(reason, str(reason))
