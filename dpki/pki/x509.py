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
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Final, TypeAlias

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
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtensionOID, NameOID

from dpki.errors import ParseError
from dpki.pki.der import (
    ExtensionFacts,
    Layout,
    Unsupported,
    read_extensions,
    read_layout,
    read_name,
)

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

#: the largest certificate file read (a bundle of thousands of certificates fits); larger
#: input is refused before it is read
MAX_INPUT_BYTES: Final = 16 * 1024 * 1024

#: notAfter of a certificate that never expires (RFC 5280 4.1.2.5, 99991231235959Z)
NO_EXPIRY: Final = datetime.fromisoformat("9999-12-31T23:59:59+00:00")

#: the Unicode White_Space property, spelled out so the rule does not depend on a runtime
_WHITE_SPACE: Final = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_ZERO_HASH: Final = bytes(32)
_DER: Final = Encoding.DER

_PEM_BLOCK: Final = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_PEM_BEGIN: Final = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_CERT_LABELS: Final = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE"})

#: errors cryptography raises while decoding parts of a certificate lazily
_DECODE_ERRORS: Final = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)

_KEY_USAGE_NAMES: Final = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "contentCommitment"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)

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
class KeyFacts:
    """What the key rules read about a public key (a certificate's, or its issuer's).

    ``explicit_parameters`` says an EC key spells its curve out (specifiedCurve or
    implicitCurve) instead of naming it, which RFC 5480 2.1.1 forbids in certificates.
    """

    algorithm: str
    size: int | None
    curve: str | None
    explicit_parameters: bool = False


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


#: attribute names RFC 4514 leaves as dotted OIDs but that device certificates carry
_DN_NAMES = {
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.TITLE: "title",
    NameOID.GIVEN_NAME: "givenName",
    NameOID.SURNAME: "surname",
}


def dn(name: x509.Name) -> str:
    """Return a distinguished name as RFC 4514 text, with serialNumber and a few other
    common attributes by name rather than as dotted OIDs."""
    return name_facts(name)[0]


#: what RFC 4514 escapes anywhere in a value (cryptography's _escape_dn_value)
_DN_ESCAPED = re.compile(r'[\\"+,;<>\x00]')
_DN_ATTRIBUTE_NAMES: dict[x509.ObjectIdentifier, str] = {}


def name_facts(name: x509.Name) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """Return a name's RFC 4514 text (as ``name.rfc4514_string(_DN_NAMES)``), its
    organization values and its common name values, in one pass.

    Single-valued RDNs whose string value needs no escaping are written here; anything else
    is left to cryptography, so the text is always what it would write.
    """
    parts: list[str] = []
    organizations: list[str] = []
    common_names: list[str] = []
    for rdn in name.rdns:
        attributes = list(rdn)
        for attribute in attributes:
            if attribute.oid == NameOID.ORGANIZATION_NAME:
                organizations.append(str(attribute.value))
            elif attribute.oid == NameOID.COMMON_NAME:
                common_names.append(str(attribute.value))
        value = attributes[0].value
        if (
            len(attributes) == 1
            and type(value) is str
            and value
            and value[0] not in "# "
            and value[-1] != " "
            and _DN_ESCAPED.search(value) is None
        ):
            oid = attributes[0].oid
            label = _DN_ATTRIBUTE_NAMES.get(oid)
            if label is None:
                label = _DN_NAMES.get(oid) or attributes[0].rfc4514_attribute_name
                _DN_ATTRIBUTE_NAMES[oid] = label
            parts.append(f"{label}={value}")
        else:
            parts.append(rdn.rfc4514_string(_DN_NAMES))
    parts.reverse()
    return ",".join(parts), tuple(organizations), tuple(common_names)


def cert_id(der: bytes) -> str:
    """Return the certificate id: the lowercase hex SHA-256 of its DER encoding."""
    return hashlib.sha256(der).hexdigest()


def normalize_organization(value: str | None) -> str | None:
    """Normalize an organization name: Unicode NFC, then strip surrounding white space.

    White space is the Unicode ``White_Space`` property (spelled out in this module).
    Inner white space and letter case are kept. ``None`` and names that are empty after
    normalization give ``None`` (no organization).
    """
    if value is None:
        return None
    normalized = unicodedata.normalize("NFC", value).strip(_WHITE_SPACE)
    return normalized or None


