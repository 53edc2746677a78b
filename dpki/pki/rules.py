"""The rules :func:`dpki.pki.policy.evaluate` applies: each adds the violations it finds.

Every rule reads :class:`~dpki.pki.facts.CertificateFacts` (and the issuer candidates) and
writes ``found[code] = sentence``; the decisions they make are written down in
:mod:`dpki.pki.policy`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from dpki.pki.candidates import IssuerLookup, is_ca_issuer
from dpki.pki.facts import CertificateFacts
from dpki.pki.keys import key_facts, verifies_under
from dpki.pki.names import dn, normalize_organization

if TYPE_CHECKING:
    from dpki.pki.policy import Policy

__all__ = [
    "UNDERSTOOD_EXTENSIONS",
    "check_identity",
    "check_issuer",
    "check_key",
    "check_organization",
    "check_profile",
    "check_signature_hash",
    "check_validity",
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


_SIGNING_USAGES: Final = ("digitalSignature", "contentCommitment", "keyCertSign", "cRLSign")


def check_issuer(
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
        key=lambda c: (c.active is False, not is_ca_issuer(c.certificate)),
    )
    if best.active is False:
        found["ISSUER_NOT_ACTIVE"] = (
            f"got issuer {dn(best.certificate.subject)} that is on the ledger "
            "but not active; want an active issuer"
        )
    if not is_ca_issuer(best.certificate):
        found["ISSUER_NOT_CA"] = (
            f"got issuer {dn(best.certificate.subject)} without "
            "basicConstraints cA=TRUE and keyUsage keyCertSign; want a CA certificate"
        )
    _check_issuer_key(best.certificate, policy, found)
    return True, False


def check_organization(
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


def check_identity(f: CertificateFacts, found: dict[str, str]) -> None:
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


def check_validity(
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


def check_key(f: CertificateFacts, policy: Policy, found: dict[str, str]) -> None:
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


def check_signature_hash(f: CertificateFacts, policy: Policy, found: dict[str, str]) -> None:
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


def check_profile(f: CertificateFacts, found: dict[str, str]) -> None:
    """Check the RFC 5280 profile: v3, understood critical extensions, cA with keyCertSign."""
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


# -- helpers ----------------------------------------------------------------------------


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
