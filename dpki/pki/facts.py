"""The facts of one certificate: what the policy, the validators and the indexes read.

:func:`facts` reads a certificate loaded from DER bytes straight from those bytes where it
can (:mod:`dpki.pki.der`, :mod:`dpki.pki.names`, :mod:`dpki.pki.extensions`: v3
certificates, common names and extensions) and through ``cryptography``'s objects
otherwise; names or extensions of other shapes are read through those objects within the
fast path, and any error sends the whole certificate down the reference path, which says
what is wrong. Both paths give the same facts (tests/test_x509_fast_path.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from dpki.errors import ParseError
from dpki.pki.der import (
    DECODE_ERRORS,
    Layout,
    Unsupported,
    describe,
    explicit_ec_parameters,
    read_layout,
    reraise_interrupts,
    tbs_parts,
)
from dpki.pki.extensions import NO_EXTENSIONS, ExtensionFacts, extension_facts, read_extensions
from dpki.pki.keys import (
    KeyDescription,
    KeyFacts,
    key_description,
    signature_algorithm_of,
    verify_with_key,
)
from dpki.pki.names import dn, name_facts, read_name

__all__ = ["NO_EXPIRY", "CertificateFacts", "KeyFacts", "facts"]


#: notAfter of a certificate that never expires (RFC 5280 4.1.2.5, 99991231235959Z)
NO_EXPIRY: Final = datetime.fromisoformat("9999-12-31T23:59:59+00:00")


_DER: Final = Encoding.DER


#: names for the signature algorithms cryptography refuses to build a hash object for
_LEGACY_SIGNATURE_HASHES: Final = {
    "1.2.840.113549.1.1.2": "md2",  # md2WithRSAEncryption
    "1.2.840.113549.1.1.3": "md4",  # md4WithRSAEncryption
    "1.2.840.113549.1.1.4": "md5",  # md5WithRSAEncryption
    "1.2.840.113549.1.1.5": "sha1",  # sha1WithRSAEncryption
    "1.3.14.3.2.29": "sha1",  # sha1WithRSASignature (OIW)
    "1.2.840.10045.4.1": "sha1",  # ecdsa-with-SHA1
    "1.2.840.10040.4.3": "sha1",  # dsa-with-sha1
}


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """What the policy needs to know about one certificate, decoded once.

    ``self_issued`` says the issuer DN equals the subject DN; ``self_signature_valid``
    says the signature verifies under the certificate's own key (``None``: not tried,
    because the names differ or the key or signature algorithm is unsupported).
    ``is_self_signed`` is both. ``key_algorithm`` is ``RSA``, ``EC``, ``Ed25519``,
    ``Ed448``, ``DSA``, ``X25519``, ``X448`` or ``unsupported:<oid>``; ``key_size`` is in
    bits; ``key_curve`` is the ``cryptography`` curve name (``secp256r1``) for EC keys.
    ``key_explicit_parameters``: an EC key whose curve is given by explicit parameters.
    ``key_usage`` holds RFC 5280 bit names (``digitalSignature``, ``keyCertSign``, ...)
    or is ``None`` when the extension is absent; ``signature_hash`` is the hash name
    (``sha256``), ``None`` for hash-less schemes (Ed25519, Ed448) and
    ``unsupported:<oid>`` when the signature algorithm is not known.
    """

    id: str
    der: bytes = field(repr=False)
    certificate: x509.Certificate = field(repr=False, compare=False)
    version: int
    subject: str
    issuer: str
    subject_organization: str | None
    subject_organizations: tuple[str, ...]
    subject_common_name: str | None
    subject_alt_names: tuple[str, ...]
    spki_sha256: bytes = field(repr=False)
    key_algorithm: str
    key_size: int | None
    key_curve: str | None
    key_explicit_parameters: bool
    key_usage: frozenset[str] | None
    extended_key_usage: tuple[str, ...] | None
    ca: bool
    path_length: int | None
    has_basic_constraints: bool
    critical_extensions: tuple[str, ...]
    subject_key_identifier: bytes | None = field(repr=False)
    authority_key_identifier: bytes | None = field(repr=False)
    not_before: datetime
    not_after: datetime
    signature_algorithm: str
    signature_hash: str | None
    self_issued: bool
    self_signature_valid: bool | None

    @property
    def key(self) -> KeyFacts:
        """Return the facts of the subject public key."""
        return KeyFacts(
            self.key_algorithm, self.key_size, self.key_curve, self.key_explicit_parameters
        )

    @property
    def is_self_signed(self) -> bool:
        """Say whether issuer equals subject and the signature verifies under the own key."""
        return self.self_issued and self.self_signature_valid is True

    @property
    def never_expires(self) -> bool:
        """Say whether notAfter is the RFC 5280 "no well-defined expiration" value."""
        return self.not_after >= NO_EXPIRY


def facts(
    certificate: x509.Certificate, *, der: bytes | None = None, name: str = "input"
) -> CertificateFacts:
    """Decode what the policy needs from ``certificate``; raise ParseError on bad parts.

    Pass ``der``, the bytes ``certificate`` was loaded from, when they are at hand: common
    certificates are then read from them directly (:mod:`dpki.pki.der`), and the others,
    and every error, through ``cryptography``'s objects, with the same results. The
    signature of a self-issued certificate is verified here, once.
    """
    if der is not None:
        found = _facts_from_der(certificate, der)
        if found is not None:
            return found
    return _facts_via_cryptography(certificate, der=der, name=name)


def _facts_from_der(cert: x509.Certificate, der: bytes) -> CertificateFacts | None:
    """Return the facts read by :mod:`dpki.pki.der`, or None: take the reference path.

    Names or extensions of a shape the reader does not know are read through cryptography's
    objects, as the reference path reads them; any error (or a certificate that is not v3)
    gives None, so the reference path decides, and words, every error.
    """
    try:
        layout = read_layout(der)
        algorithm = signature_algorithm_of(cert, layout.signature_algorithm)
        if algorithm is None:
            return None
        signature_algorithm, hash_algorithm, parameters = algorithm
        validity = cert.not_valid_before_utc, cert.not_valid_after_utc
        key, description = key_description(cert, "input")
        # last, the parts that may be read through cryptography's objects (which may warn),
        # in the reference path's order: a certificate it has to decide leaves before them
        start, end = layout.extensions
        try:
            extensions = read_extensions(der, start, end) if end else NO_EXTENSIONS
        except Unsupported:
            extensions = extension_facts(cert.extensions)
        try:
            names = _names(layout)
        except Unsupported:
            names = _names_via_cryptography(cert, layout.issuer, layout.subject)
        self_signature_valid: bool | None = None
        if names[4] and key is not None:  # self-issued
            self_signature_valid = verify_with_key(
                cert, key, hash_algorithm, tbs=layout.tbs, parameters=parameters
            )
        signature = signature_algorithm, None if hash_algorithm is None else hash_algorithm.name
        return _assemble(
            cert, der, 3, names, extensions, layout.spki, description, validity, signature,
            self_signature_valid,
        )  # fmt: skip
    except Unsupported:
        return None
    except BaseException as exc:
        reraise_interrupts(exc)
        return None


#: subject text, its O values, its CN values, issuer text, self-issued
_Names: TypeAlias = tuple[str, tuple[str, ...], tuple[str, ...], str, bool]


def _names(layout: Layout) -> _Names:
    """Return the names read from DER."""
    subject, organizations, common_names, pairs = read_name(layout.subject)
    if layout.issuer == layout.subject:
        return subject, organizations, common_names, subject, True
    # cryptography compares (type, value) pairs: the string types may differ
    issuer, _, _, issuer_pairs = read_name(layout.issuer)
    return subject, organizations, common_names, issuer, issuer_pairs == pairs


def _facts_via_cryptography(
    certificate: x509.Certificate, *, der: bytes | None = None, name: str = "input"
) -> CertificateFacts:
    """Decode the facts through cryptography's objects: the reference path of :func:`facts`."""
    cert = certificate
    try:
        if der is None:
            der = cert.public_bytes(_DER)
        version = cert.version
        not_before = cert.not_valid_before_utc
        not_after = cert.not_valid_after_utc
        extensions = extension_facts(cert.extensions)
        raw_issuer, raw_subject, spki = tbs_parts(der)
        names = _names_via_cryptography(cert, raw_issuer, raw_subject)
    except (*DECODE_ERRORS, IndexError) as exc:
        raise ParseError(
            f"{name}: got a certificate whose fields do not decode ({describe(exc)}); "
            "want well-formed RFC 5280 names and extensions"
        ) from None

    signature_algorithm = cert.signature_algorithm_oid.dotted_string
    hash_algorithm: hashes.HashAlgorithm | None = None
    hash_known = True
    try:
        hash_algorithm = cert.signature_hash_algorithm
        signature_hash = None if hash_algorithm is None else hash_algorithm.name
    except UnsupportedAlgorithm:
        hash_known = False
        signature_hash = _LEGACY_SIGNATURE_HASHES.get(
            signature_algorithm, f"unsupported:{signature_algorithm}"
        )
    except ValueError as exc:
        raise ParseError(
            f"{name}: got signature algorithm parameters that do not decode "
            f"({describe(exc)}); want well-formed AlgorithmIdentifier parameters"
        ) from None

    key, description = key_description(cert, name)

    self_signature_valid: bool | None = None
    if names[4] and key is not None and hash_known:  # self-issued
        self_signature_valid = verify_with_key(cert, key, hash_algorithm)

    return _assemble(
        cert, der, version.value + 1, names, extensions, spki, description,
        (not_before, not_after), (signature_algorithm, signature_hash), self_signature_valid,
    )  # fmt: skip