def organization_hash(organization: str | None) -> bytes:
    """Return the 32-byte ledger hash of an organization name.

    The rule: ``sha256(normalize_organization(org).encode("utf-8"))``, where
    normalization is NFC followed by stripping leading and trailing Unicode white
    space; an absent organization (``None``, or empty after normalization) hashes to 32
    zero bytes. Submitters and validators must both use this function.
    """
    normalized = normalize_organization(organization)
    if normalized is None:
        return _ZERO_HASH
    return hashlib.sha256(normalized.encode("utf-8")).digest()


def validity_seconds(certificate_facts: CertificateFacts) -> tuple[int, int]:
    """Return (notBefore, notAfter) as integer Unix seconds, as the ledger stores them.

    The no-expiry value 99991231235959Z becomes 253402300799.
    """
    return (
        int(certificate_facts.not_before.timestamp()),
        int(certificate_facts.not_after.timestamp()),
    )


def read_source(source: bytes | str | os.PathLike[str]) -> tuple[bytes, str]:
    """Return the bytes of ``source`` (bytes as given, or a file path) and a name for messages."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), "input"
    name = os.fspath(source)
    try:
        with open(name, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_INPUT_BYTES:
                raise ParseError(_too_big(name, size))
            data = handle.read(MAX_INPUT_BYTES + 1)  # a pipe or a growing file has no size
            if len(data) > MAX_INPUT_BYTES:
                raise ParseError(_too_big(name, len(data)))
            return data, name
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ParseError(f"{name}: cannot read the file ({reason}); want a readable file") from None


def _too_big(name: str, size: int) -> str:
    return (
        f"{name}: got {size:,} bytes or more; want at most {MAX_INPUT_BYTES:,} bytes "
        "(certificate files are small: split large bundles)"
    )


def split_der(data: bytes, *, name: str = "input") -> list[bytes]:
    """Return the DER encoding of every certificate in ``data`` (one DER, or PEM blocks).

    Data that is a single DER element is taken as DER; otherwise every ``CERTIFICATE``
    (or ``X509 CERTIFICATE``) PEM block is decoded, in file order, and other blocks
    (keys, CRLs) and text around them are ignored.
    """
    if not data:
        raise ParseError(f"{name}: got an empty input; want a PEM or DER certificate")
    if _is_single_der_element(data):
        return [data]
    if b"-----BEGIN" not in data and data[0] == 0x30:
        try:
            claimed = _header(data, 0)[1]
        except IndexError:
            claimed = -1
        if claimed > len(data):
            raise ParseError(
                f"{name}: got {len(data)} bytes of DER whose outer SEQUENCE claims "
                f"{claimed} bytes (truncated?); want a complete DER certificate"
            )
        return [data]  # the DER parser says what else is wrong
    if b"-----BEGIN" not in data:
        raise ParseError(
            f"{name}: got {len(data)} bytes that are neither PEM (no '-----BEGIN' line) "
            "nor a single DER element; want a PEM or DER certificate"
        )
    ders: list[bytes] = []
    labels: list[str] = []
    for match in _PEM_BLOCK.finditer(data):
        label = match.group(1)
        labels.append(label.decode("ascii"))
        if label not in _CERT_LABELS:
            continue
        ders.append(_decode_pem_body(match.group(2), name=name, index=len(ders) + 1))
    begun = sum(1 for m in _PEM_BEGIN.finditer(data) if m.group(1) in _CERT_LABELS)
    if begun != len(ders):
        raise ParseError(
            f"{name}: got {begun} '-----BEGIN CERTIFICATE-----' line(s) but {len(ders)} "
            "complete block(s); want every PEM block closed by its END line (truncated?)"
        )
    if not ders:
        found = ", ".join(sorted(set(labels))) or "no complete PEM block"
        raise ParseError(f"{name}: got PEM with {found}; want a CERTIFICATE block")
    return ders


def load_certificate(der: bytes, *, name: str = "input") -> x509.Certificate:
    """Parse one DER certificate; raise ParseError if it does not parse (nothing else)."""
    try:
        return x509.load_der_x509_certificate(der)
    except BaseException as exc:
        _reraise_interrupts(exc)
        raise ParseError(
            f"{name}: got {len(der)} bytes of DER that do not parse as an X.509 certificate "
            f"({_describe(exc)}); want a DER-encoded RFC 5280 certificate"
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
        _reraise_interrupts(exc)
        raise ParseError(
            f"{name}: got a certificate that does not decode ({type(exc).__name__}: "
            f"{_describe(exc)}); want a well-formed RFC 5280 certificate"
        ) from None


def _reraise_interrupts(exc: BaseException) -> None:
    """Re-raise what must stop the process; anything else is bad input.

    pyo3's ``PanicException`` (a panic inside cryptography's Rust code) derives from
    BaseException, so the boundary catches BaseException and lets only these through.
    """
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit | MemoryError):
        raise exc


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
        try:
            names = _names(layout)
        except Unsupported:
            names = _names_via_cryptography(cert, layout.issuer, layout.subject)
        start, end = layout.extensions
        try:
            extensions: ExtensionFacts | _ExtensionFacts = (
                read_extensions(der, start, end) if end else _NO_EXTENSIONS
            )
        except Unsupported:
            extensions = _ExtensionFacts(cert.extensions)
        algorithm = _signature_algorithm(cert, layout.signature_algorithm)
        if algorithm is None:
            return None
        signature_algorithm, hash_algorithm, parameters = algorithm
        validity = cert.not_valid_before_utc, cert.not_valid_after_utc
        key, description = _key_facts(cert, "input")
        self_signature_valid: bool | None = None
        if names[4] and key is not None:  # self-issued
            self_signature_valid = _verify_with_key(
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
        _reraise_interrupts(exc)
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


_NO_EXTENSIONS: Final = ExtensionFacts((), None, None, False, None, False, (), None, None)
_SignatureAlgorithm: TypeAlias = tuple[str, hashes.HashAlgorithm | None, object]
#: signature AlgorithmIdentifier (as encoded) -> what cryptography makes of it
_SIGNATURE_ALGORITHMS: dict[bytes, _SignatureAlgorithm] = {}


def _signature_algorithm(cert: x509.Certificate, encoded: bytes) -> _SignatureAlgorithm | None:
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
        if len(_SIGNATURE_ALGORITHMS) < 256:
            _SIGNATURE_ALGORITHMS[encoded] = found
    return found


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
        extensions = _ExtensionFacts(cert.extensions)
        raw_issuer, raw_subject, spki = _tbs_parts(der)
        names = _names_via_cryptography(cert, raw_issuer, raw_subject)
    except (*_DECODE_ERRORS, IndexError) as exc:
        raise ParseError(
            f"{name}: got a certificate whose fields do not decode ({_describe(exc)}); "
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
            f"({_describe(exc)}); want well-formed AlgorithmIdentifier parameters"
        ) from None

    key, description = _key_facts(cert, name)

    self_signature_valid: bool | None = None
    if names[4] and key is not None and hash_known:  # self-issued
        self_signature_valid = _verify_with_key(cert, key, hash_algorithm)

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
    extensions: ExtensionFacts | _ExtensionFacts,
    spki: bytes,
    key: _KeyDescription,
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
        key_explicit_parameters=_explicit_ec_parameters(spki),
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


@lru_cache(maxsize=1024)
def key_facts(certificate: x509.Certificate) -> KeyFacts | None:
    """Return the facts of ``certificate``'s public key (None: it does not decode).

    Kept for the most recent certificates asked about: issuers are asked about again and
    again.
    """
    try:
        spki = _tbs_parts(certificate.public_bytes(_DER))[2]
        _, (algorithm, size, curve) = _key_facts(certificate, "issuer")
    except (*_DECODE_ERRORS, IndexError, ParseError):
        return None
    return KeyFacts(algorithm, size, curve, _explicit_ec_parameters(spki))


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
    except (*_DECODE_ERRORS, IndexError):
        return None
    return _verify_with_key(certificate, key, hash_algorithm)


@lru_cache(maxsize=1024)
def _public_key(certificate: x509.Certificate) -> PublicKeyTypes:
    """Return ``certificate.public_key()``, kept for the issuers asked about most recently."""
    return certificate.public_key()


# -- helpers -----------------------------------------------------------------------------


class _ExtensionFacts:
    """The extension facts of one certificate, read in one pass."""

    __slots__ = (
        "authority_key_identifier",
        "ca",
        "critical",
        "extended_key_usage",
        "has_basic_constraints",
        "key_usage",
        "path_length",
        "subject_alt_names",
        "subject_key_identifier",
    )

    def __init__(self, extensions: x509.Extensions) -> None:
        self.subject_alt_names: tuple[str, ...] = ()
        self.key_usage: frozenset[str] | None = None
        self.extended_key_usage: tuple[str, ...] | None = None
        self.ca = False
        self.path_length: int | None = None
        self.has_basic_constraints = False
        self.subject_key_identifier: bytes | None = None
        self.authority_key_identifier: bytes | None = None
        critical: list[str] = []
        for ext in extensions:
            oid = ext.oid
            if ext.critical:
                critical.append(oid.dotted_string)
            value = ext.value
            if oid == ExtensionOID.KEY_USAGE:
                assert isinstance(value, x509.KeyUsage)
                self.key_usage = _key_usage_names(value)
            elif oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
                assert isinstance(value, x509.SubjectAlternativeName)
                self.subject_alt_names = tuple(_general_name(n) for n in value)
            elif oid == ExtensionOID.BASIC_CONSTRAINTS:
                assert isinstance(value, x509.BasicConstraints)
                self.has_basic_constraints = True
                self.ca = value.ca
                self.path_length = value.path_length
            elif oid == ExtensionOID.EXTENDED_KEY_USAGE:
                assert isinstance(value, x509.ExtendedKeyUsage)
                self.extended_key_usage = tuple(u.dotted_string for u in value)
            elif oid == ExtensionOID.SUBJECT_KEY_IDENTIFIER:
                assert isinstance(value, x509.SubjectKeyIdentifier)
                self.subject_key_identifier = value.digest
            elif oid == ExtensionOID.AUTHORITY_KEY_IDENTIFIER:
                assert isinstance(value, x509.AuthorityKeyIdentifier)
                self.authority_key_identifier = value.key_identifier
        self.critical = tuple(critical)


def _key_usage_names(value: x509.KeyUsage) -> frozenset[str]:
    names = {rfc for attr, rfc in _KEY_USAGE_NAMES if getattr(value, attr)}
    if value.key_agreement:
        if value.encipher_only:
            names.add("encipherOnly")
        if value.decipher_only:
            names.add("decipherOnly")
    return frozenset(names)


def _general_name(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return f"dirName:{dn(name.value)}"
    if isinstance(name, x509.RegisteredID):
        return f"RID:{name.value.dotted_string}"
    if isinstance(name, x509.OtherName):
        return f"otherName:{name.type_id.dotted_string}:{name.value.hex()}"
    return f"unknown:{name!r}"  # pragma: no cover - cryptography has no other kinds


#: a key's algorithm, size in bits and curve name (see CertificateFacts)
_KeyDescription: TypeAlias = tuple[str, int | None, str | None]


def _key_facts(cert: x509.Certificate, name: str) -> tuple[PublicKeyTypes | None, _KeyDescription]:
    """Return ``cert``'s public key (None: it cannot verify) and its description."""
    try:
        key = cert.public_key()
    except UnsupportedAlgorithm:
        return None, (f"unsupported:{cert.public_key_algorithm_oid.dotted_string}", None, None)
    except (ValueError, TypeError) as exc:
        raise ParseError(
            f"{name}: got a SubjectPublicKeyInfo that does not decode ({_describe(exc)}); "
            "want a well-formed public key"
        ) from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = key.curve
        return key, ("EC", curve.key_size, curve.name)
    if isinstance(key, rsa.RSAPublicKey):
        return key, ("RSA", key.key_size, None)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key, ("Ed25519", 256, None)
    if isinstance(key, ed448.Ed448PublicKey):
        return key, ("Ed448", 456, None)
    if isinstance(key, dsa.DSAPublicKey):
        return key, ("DSA", key.key_size, None)
    if isinstance(key, x25519.X25519PublicKey):
        return None, ("X25519", 256, None)
    if isinstance(key, x448.X448PublicKey):
        return None, ("X448", 448, None)
    return None, (f"unsupported:{cert.public_key_algorithm_oid.dotted_string}", None, None)


