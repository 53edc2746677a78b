"""Public keys and signatures: what a key is, whether a signature verifies under it.

Issuer keys and their facts are kept for the certificates asked about most recently
(validators and the indexer ask about the same issuers again and again), and what
``cryptography`` makes of a signature AlgorithmIdentifier is kept per encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final, TypeAlias, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import (
    dsa,
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
    x448,
    x25519,
)
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from dpki.errors import ParseError
from dpki.pki.der import DECODE_ERRORS, Layout, describe, explicit_ec_parameters, tbs_parts

__all__ = [
    "KeyDescription",
    "KeyFacts",
    "key_description",
    "key_facts",
    "signature_algorithm_of",
    "verifies_under",
    "verifies_under_layout",
    "verify_with_key",
]

_DER: Final = Encoding.DER


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """What the key rules read about a public key (a certificate's, or its issuer's).

    ``explicit_parameters`` says an EC key spells its curve out (specifiedCurve or
    implicitCurve) instead of naming it, which RFC 5480 2.1.1 forbids in certificates.
    """

    algorithm: str
    size: int | None
    curve: str | None
    explicit_parameters: bool = False


#: a key's algorithm, size in bits and curve name (see CertificateFacts)
KeyDescription: TypeAlias = tuple[str, int | None, str | None]


@lru_cache(maxsize=1024)
def key_facts(certificate: x509.Certificate) -> KeyFacts | None:
    """Return the facts of ``certificate``'s public key (None: it does not decode).

    Kept for the most recent certificates asked about: issuers are asked about again and
    again.
    """
    try:
        spki = tbs_parts(certificate.public_bytes(_DER))[2]
        _, (algorithm, size, curve) = key_description(certificate, "issuer")
    except (*DECODE_ERRORS, IndexError, ParseError):
        return None
    return KeyFacts(algorithm, size, curve, explicit_ec_parameters(spki))


def verifies_under(certificate: x509.Certificate, issuer: x509.Certificate) -> bool | None:
    """Say whether ``certificate``'s signature verifies under ``issuer``'s public key.

    ``None`` means it could not be tried: the issuer's subject is not the certificate's
    issuer, or the key or the signature algorithm is not supported. Unlike
    ``verify_directly_issued_by`` this checks SHA-1 signatures too (the policy rejects
    them separately, with a code that says so).
    """
    try:
        if certificate.issuer != issuer.subject:
            return None
        key = _public_key(issuer)
        hash_algorithm = certificate.signature_hash_algorithm
    except (*DECODE_ERRORS, IndexError):
        return None
    return verify_with_key(certificate, key, hash_algorithm)


def verifies_under_layout(
    certificate: x509.Certificate, layout: Layout, issuer: x509.Certificate, issuer_subject: bytes
) -> bool | None:
    """:func:`verifies_under` for a certificate whose DER layout is at hand: the same answer.

    ``issuer_subject`` is the issuer's subject as encoded. When it is the certificate's issuer
    byte for byte, the names are equal without building cryptography's objects, and the
    signature is verified over the TBSCertificate as encoded with the algorithm read once
    per encoding; anything else goes through :func:`verifies_under`. An indexer links
    thousands of certificates to their issuers this way."""
    if layout.issuer != issuer_subject:
        return verifies_under(certificate, issuer)
    algorithm = signature_algorithm_of(certificate, layout.signature_algorithm)
    if algorithm is None:
        return verifies_under(certificate, issuer)
    try:
        key = _public_key(issuer)
    except (*DECODE_ERRORS, IndexError):
        return None
    return verify_with_key(certificate, key, algorithm[1], tbs=layout.tbs, parameters=algorithm[2])


@lru_cache(maxsize=1024)
def _public_key(certificate: x509.Certificate) -> PublicKeyTypes:
    """Return ``certificate.public_key()``, kept for the issuers asked about most recently."""
    return certificate.public_key()


#: the kind of each public key class seen (isinstance on cryptography's ABCs is slow)
_KINDS: dict[type, str] = {}


def _kind(key: PublicKeyTypes) -> str:
    """Return ``EC``, ``RSA``, ``Ed25519``, ``Ed448``, ``DSA``, ``X25519``, ``X448`` or ``""``."""
    kind = _KINDS.get(type(key))
    if kind is None:
        kinds = (
            (ec.EllipticCurvePublicKey, "EC"),
            (rsa.RSAPublicKey, "RSA"),
            (ed25519.Ed25519PublicKey, "Ed25519"),
            (ed448.Ed448PublicKey, "Ed448"),
            (dsa.DSAPublicKey, "DSA"),
            (x25519.X25519PublicKey, "X25519"),
            (x448.X448PublicKey, "X448"),
        )
        kind = next((name for cls, name in kinds if isinstance(key, cls)), "")
        _KINDS[type(key)] = kind
    return kind


#: the size in bits of the keys whose kind says it
_SIZES: Final = {"Ed25519": 256, "Ed448": 456, "X25519": 256, "X448": 448}


def key_description(
    cert: x509.Certificate, name: str
) -> tuple[PublicKeyTypes | None, KeyDescription]:
    """Return ``cert``'s public key (None: it cannot verify) and its description."""
    try:
        key = cert.public_key()
    except UnsupportedAlgorithm:
        return None, (f"unsupported:{cert.public_key_algorithm_oid.dotted_string}", None, None)
    except (ValueError, TypeError) as exc:
        raise ParseError(
            f"{name}: got a SubjectPublicKeyInfo that does not decode ({describe(exc)}); "
            "want a well-formed public key"
        ) from None
    kind = _kind(key)
    if kind == "EC":
        curve = cast(ec.EllipticCurvePublicKey, key).curve
        return key, ("EC", curve.key_size, curve.name)
    if kind in ("RSA", "DSA"):
        return key, (kind, cast(rsa.RSAPublicKey | dsa.DSAPublicKey, key).key_size, None)
    if kind in ("Ed25519", "Ed448"):
        return key, (kind, _SIZES[kind], None)
    if kind:  # X25519, X448: key agreement keys, they verify nothing
        return None, (kind, _SIZES[kind], None)
    return None, (f"unsupported:{cert.public_key_algorithm_oid.dotted_string}", None, None)


