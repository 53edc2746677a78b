"""Extensions: the facts the policy reads from basicConstraints, keyUsage and the others.

:func:`extension_facts` reads them through ``cryptography``'s objects;
:func:`read_extensions` (the fast path) straight from the DER, for basicConstraints,
keyUsage, extendedKeyUsage (well-known purposes), subjectAltName (DNS, email, URI, IP),
subjectKeyIdentifier and authorityKeyIdentifier (key identifier only), each in its one DER
form, raising :class:`~dpki.pki.der.Unsupported` for anything else. Whatever it accepts,
``cryptography`` accepts too and reads the same (tests/test_x509_fast_path.py).
"""

from __future__ import annotations

import ipaddress
from typing import Final, NamedTuple

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from dpki.pki.der import Unsupported, checked_span, span
from dpki.pki.names import dn

__all__ = ["NO_EXTENSIONS", "ExtensionFacts", "extension_facts", "read_extensions"]


class ExtensionFacts(NamedTuple):
    """The extension facts of one certificate (the fields of ``CertificateFacts``)."""

    subject_alt_names: tuple[str, ...]
    key_usage: frozenset[str] | None
    extended_key_usage: tuple[str, ...] | None
    ca: bool
    path_length: int | None
    has_basic_constraints: bool
    critical: tuple[str, ...]
    subject_key_identifier: bytes | None
    authority_key_identifier: bytes | None


#: the facts of a certificate without extensions
NO_EXTENSIONS: Final = ExtensionFacts((), None, None, False, None, False, (), None, None)