def _verify_with_key(
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
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            params = cert.signature_algorithm_parameters if parameters is None else parameters
            if not isinstance(params, ec.ECDSA):
                return None
            key.verify(signature, tbs, params)
        elif isinstance(key, rsa.RSAPublicKey):
            params = cert.signature_algorithm_parameters if parameters is None else parameters
            if not isinstance(params, padding.PKCS1v15 | padding.PSS) or hash_algorithm is None:
                return None
            key.verify(signature, tbs, params, hash_algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            if hash_algorithm is not None:
                return None
            key.verify(signature, tbs)
        elif isinstance(key, dsa.DSAPublicKey):
            if hash_algorithm is None:
                return None
            key.verify(signature, tbs, hash_algorithm)
        else:
            return None
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return True


def _is_single_der_element(data: bytes) -> bool:
    """Say whether ``data`` is exactly one DER SEQUENCE (tag, length and content)."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    try:
        return _header(data, 0)[1] == len(data)
    except IndexError:
        return False


def _header(buf: bytes, pos: int) -> tuple[int, int]:
    """Return (content start, content end) of the DER element at ``pos``."""
    length = buf[pos + 1]
    start = pos + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > len(buf):
            raise IndexError("unsupported DER length")
        length = int.from_bytes(buf[start : start + count], "big")
        start += count
    return start, start + length


def spki_key_bits(spki: bytes) -> bytes:
    """Return the subjectPublicKey BIT STRING contents (no unused-bits octet) of an SPKI."""
    pos = _header(spki, 0)[0]
    pos = _header(spki, pos)[1]  # skip AlgorithmIdentifier
    start, end = _header(spki, pos)
    if end > len(spki):
        raise IndexError("subjectPublicKey runs past the end of the SubjectPublicKeyInfo")
    return spki[start + 1 : end]


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


def _tbs_parts(der: bytes) -> tuple[bytes, bytes, bytes]:
    """Return the issuer, subject and SubjectPublicKeyInfo elements, as encoded."""
    tbs_start, _ = _header(der, 0)  # Certificate SEQUENCE -> TBSCertificate
    pos, _ = _header(der, tbs_start)  # TBSCertificate content
    if der[pos] == 0xA0:  # [0] EXPLICIT version
        pos = _header(der, pos)[1]
    pos = _header(der, pos)[1]  # serialNumber
    pos = _header(der, pos)[1]  # signature
    issuer_end = _header(der, pos)[1]
    issuer = der[pos:issuer_end]
    subject_start = _header(der, issuer_end)[1]  # skip validity
    subject_end = _header(der, subject_start)[1]
    spki_end = _header(der, subject_end)[1]
    if der[subject_end] != 0x30 or spki_end > len(der):
        raise IndexError("SubjectPublicKeyInfo is not where RFC 5280 puts it")
    return issuer, der[subject_start:subject_end], der[subject_end:spki_end]


_EC_PUBLIC_KEY: Final = bytes.fromhex("06072a8648ce3d0201")  # OID 1.2.840.10045.2.1


def _explicit_ec_parameters(spki: bytes) -> bool:
    """Say whether an SPKI is id-ecPublicKey with parameters other than a namedCurve OID."""
    try:
        algorithm_start, _ = _header(spki, 0)
        start, end = _header(spki, algorithm_start)
        if spki[start : start + len(_EC_PUBLIC_KEY)] != _EC_PUBLIC_KEY:
            return False
        parameters = start + len(_EC_PUBLIC_KEY)
        return parameters >= end or spki[parameters] != 0x06
    except IndexError:
        return False


def _decode_pem_body(body: bytes, *, name: str, index: int) -> bytes:
    lines = [line.strip() for line in body.strip().splitlines()]
    if lines and b":" in lines[0]:  # RFC 1421 headers, ended by the first blank line
        lines = lines[lines.index(b"") + 1 :] if b"" in lines else []
    try:
        der = base64.b64decode(b"".join(lines), validate=True)
    except (binascii.Error, ValueError):
        raise ParseError(
            f"{name}: got PEM certificate block {index} whose body is not valid base64; "
            "want base64 of a DER certificate"
        ) from None
    if not der:
        raise ParseError(f"{name}: got an empty PEM certificate block {index}; want a DER body")
    return der


def _entry_name(name: str, index: int, count: int) -> str:
    return name if count == 1 else f"{name} (certificate {index + 1} of {count})"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    rust = _RUST_PARSE_ERROR.search(text)
    if rust is not None:  # cryptography's Rust debug form: ParseError { kind: ..., location: [..] }
        kind = _ASN1_ERRORS.get(rust.group(1), "an ASN.1 error")
        where = [part.split("::")[-1] for part in re.findall(r'"([^"]+)"', text)]
        text = kind + (f" in {'.'.join(where)}" if where else "")
    return text if len(text) <= 160 else text[:157] + "..."


_RUST_PARSE_ERROR = re.compile(r"ParseError \{ kind: (\w+)")
_ASN1_ERRORS = {
    "UnexpectedTag": "an unexpected ASN.1 tag",
    "ShortData": "data that ends too early",
    "InvalidLength": "an invalid ASN.1 length",
    "ExtraData": "extra bytes after the certificate",
    "InvalidValue": "an invalid ASN.1 value",
    "InvalidTag": "an invalid ASN.1 tag",
    "IntegerOverflow": "an integer too large",
    "InvalidSetOrdering": "a SET in the wrong order",
    "EncodedDefault": "a DEFAULT value encoded explicitly",
    "OidTooLong": "an object identifier too long",
    "UnknownDefinedBy": "an unknown algorithm parameter",
}
