"""The certificate policy: immutable settings, one function, verdicts with stable codes.

:func:`evaluate` checks one certificate at one instant and returns a :class:`Verdict`
listing every :class:`Violation` found (it does not stop at the first). Each violation has
a stable code (``WEAK_KEY``) and a sentence saying what was got and what was wanted;
validators put the code's number from :data:`dpki.pki.codes.REJECTION_REASONS` on the
ledger when they reject a submission.

Decisions written down here so that every validator applies the same rules:

* ``ORG_MISMATCH`` applies to self-issued certificates (issuer DN equals subject DN) that
  no looked-up issuer signed. Both names go through :func:`dpki.pki.x509.normalize_organization`
  (NFC, surrounding Unicode white space stripped) and are then compared exactly (case
  matters). A subject without O (or with an empty O) is not a mismatch; every O attribute
  of the subject must match; with ``organization=None`` the rule is skipped.
* ``KU_SIGNATURE_WITHOUT_IDENTITY``: a subject with no CN, no O and no subjectAltName may
  only establish keys (keyAgreement, keyEncipherment, dataEncipherment, encipherOnly,
  decipherOnly). Any signing bit (digitalSignature, contentCommitment/nonRepudiation,
  keyCertSign, cRLSign) is flagged, and so is an absent keyUsage, which RFC 5280 reads as
  "every use allowed".
* ``CA_WITHOUT_KEYCERTSIGN``: cA=TRUE without keyCertSign, including when keyUsage is
  absent (RFC 5280 4.2.1.3: CA certificates MUST carry keyUsage).
* ``KEYCERTSIGN_WITHOUT_CA``: keyCertSign without basicConstraints cA=TRUE (absent
  basicConstraints included): RFC 5280 4.2.1.9 says the cA bit MUST then be asserted.
* ``EXPLICIT_CURVE_PARAMETERS``: an EC key whose AlgorithmIdentifier spells the curve out
  (specifiedCurve, or implicitCurve) instead of naming it; RFC 5480 2.1.1 forbids both in
  certificates, and the same key would get a second key hash on the ledger.
* ``WEAK_ISSUER_KEY``: the key rules (algorithms, RSA size, curves, named curves) applied
  to the issuer key that verified the signature: a leaf is only as strong as that key.
* ``ISSUER_NOT_CA``: the issuer lacks basicConstraints cA=TRUE, or lacks keyCertSign in
  its keyUsage (an absent keyUsage counts as lacking it, as above).
* ``EXPIRED`` / ``NOT_YET_VALID``: valid while ``notBefore - skew <= at <= notAfter + skew``.
* ``VALIDITY_TOO_LONG`` (only with ``Policy.max_validity``): ``notAfter - notBefore`` above
  the maximum; a no-expiry certificate (99991231235959Z) is not exempt.
* ``WEAK_SIGNATURE_HASH`` also covers signature algorithms the engine cannot name (they
  cannot be checked, so they are not allowed).
* ``UNKNOWN_CRITICAL_EXTENSION``: critical extensions outside
  :data:`UNDERSTOOD_EXTENSIONS`. nameConstraints is deliberately not in it: the engine
  does not apply name constraints to the certificates a CA issues, so it must not claim
  to understand them.
* A self-issued certificate whose signature does not verify under its own key is checked
  against the looked-up issuers (a key rollover certificate); if none verifies it either,
  the result is ``BAD_SIGNATURE``.
* Issuers are not evaluated themselves (their validity, their own issuer): that is chain
  work. Only "active on the ledger", "is a CA" and "signed this" are checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from cryptography import x509

from dpki.errors import PolicyError
from dpki.pki.candidates import (
    IssuerCandidate,
    IssuerLookup,
    StaticIssuers,
    authority_key_identifier,
)
from dpki.pki.codes import REJECTION_REASONS
from dpki.pki.facts import CertificateFacts, facts
from dpki.pki.rules import (
    UNDERSTOOD_EXTENSIONS,
    check_identity,
    check_issuer,
    check_key,
    check_organization,
    check_profile,
    check_signature_hash,
    check_validity,
)

__all__ = [
    "DEFAULT",
    "UNDERSTOOD_EXTENSIONS",
    "IssuerCandidate",
    "IssuerLookup",
    "Policy",
    "StaticIssuers",
    "Verdict",
    "Violation",
    "authority_key_identifier",
    "evaluate",
]


_CURVE_ALIASES: Final = {
    "P-256": "secp256r1",
    "P-384": "secp384r1",
    "P-521": "secp521r1",
    "prime256v1": "secp256r1",
}


@dataclass(frozen=True, slots=True)
class Policy:
    """The policy settings; the defaults are the consortium's baseline.

    ``allowed_curves`` takes ``cryptography`` curve names or the NIST aliases
    (``P-256``); ``forbidden_signature_hashes`` takes hash names as ``cryptography``
    spells them (``sha1``).
    """

    min_rsa_bits: int = 2048
    allowed_key_algorithms: frozenset[str] = frozenset({"RSA", "EC", "Ed25519", "Ed448"})
    allowed_curves: frozenset[str] = frozenset({"secp256r1", "secp384r1", "secp521r1"})
    forbidden_signature_hashes: frozenset[str] = frozenset({"md2", "md4", "md5", "sha1"})
    clock_skew: timedelta = timedelta(minutes=5)
    max_validity: timedelta | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.min_rsa_bits, int) or self.min_rsa_bits < 0:
            raise PolicyError(f"got min_rsa_bits={self.min_rsa_bits!r}; want an int >= 0")
        if not isinstance(self.clock_skew, timedelta) or self.clock_skew < timedelta(0):
            raise PolicyError(f"got clock_skew={self.clock_skew!r}; want a timedelta >= 0")
        if self.max_validity is not None and (
            not isinstance(self.max_validity, timedelta) or self.max_validity <= timedelta(0)
        ):
            raise PolicyError(
                f"got max_validity={self.max_validity!r}; want None or a timedelta > 0"
            )
        for name in ("allowed_key_algorithms", "allowed_curves", "forbidden_signature_hashes"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise PolicyError(f"got {name}={value!r}; want a set of names")
        curves = frozenset(_CURVE_ALIASES.get(c, c) for c in self.allowed_curves)
        object.__setattr__(self, "allowed_key_algorithms", frozenset(self.allowed_key_algorithms))
        object.__setattr__(self, "allowed_curves", curves)
        object.__setattr__(
            self, "forbidden_signature_hashes", frozenset(self.forbidden_signature_hashes)
        )


#: the baseline policy
DEFAULT: Final = Policy()


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: a stable code and a sentence saying what was got and wanted."""

    code: str
    message: str

    @property
    def number(self) -> int:
        """Return the ledger number of the code."""
        return REJECTION_REASONS[self.code]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of evaluating one certificate."""

    ok: bool
    violations: tuple[Violation, ...]
    facts: CertificateFacts = field(repr=False)

    @property
    def codes(self) -> tuple[str, ...]:
        """Return the violation codes, in table order."""
        return tuple(v.code for v in self.violations)


def evaluate(
    certificate: x509.Certificate | CertificateFacts,
    *,
    organization: str | None,
    at: datetime,
    issuers: IssuerLookup | None = None,
    policy: Policy = DEFAULT,
) -> Verdict:
    """Check one certificate against the policy at instant ``at`` (aware, any zone).

    ``organization`` is the submitter's organization (``None``: skip ORG_MISMATCH);
    ``issuers`` finds candidate issuers for certificates that are not self-signed.
    Raises ParseError for a certificate whose fields do not decode and PolicyError for a
    naive ``at``.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise PolicyError(f"got a naive time {at.isoformat()}; want an aware UTC datetime")
    f = certificate if isinstance(certificate, CertificateFacts) else facts(certificate)
    found: dict[str, str] = {}

    signed_by_issuer = unverifiable = False
    if not f.is_self_signed:
        signed_by_issuer, unverifiable = check_issuer(f, issuers, found, policy)

    if f.self_issued and not signed_by_issuer:
        check_organization(f, organization, found)
    check_identity(f, found)
    check_validity(f, at, policy, found)
    check_key(f, policy, found)
    check_signature_hash(f, policy, found)
    check_profile(f, found)

    if unverifiable and ("WEAK_KEY" in found or "WEAK_SIGNATURE_HASH" in found):
        # the signature could not be tried because of the key or algorithm: say that once
        del found["BAD_SIGNATURE"]

    if not found:
        return Verdict(ok=True, violations=(), facts=f)
    violations = tuple(Violation(code, found[code]) for code in REJECTION_REASONS if code in found)
    return Verdict(ok=False, violations=violations, facts=f)