def extension_facts(extensions: x509.Extensions) -> ExtensionFacts:
    """Return the extension facts read through cryptography's objects, in one pass."""
    subject_alt_names: tuple[str, ...] = ()
    key_usage: frozenset[str] | None = None
    extended_key_usage: tuple[str, ...] | None = None
    ca, path_length, has_basic_constraints = False, None, False
    subject_key_identifier: bytes | None = None
    authority_key_identifier: bytes | None = None
    critical: list[str] = []
    for ext in extensions:
        oid = ext.oid
        if ext.critical:
            critical.append(oid.dotted_string)
        value = ext.value
        if oid == ExtensionOID.KEY_USAGE:
            assert isinstance(value, x509.KeyUsage)
            key_usage = _key_usage_names(value)
        elif oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            assert isinstance(value, x509.SubjectAlternativeName)
            subject_alt_names = tuple(_general_name(n) for n in value)
        elif oid == ExtensionOID.BASIC_CONSTRAINTS:
            assert isinstance(value, x509.BasicConstraints)
            has_basic_constraints = True
            ca, path_length = value.ca, value.path_length
        elif oid == ExtensionOID.EXTENDED_KEY_USAGE:
            assert isinstance(value, x509.ExtendedKeyUsage)
            extended_key_usage = tuple(u.dotted_string for u in value)
        elif oid == ExtensionOID.SUBJECT_KEY_IDENTIFIER:
            assert isinstance(value, x509.SubjectKeyIdentifier)
            subject_key_identifier = value.digest
        elif oid == ExtensionOID.AUTHORITY_KEY_IDENTIFIER:
            assert isinstance(value, x509.AuthorityKeyIdentifier)
            authority_key_identifier = value.key_identifier
    return ExtensionFacts(
        subject_alt_names,
        key_usage,
        extended_key_usage,
        ca,
        path_length,
        has_basic_constraints,
        tuple(critical),
        subject_key_identifier,
        authority_key_identifier,
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


# -- from DER ----------------------------------------------------------------------------

_BC, _KU, _EKU, _SAN, _SKI, _AKI = 1, 2, 4, 8, 16, 32

#: extension id (OID TLV) -> (bit, dotted string)
_EXTENSIONS: Final = {
    b"\x06\x03\x55\x1d\x13": (_BC, "2.5.29.19"),
    b"\x06\x03\x55\x1d\x0f": (_KU, "2.5.29.15"),
    b"\x06\x03\x55\x1d\x25": (_EKU, "2.5.29.37"),
    b"\x06\x03\x55\x1d\x11": (_SAN, "2.5.29.17"),
    b"\x06\x03\x55\x1d\x0e": (_SKI, "2.5.29.14"),
    b"\x06\x03\x55\x1d\x23": (_AKI, "2.5.29.35"),
}


_BASIC_CONSTRAINTS: Final = {b"\x30\x00": (False, None), b"\x30\x03\x01\x01\xff": (True, None)}


_PATH_LENGTH_PREFIX: Final = b"\x30\x06\x01\x01\xff\x02\x01"


_KEY_USAGE_BITS: Final = (
    "digitalSignature",
    "contentCommitment",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
)


_KEY_USAGES: dict[bytes, frozenset[str]] = {}


#: the purposes of RFC 5280 4.2.1.12 and anyExtendedKeyUsage (OID TLV -> dotted string)
_PURPOSES: Final = {
    b"\x06\x08\x2b\x06\x01\x05\x05\x07\x03" + bytes([n]): f"1.3.6.1.5.5.7.3.{n}"
    for n in (1, 2, 3, 4, 8, 9)
} | {b"\x06\x04\x55\x1d\x25\x00": "2.5.29.37.0"}


_GENERAL_NAMES: Final = {0x81: "email:", 0x82: "DNS:", 0x86: "URI:"}


def read_extensions(der: bytes, start: int, end: int) -> ExtensionFacts:
    """Return the facts of the extensions SEQUENCE content ``der[start:end]``."""
    d = der
    seen = 0
    critical: list[str] = []
    names: tuple[str, ...] = ()
    key_usage: frozenset[str] | None = None
    purposes: tuple[str, ...] | None = None
    ca, path_length = False, None
    ski = aki = None
    p = start
    while p < end:
        s, p = span(d, p)
        value_at = span(d, s)[1]
        known = _EXTENSIONS.get(d[s:value_at])
        if known is None:
            raise Unsupported("an extension cryptography reads")
        bit, dotted = known
        if seen & bit:
            raise Unsupported("a duplicate extension")
        seen |= bit
        if d[value_at] == 0x01:  # critical: the loader allows only an encoded TRUE here
            critical.append(dotted)
            value_at += 3
        v = d[slice(*span(d, value_at))]
        if bit == _BC:
            ca, path_length = _basic_constraints(v)
        elif bit == _KU:
            key_usage = _key_usage(v)
        elif bit == _SAN:
            names = _subject_alt_names(v)
        elif bit == _EKU:
            purposes = _extended_key_usage(v)
        elif bit == _SKI:
            ski = _octets(v, 0x04)
        else:  # authorityKeyIdentifier: a SEQUENCE holding only [0] keyIdentifier
            aki = _octets(_octets(v, 0x30), 0x80)
    return ExtensionFacts(
        names,
        key_usage,
        purposes,
        ca,
        path_length,
        bool(seen & _BC),
        tuple(critical),
        ski,
        aki,
    )


def _basic_constraints(v: bytes) -> tuple[bool, int | None]:
    found = _BASIC_CONSTRAINTS.get(v)
    if found is not None:
        return found
    if len(v) == 8 and v.startswith(_PATH_LENGTH_PREFIX) and v[7] < 0x80:
        return True, v[7]
    raise Unsupported("a basicConstraints form")


def _key_usage(v: bytes) -> frozenset[str]:
    found = _KEY_USAGES.get(v)
    if found is not None:
        return found
    if not (len(v) in (4, 5) and v[0] == 0x03 and v[1] == len(v) - 2 and v[2] < 8):
        raise Unsupported("a keyUsage form")
    if v[-1] & ((1 << v[2]) - 1):
        raise Unsupported("a BIT STRING with padding bits set")
    bits = v[3] << 8 | (v[4] if len(v) == 5 else 0)
    names = frozenset(n for i, n in enumerate(_KEY_USAGE_BITS) if bits & (0x8000 >> i))
    if not bits & 0x0800 and bits & 0x0180:  # cryptography refuses this KeyUsage
        raise Unsupported("encipherOnly/decipherOnly without keyAgreement")
    if len(_KEY_USAGES) < 4096:
        _KEY_USAGES[v] = names
    return names


def _sequence_of(v: bytes) -> tuple[int, int]:
    """Return (content start, end) of ``v``, a non-empty SEQUENCE that fills it."""
    p, end = checked_span(v, 0, len(v))
    if v[0] != 0x30 or end != len(v) or p == end:
        raise Unsupported("a SEQUENCE OF form")
    return p, end


def _subject_alt_names(v: bytes) -> tuple[str, ...]:
    p, end = _sequence_of(v)
    names: list[str] = []
    while p < end:
        tag = v[p]
        start, p = checked_span(v, p, end)
        value = v[start:p]
        prefix = _GENERAL_NAMES.get(tag)
        if prefix is not None and value.isascii():
            names.append(prefix + value.decode("ascii"))
        elif tag == 0x87 and len(value) in (4, 16):
            names.append(f"IP:{ipaddress.ip_address(value)}")
        else:
            raise Unsupported("a general name type")
    return tuple(names)


def _extended_key_usage(v: bytes) -> tuple[str, ...]:
    p, end = _sequence_of(v)
    purposes: list[str] = []
    while p < end:
        start = p
        p = checked_span(v, p, end)[1]
        dotted = _PURPOSES.get(v[start:p])
        if dotted is None:
            raise Unsupported("a purpose")
        purposes.append(dotted)
    return tuple(purposes)


def _octets(v: bytes, tag: int) -> bytes:
    """Return the contents of ``v``: one ``tag`` element, length in short form, filling it."""
    if len(v) < 2 or v[0] != tag or v[1] != len(v) - 2 or v[1] >= 0x80:
        raise Unsupported("an element form")
    return v[2:]
