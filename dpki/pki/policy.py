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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final, TypeAlias

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from dpki.errors import PolicyError
from dpki.pki.codes import REJECTION_REASONS
from dpki.pki.x509 import (
    CertificateFacts,
    dn,
    facts,
    key_facts,
    normalize_organization,
    verifies_under,
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


#: extensions the engine understands when they are marked critical
UNDERSTOOD_EXTENSIONS: Final[frozenset[str]] = frozenset(
    oid.dotted_string
    for oid in (
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.CERTIFICATE_POLICIES,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.POLICY_CONSTRAINTS,
        ExtensionOID.INHIBIT_ANY_POLICY,
    )
)

_CURVE_ALIASES: Final = {
    "P-256": "secp256r1",
    "P-384": "secp384r1",
    "P-521": "secp521r1",
    "prime256v1": "secp256r1",
}
_SIGNING_USAGES: Final = ("digitalSignature", "contentCommitment", "keyCertSign", "cRLSign")


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


@dataclass(frozen=True, slots=True)
class IssuerCandidate:
    """A certificate that may have issued the one being checked.

    ``active`` is the ledger status: ``True`` active, ``False`` on the ledger but not
    active, ``None`` not from the ledger (a file given by the user, trusted as given).
    """

    certificate: x509.Certificate
    active: bool | None = None
    #: ledger id and owning member (submitter) of a candidate from the ledger
    cert_id: bytes | None = None
    owner: str | None = None


#: given the certificate being checked, return the candidate issuers (maybe none)
IssuerLookup: TypeAlias = Callable[[x509.Certificate], Sequence[IssuerCandidate]]


class StaticIssuers:
    """Look issuers up in a fixed set of certificates (for example ``--issuer`` files).

    A candidate's subject DN must equal the child's issuer DN; when the child has an
    authorityKeyIdentifier, candidates whose subjectKeyIdentifier equals it come first.
    """

    def __init__(
        self,
        issuers: Iterable[x509.Certificate | IssuerCandidate],
        *,
        active: bool | None = None,
    ) -> None:
        self._by_subject: dict[x509.Name, list[tuple[IssuerCandidate, bytes | None]]] = {}
        for item in issuers:
            candidate = item if isinstance(item, IssuerCandidate) else IssuerCandidate(item, active)
            ski = _subject_key_identifier(candidate.certificate)
            self._by_subject.setdefault(candidate.certificate.subject, []).append((candidate, ski))

    def __call__(self, certificate: x509.Certificate) -> list[IssuerCandidate]:
        """Return the candidates whose subject is ``certificate``'s issuer."""
        found = self._by_subject.get(certificate.issuer, [])
        if len(found) < 2:
            return [c for c, _ in found]
        aki = authority_key_identifier(certificate)
        return [c for c, ski in sorted(found, key=lambda e: aki is None or e[1] != aki)]


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
        signed_by_issuer, unverifiable = _check_issuer(f, issuers, found, policy)

    if f.self_issued and not signed_by_issuer:
        _check_organization(f, organization, found)
    _check_identity(f, found)
    _check_validity(f, at, policy, found)
    _check_key(f, policy, found)
    _check_signature_hash(f, policy, found)
    if f.version != 3:
        found["NOT_V3"] = f"got an X.509 v{f.version} certificate; want v3"
    unknown = [oid for oid in f.critical_extensions if oid not in UNDERSTOOD_EXTENSIONS]
    if unknown:
        found["UNKNOWN_CRITICAL_EXTENSION"] = (
            f"got critical extension(s) {', '.join(unknown)} that the engine does not "
            "understand; want only understood extensions marked critical"
        )
    if f.ca and (f.key_usage is None or "keyCertSign" not in f.key_usage):
        got = "no keyUsage" if f.key_usage is None else f"keyUsage {_usages(f.key_usage)}"
        found["CA_WITHOUT_KEYCERTSIGN"] = (
            f"got basicConstraints cA=TRUE with {got}; want keyUsage with keyCertSign"
        )
    if not f.ca and f.key_usage is not None and "keyCertSign" in f.key_usage:
        got = "cA=FALSE" if f.has_basic_constraints else "no basicConstraints"
        found["KEYCERTSIGN_WITHOUT_CA"] = (
            f"got keyUsage keyCertSign with {got}; want basicConstraints cA=TRUE "
            "(RFC 5280 4.2.1.9) or no keyCertSign"
        )

    if unverifiable and ("WEAK_KEY" in found or "WEAK_SIGNATURE_HASH" in found):
        # the signature could not be tried because of the key or algorithm: say that once
        del found["BAD_SIGNATURE"]

    if not found:
        return Verdict(ok=True, violations=(), facts=f)
    violations = tuple(Violation(code, found[code]) for code in REJECTION_REASONS if code in found)
    return Verdict(ok=False, violations=violations, facts=f)


# -- rules ------------------------------------------------------------------------------


def _check_issuer(
    f: CertificateFacts, issuers: IssuerLookup | None, found: dict[str, str], policy: Policy
) -> tuple[bool, bool]:
    """Check who signed a certificate that is not self-signed.

    Return (signed by a looked-up issuer, signature could not be tried at all).
    """
    candidates = list(issuers(f.certificate)) if issuers is not None else []
    results = [verifies_under(f.certificate, c.certificate) for c in candidates]
    verified = [c for c, ok in zip(candidates, results, strict=True) if ok]
    if not verified:
        if f.self_issued:
            untried = f.self_signature_valid is None and all(r is None for r in results)
            how = "cannot be checked" if untried else "does not verify"
            found["BAD_SIGNATURE"] = (
                f"got a self-issued certificate ({f.subject or 'empty subject'}) whose "
                f"signature {how} under its own key"
                + (" nor under any known issuer" if candidates else "")
                + "; want a valid self-signature"
            )
            return False, untried
        if candidates:
            found["BAD_SIGNATURE"] = (
                f"got a signature that does not verify under the public key of any of "
                f"{len(candidates)} issuer(s) named {f.issuer}; want one signed by the issuer"
            )
        else:
            found["UNKNOWN_ISSUER"] = (
                f"got a certificate issued by {f.issuer or 'an empty name'}, which is not "
                "known; want a self-signed certificate or a known issuer"
            )
        return False, False
    # prefer an issuer without problems: active (or trusted as given), then a CA
    best = min(
        verified,
        key=lambda c: (c.active is False, not _is_ca_issuer(c.certificate)),
    )
    if best.active is False:
        found["ISSUER_NOT_ACTIVE"] = (
            f"got issuer {dn(best.certificate.subject)} that is on the ledger "
            "but not active; want an active issuer"
        )
    if not _is_ca_issuer(best.certificate):
        found["ISSUER_NOT_CA"] = (
            f"got issuer {dn(best.certificate.subject)} without "
            "basicConstraints cA=TRUE and keyUsage keyCertSign; want a CA certificate"
        )
    _check_issuer_key(best.certificate, policy, found)
    return True, False


def _check_organization(
    f: CertificateFacts, organization: str | None, found: dict[str, str]
) -> None:
    if organization is None or not f.subject_organizations:
        return
    wanted = _normalized(organization)
    for value in f.subject_organizations:
        got = _normalized(value)
        if got is not None and got != wanted:
            found["ORG_MISMATCH"] = (
                f"got a self-signed certificate with subject O={got!r}; want the "
                f"submitter's organization {wanted!r} (or no O)"
            )
            return


def _check_identity(f: CertificateFacts, found: dict[str, str]) -> None:
    if f.subject_common_name or f.subject_organizations or f.subject_alt_names:
        return
    if f.key_usage is None:
        found["KU_SIGNATURE_WITHOUT_IDENTITY"] = (
            "got no subject CN, O or subjectAltName and no keyUsage (any use allowed); "
            "want keyUsage limited to key establishment, or an identity"
        )
        return
    signing = [u for u in _SIGNING_USAGES if u in f.key_usage]
    if signing:
        found["KU_SIGNATURE_WITHOUT_IDENTITY"] = (
            f"got no subject CN, O or subjectAltName with keyUsage {', '.join(signing)}; "
            "want keyUsage limited to key establishment, or an identity"
        )


def _check_validity(
    f: CertificateFacts, at: datetime, policy: Policy, found: dict[str, str]
) -> None:
    skew = policy.clock_skew
    if at - f.not_after > skew:  # differences, so notAfter 9999 cannot overflow
        found["EXPIRED"] = (
            f"got notAfter {_iso(f.not_after)}, before {_iso(at)} (skew {_span(skew)}); "
            "want a certificate that has not expired"
        )
    if f.not_before - at > skew:
        found["NOT_YET_VALID"] = (
            f"got notBefore {_iso(f.not_before)}, after {_iso(at)} (skew {_span(skew)}); "
            "want a certificate that is already valid"
        )
    limit = policy.max_validity
    if limit is not None and f.not_after - f.not_before > limit:
        span = "no expiry" if f.never_expires else _span(f.not_after - f.not_before)
        found["VALIDITY_TOO_LONG"] = f"got a validity period of {span}; want at most {_span(limit)}"


def _check_key(f: CertificateFacts, policy: Policy, found: dict[str, str]) -> None:
    problem = _key_problem(f.key_algorithm, f.key_size, f.key_curve, policy)
    if problem is not None:
        found["WEAK_KEY"] = f"got {problem[0]}; want {problem[1]}"
    if f.key_explicit_parameters:
        found["EXPLICIT_CURVE_PARAMETERS"] = (
            f"got an EC key on {f.key_curve} given by explicit curve parameters; want the "
            "curve named by its OID (RFC 5480 2.1.1)"
        )


def _key_problem(
    algorithm: str, size: int | None, curve: str | None, policy: Policy
) -> tuple[str, str] | None:
    """Return (got, want) when a key breaks the key rules, None when it keeps them."""
    if algorithm not in policy.allowed_key_algorithms:
        return f"a {algorithm} key", f"one of {', '.join(sorted(policy.allowed_key_algorithms))}"
    if algorithm == "RSA" and (size or 0) < policy.min_rsa_bits:
        return f"a {size}-bit RSA key", f"at least {policy.min_rsa_bits} bits"
    if algorithm == "EC" and curve not in policy.allowed_curves:
        allowed = ", ".join(sorted(policy.allowed_curves))
        return f"an EC key on curve {curve}", f"one of {allowed}"
    return None


def _check_issuer_key(issuer: x509.Certificate, policy: Policy, found: dict[str, str]) -> None:
    """Apply the key rules to the key that verified the signature."""
    key = key_facts(issuer)
    if key is None:  # it verified a signature, so it decodes; never expected
        return
    problem = _key_problem(key.algorithm, key.size, key.curve, policy)
    if problem is None and key.explicit_parameters:
        problem = (f"an EC key on {key.curve} given by explicit parameters", "a named curve")
    if problem is not None:
        found["WEAK_ISSUER_KEY"] = (
            f"got a signature by issuer {dn(issuer.subject)} with {problem[0]}; want an "
            f"issuer key with {problem[1]}"
        )


def _check_signature_hash(f: CertificateFacts, policy: Policy, found: dict[str, str]) -> None:
    hash_name = f.signature_hash
    if hash_name is None:
        return
    if hash_name.startswith("unsupported:"):
        found["WEAK_SIGNATURE_HASH"] = (
            f"got signature algorithm {f.signature_algorithm}, which the engine cannot "
            "check; want a supported algorithm with a strong hash (e.g. SHA-256)"
        )
    elif hash_name in policy.forbidden_signature_hashes:
        found["WEAK_SIGNATURE_HASH"] = (
            f"got a signature with {hash_name.upper()}; want a strong hash (e.g. SHA-256)"
        )


# -- helpers ----------------------------------------------------------------------------


_EXTENSION_ERRORS: Final = (
    x509.ExtensionNotFound,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    ValueError,
    TypeError,
)


@lru_cache(maxsize=1024)
def _is_ca_issuer(certificate: x509.Certificate) -> bool:
    """Say whether ``certificate`` has basicConstraints cA=TRUE and keyUsage keyCertSign."""
    try:
        extensions = certificate.extensions
        bc = extensions.get_extension_for_class(x509.BasicConstraints).value
        ku = extensions.get_extension_for_class(x509.KeyUsage).value
    except _EXTENSION_ERRORS:
        return False
    return bc.ca and ku.key_cert_sign


def _subject_key_identifier(certificate: x509.Certificate) -> bytes | None:
    try:
        extensions = certificate.extensions
        return extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except _EXTENSION_ERRORS:
        return None


def authority_key_identifier(certificate: x509.Certificate) -> bytes | None:
    """Return the keyIdentifier of ``certificate``'s authorityKeyIdentifier (None: none)."""
    try:
        extensions = certificate.extensions
        aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except _EXTENSION_ERRORS:
        return None
    return aki.key_identifier


@lru_cache(maxsize=256)
def _normalized(organization: str) -> str | None:
    """Return normalize_organization(organization), kept for the names seen most."""
    return normalize_organization(organization)


def _usages(usages: frozenset[str]) -> str:
    return ", ".join(sorted(usages)) or "(none)"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    days, rest = divmod(seconds, 86400)
    if days and not rest:
        return f"{days} days"
    if days:
        return f"{days} days {rest}s"
    return f"{seconds}s"