def verify_with_key(
    cert: x509.Certificate,
    key: PublicKeyTypes,
    hash_algorithm: hashes.HashAlgorithm | None,
    *,
    tbs: bytes | None = None,
    parameters: object = None,
) -> bool | None:
    """Verify ``cert``'s signature with an already loaded key (what verifies_under does).

    ``tbs`` and ``parameters``, when given, are ``cert``'s TBSCertificate as encoded and
    its signature algorithm parameters (read once by the caller). ``None``: the key does
    not fit the signature algorithm, or it is not supported.
    """
    signature = cert.signature
    if tbs is None:
        tbs = cert.tbs_certificate_bytes
    kind = _kind(key)
    try:
        if kind == "EC":
            params = cert.signature_algorithm_parameters if parameters is None else parameters
            if not isinstance(params, ec.ECDSA):
                return None
            cast(ec.EllipticCurvePublicKey, key).verify(signature, tbs, params)
        elif kind == "RSA":
            params = cert.signature_algorithm_parameters if parameters is None else parameters
            if not isinstance(params, padding.PKCS1v15 | padding.PSS) or hash_algorithm is None:
                return None
            cast(rsa.RSAPublicKey, key).verify(signature, tbs, params, hash_algorithm)
        elif kind in ("Ed25519", "Ed448"):
            if hash_algorithm is not None:
                return None
            cast(ed25519.Ed25519PublicKey | ed448.Ed448PublicKey, key).verify(signature, tbs)
        elif kind == "DSA":
            if hash_algorithm is None:
                return None
            cast(dsa.DSAPublicKey, key).verify(signature, tbs, hash_algorithm)
        else:
            return None
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return True


_SignatureAlgorithm: TypeAlias = tuple[str, hashes.HashAlgorithm | None, object]


#: signature AlgorithmIdentifier (as encoded) -> what cryptography makes of it
_SIGNATURE_ALGORITHMS: dict[bytes, _SignatureAlgorithm] = {}
#: encodings up to this size are kept (ECDSA's are 12 bytes, RSA-PSS's ~65): a member
#: cannot make the table hold large ones
_KEPT_ALGORITHM_BYTES: Final = 128


def signature_algorithm_of(cert: x509.Certificate, encoded: bytes) -> _SignatureAlgorithm | None:
    """Return (dotted OID, hash, parameters) of ``cert``'s signature algorithm, or None.

    A pure function of the encoded AlgorithmIdentifier, so it is kept per encoding; None
    (the reference path decides) when cryptography does not know the algorithm.
    """
    found = _SIGNATURE_ALGORITHMS.get(encoded)
    if found is None:
        try:
            found = (
                cert.signature_algorithm_oid.dotted_string,
                cert.signature_hash_algorithm,
                cert.signature_algorithm_parameters,
            )
        except (UnsupportedAlgorithm, ValueError, TypeError):
            return None
        if len(_SIGNATURE_ALGORITHMS) < 256 and len(encoded) <= _KEPT_ALGORITHM_BYTES:
            _SIGNATURE_ALGORITHMS[encoded] = found
    return found
