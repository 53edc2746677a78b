"""Load X.509 certificates (PEM or DER) and reduce them to the facts the policy reads.

Everything a submitter writes to the ledger about a certificate is derived here, so every
derivation is deterministic and written down:

* certificate id: ``sha256(DER).hexdigest()`` over the exact DER bytes that were read
  (for PEM, the base64-decoded body of the ``CERTIFICATE`` block);
* key hash: ``sha256`` over the DER ``SubjectPublicKeyInfo`` exactly as it is encoded
  inside the certificate (not re-encoded by a crypto library);
* organization hash: see :func:`organization_hash`;
* validity window: see :func:`validity_seconds`.

Malformed input raises :class:`~dpki.errors.ParseError`, never a ``cryptography`` or
``ValueError`` exception. :func:`parse_certificate` is the one boundary every byte string
from the ledger (or a file) crosses: whatever the bytes are, it returns the facts or raises
ParseError, so validators, indexers and commands decide ``MALFORMED`` and go on.

Things that parse but that the engine cannot use (an unknown
key algorithm, an unsupported signature algorithm, an unknown critical extension) are
recorded as facts and become policy violations instead.

The work is split by concern: :mod:`dpki.pki.sources` (files, PEM blocks, one DER),
:mod:`dpki.pki.der` (where a certificate's parts are), :mod:`dpki.pki.names`,
:mod:`dpki.pki.extensions`, :mod:`dpki.pki.keys` (keys and signatures) and
:mod:`dpki.pki.facts`. This module is the boundary, and keeps the names the rest of DPKI
imports from it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dpki.errors import ParseError
from dpki.pki.der import describe, reraise_interrupts, spki_key_bits
from dpki.pki.facts import NO_EXPIRY, CertificateFacts, KeyFacts, facts
from dpki.pki.keys import key_facts, verifies_under
from dpki.pki.names import dn, name_facts, normalize_organization, organization_hash
from dpki.pki.sources import MAX_INPUT_BYTES, read_source, split_der

__all__ = [
    "MAX_INPUT_BYTES",
    "NO_EXPIRY",
    "CertificateFacts",
    "KeyFacts",
    "cert_id",
    "dn",
    "facts",
    "key_facts",
    "load_certificate",
    "load_certificates",
    "load_facts",
    "name_facts",
    "normalize_organization",
    "ocsp_hashes",
    "organization_hash",
    "parse_certificate",
    "read_source",
    "spki_key_bits",
    "split_der",
    "validity_seconds",
    "verifies_under",
]


_DER: Final = Encoding.DER


def cert_id(der: bytes) -> str:
    """Return the certificate id: the lowercase hex SHA-256 of its DER encoding."""
    return hashlib.sha256(der).hexdigest()


def validity_seconds(certificate_facts: CertificateFacts) -> tuple[int, int]:
    """Return (notBefore, notAfter) as integer Unix seconds, as the ledger stores them.

    The no-expiry value 99991231235959Z becomes 253402300799.
    """
    return (
        int(certificate_facts.not_before.timestamp()),
        int(certificate_facts.not_after.timestamp()),
    )


def load_certificate(der: bytes, *, name: str = "input") -> x509.Certificate:
    """Parse one DER certificate; raise ParseError if it does not parse (nothing else)."""
    try:
        return x509.load_der_x509_certificate(der)
    except BaseException as exc:
        reraise_interrupts(exc)
        raise ParseError(
            f"{name}: got {len(der)} bytes of DER that do not parse as an X.509 certificate "
            f"({describe(exc)}); want a DER-encoded RFC 5280 certificate"
        ) from None


def parse_certificate(der: bytes, *, name: str = "input") -> CertificateFacts:
    """Turn DER bytes into certificate facts; raise ParseError, and only that, otherwise.

    The parse boundary for bytes nobody vouches for (ledger event data, files): every
    part the policy, the validators and the indexes read later is decoded here, and any
    exception ``cryptography`` raises on hostile input (``InvalidVersion``, ``ValueError``,
    ``TypeError``, ``OverflowError``, a Rust panic, ...) becomes a ParseError, which
    validators decide as ``MALFORMED``.
    """
    try:
        return facts(load_certificate(der, name=name), der=der, name=name)
    except ParseError:
        raise
    except BaseException as exc:
        reraise_interrupts(exc)
        raise ParseError(
            f"{name}: got a certificate that does not decode ({type(exc).__name__}: "
            f"{describe(exc)}); want a well-formed RFC 5280 certificate"
        ) from None


def load_certificates(source: bytes | str | os.PathLike[str]) -> list[x509.Certificate]:
    """Load every certificate from a path or from bytes (PEM, possibly several, or DER)."""
    data, name = read_source(source)
    ders = split_der(data, name=name)
    return [
        load_certificate(der, name=_entry_name(name, i, len(ders))) for i, der in enumerate(ders)
    ]


def load_facts(source: bytes | str | os.PathLike[str]) -> list[CertificateFacts]:
    """Load every certificate from a path or bytes and return the facts of each."""
    data, name = read_source(source)
    ders = split_der(data, name=name)
    result = []
    for i, der in enumerate(ders):
        result.append(parse_certificate(der, name=_entry_name(name, i, len(ders))))
    return result


def _entry_name(name: str, index: int, count: int) -> str:
    return name if count == 1 else f"{name} (certificate {index + 1} of {count})"


def ocsp_hashes(certificate: x509.Certificate) -> dict[str, str | None]:
    """Return the name and key hashes OCSP CertIDs carry (sha1 and sha256, hex).

    ``subject_name_*`` and ``key_*`` describe the certificate as an issuer;
    ``issuer_name_*`` describe its issuer's name.
    """
    subject = certificate.subject.public_bytes()
    issuer = certificate.issuer.public_bytes()
    try:
        spki = certificate.public_key().public_bytes(_DER, PublicFormat.SubjectPublicKeyInfo)
        bits: bytes | None = spki_key_bits(spki)
    except Exception:  # an algorithm cryptography cannot load: no key hash
        bits = None
    return {
        "subject_name_sha1": hashlib.sha1(subject).hexdigest(),
        "key_sha1": hashlib.sha1(bits).hexdigest() if bits is not None else None,
        "key_sha256": hashlib.sha256(bits).hexdigest() if bits is not None else None,
        "issuer_name_sha1": hashlib.sha1(issuer).hexdigest(),
        "issuer_name_sha256": hashlib.sha256(issuer).hexdigest(),
    }