def _names_via_cryptography(
    cert: x509.Certificate, raw_issuer: bytes, raw_subject: bytes
) -> _Names:
    """Return the names read through cryptography's objects."""
    subject_name = cert.subject
    subject, organizations, common_names = name_facts(subject_name)
    if raw_issuer == raw_subject:  # equal encodings are equal names: decode once
        return subject, organizations, common_names, subject, True
    issuer_name = cert.issuer  # cryptography compares values (string types may differ)
    return subject, organizations, common_names, dn(issuer_name), issuer_name == subject_name


def _assemble(
    cert: x509.Certificate,
    der: bytes,
    version: int,
    names: _Names,
    extensions: ExtensionFacts,
    spki: bytes,
    key: KeyDescription,
    validity: tuple[datetime, datetime],
    signature: tuple[str, str | None],
    self_signature_valid: bool | None,
) -> CertificateFacts:
    """Put the facts read by either path together."""
    subject, organizations, common_names, issuer, self_issued = names
    key_algorithm, key_size, key_curve = key
    return CertificateFacts(
        id=hashlib.sha256(der).hexdigest(),
        der=der,
        certificate=cert,
        version=version,
        subject=subject,
        issuer=issuer,
        subject_organization=organizations[0] if organizations else None,
        subject_organizations=organizations,
        subject_common_name=common_names[0] if common_names else None,
        subject_alt_names=extensions.subject_alt_names,
        spki_sha256=hashlib.sha256(spki).digest(),
        key_algorithm=key_algorithm,
        key_size=key_size,
        key_curve=key_curve,
        key_explicit_parameters=explicit_ec_parameters(spki),
        key_usage=extensions.key_usage,
        extended_key_usage=extensions.extended_key_usage,
        ca=extensions.ca,
        path_length=extensions.path_length,
        has_basic_constraints=extensions.has_basic_constraints,
        critical_extensions=extensions.critical,
        subject_key_identifier=extensions.subject_key_identifier,
        authority_key_identifier=extensions.authority_key_identifier,
        not_before=validity[0],
        not_after=validity[1],
        signature_algorithm=signature[0],
        signature_hash=signature[1],
        self_issued=self_issued,
        self_signature_valid=self_signature_valid,
    )
