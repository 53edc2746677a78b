"""Read the facts of common certificates straight from their DER bytes.

``cryptography`` builds a Python object for every name attribute, every extension and
every general name a certificate has, and re-encodes the TBSCertificate each time its bytes
are asked for; for a device certificate that is a third of the time the policy spends on it
besides the signature check. :func:`read_layout` and :func:`read_name` /
:func:`read_extensions` read the same values from the bytes the certificate was loaded from.

They are a fast path, not a second parser: they run only on bytes that
``load_der_x509_certificate`` accepted (so the outer structure is valid DER), and they know
a narrow set of shapes: X.509 v3; names of single-valued RDNs with well-known attribute
types, UTF8String/PrintableString/IA5String values that need no RFC 4514 escaping;
basicConstraints, keyUsage, extendedKeyUsage (well-known purposes), subjectAltName (DNS,
email, URI, IP), subjectKeyIdentifier and authorityKeyIdentifier (key identifier only),
each in its one DER form. For anything else they raise :class:`Unsupported` and the caller
reads the certificate through ``cryptography`` (the reference path). Whatever they accept,
``cryptography`` accepts too and decodes to the same values: a test compares both paths
over generated, mutated and real-world certificates.
"""

from __future__ import annotations

import ipaddress
from typing import Final, NamedTuple

__all__ = [
    "ExtensionFacts",
    "Layout",
    "Unsupported",
    "read_extensions",
    "read_layout",
    "read_name",
]


class Unsupported(Exception):
    """The bytes are outside the shapes this module reads: use the reference path."""


class Layout(NamedTuple):
    """Where the parts of one DER certificate are (offsets into its bytes)."""

    tbs: bytes
    issuer: bytes
    subject: bytes
    spki: bytes
    signature_algorithm: bytes
    #: the extensions SEQUENCE's (content start, end); (0, 0) when there is none
    extensions: tuple[int, int]


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


_V3: Final = b"\xa0\x03\x02\x01\x02"


def _span(d: bytes, p: int) -> tuple[int, int]:
    """Return (content start, end) of the element at ``p`` of bytes the loader checked."""
    n = d[p + 1]
    if n < 0x80:
        return p + 2, p + 2 + n
    if n == 0x81:
        return p + 3, p + 3 + d[p + 2]
    if n == 0x82:
        return p + 4, p + 4 + (d[p + 2] << 8 | d[p + 3])
    raise Unsupported("an element of 64 KiB or more")


def _checked_span(d: bytes, p: int, limit: int) -> tuple[int, int]:
    """Return (content start, end) of an element nobody checked yet: DER lengths only."""
    if p + 2 > limit:
        raise Unsupported("truncated")
    n = d[p + 1]
    if n < 0x80:
        start, end = p + 2, p + 2 + n
    elif n == 0x81 and p + 3 <= limit and d[p + 2] >= 0x80:
        start, end = p + 3, p + 3 + d[p + 2]
    else:
        raise Unsupported("a long or non-minimal length")
    if end > limit:
        raise Unsupported("an element running past its parent")
    return start, end


def read_layout(der: bytes) -> Layout:
    """Return where the parts of a v3 certificate are; raise Unsupported otherwise."""
    d = der
    tbs = _span(d, 0)[0]
    p, tbs_end = _span(d, tbs)
    if d[p : p + 5] != _V3:
        raise Unsupported("not X.509 v3")
    p = _span(d, p + 5)[1]  # serialNumber
    issuer_start = _span(d, p)[1]  # after the inner signature AlgorithmIdentifier
    issuer_end = _span(d, issuer_start)[1]
    subject_start = _span(d, issuer_end)[1]  # after validity
    subject_end = _span(d, subject_start)[1]
    spki_end = _span(d, subject_end)[1]
    p = spki_end
    while p < tbs_end and d[p] in (0x81, 0x82):  # issuer/subject unique identifiers
        p = _span(d, p)[1]
    extensions = (0, 0)
    if p < tbs_end:
        if d[p] != 0xA3:
            raise Unsupported("unexpected TBSCertificate field")
        extensions = _span(d, _span(d, p)[0])
        if extensions[0] == extensions[1]:
            raise Unsupported("an empty extensions field")
    return Layout(
        tbs=d[tbs:tbs_end],
        issuer=d[issuer_start:issuer_end],
        subject=d[subject_start:subject_end],
        spki=d[subject_end:spki_end],
        signature_algorithm=d[tbs_end : _span(d, tbs_end)[1]],
        extensions=extensions,
    )


# -- names -------------------------------------------------------------------------------

_ORGANIZATION, _COMMON_NAME, _OTHER = 1, 2, 0

#: attribute type (OID TLV) -> (RFC 4514 label, kind, (min, max) UTF-8 length or None);
#: the labels are what ``x509.dn`` writes, the limits cryptography's (it warns outside them)
_NAME_TYPES: Final[dict[bytes, tuple[str, int, tuple[int, int] | None]]] = {
    b"\x06\x03\x55\x04\x03": ("CN", _COMMON_NAME, (1, 64)),
    b"\x06\x03\x55\x04\x0a": ("O", _ORGANIZATION, None),
    b"\x06\x03\x55\x04\x0b": ("OU", _OTHER, None),
    b"\x06\x03\x55\x04\x06": ("C", _OTHER, (2, 2)),
    b"\x06\x03\x55\x04\x07": ("L", _OTHER, None),
    b"\x06\x03\x55\x04\x08": ("ST", _OTHER, None),
    b"\x06\x03\x55\x04\x09": ("STREET", _OTHER, None),
    b"\x06\x03\x55\x04\x05": ("serialNumber", _OTHER, None),
    b"\x06\x03\x55\x04\x0c": ("title", _OTHER, None),
    b"\x06\x03\x55\x04\x2a": ("givenName", _OTHER, None),
    b"\x06\x03\x55\x04\x04": ("surname", _OTHER, None),
    b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x09\x01": ("emailAddress", _OTHER, None),
    b"\x06\x0a\x09\x92\x26\x89\x93\xf2\x2c\x64\x01\x19": ("DC", _OTHER, None),
    b"\x06\x0a\x09\x92\x26\x89\x93\xf2\x2c\x64\x01\x01": ("UID", _OTHER, None),
}
#: UTF8String, PrintableString, IA5String: cryptography decodes all three as UTF-8
_STRING_TAGS: Final = frozenset({0x0C, 0x13, 0x16})
#: characters RFC 4514 escapes anywhere in a value (cryptography's _escape_dn_value)
_ESCAPED: Final = frozenset('\\"+,;<>\x00')


def read_name(
    name: bytes,
) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[tuple[bytes, str], ...]]:
    """Return a Name's RFC 4514 text, its O values, its CN values and its (type, value) list.

    The text is what ``x509.dn`` writes; the list compares as cryptography compares names.
    """
    parts: list[str] = []
    organizations: list[str] = []
    common_names: list[str] = []
    pairs: list[tuple[bytes, str]] = []
    p, end = _span(name, 0)
    while p < end:
        s, rdn_end = _span(name, p)  # SET OF
        s, atv_end = _span(name, s)  # AttributeTypeAndValue
        if atv_end != rdn_end:
            raise Unsupported("a multi-valued RDN")
        value_at = _span(name, s)[1]
        attribute_type = name[s:value_at]
        entry = _NAME_TYPES.get(attribute_type)
        if entry is None or name[value_at] not in _STRING_TAGS:
            raise Unsupported("an attribute type or string type read by cryptography")
        start, p = _span(name, value_at)
        label, kind, limits = entry
        if limits is not None and not limits[0] <= p - start <= limits[1]:
            raise Unsupported("a value outside cryptography's length limits")
        try:
            value = name[start:p].decode()
        except UnicodeDecodeError:
            raise Unsupported("a value that is not UTF-8") from None
        if not value or value[0] in "# " or value[-1] == " " or not _ESCAPED.isdisjoint(value):
            raise Unsupported("a value RFC 4514 escapes")
        parts.append(f"{label}={value}")
        pairs.append((attribute_type, value))
        if kind == _ORGANIZATION:
            organizations.append(value)
        elif kind == _COMMON_NAME:
            common_names.append(value)
    parts.reverse()
    return ",".join(parts), tuple(organizations), tuple(common_names), tuple(pairs)


# -- extensions --------------------------------------------------------------------------

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
        s, p = _span(d, p)
        value_at = _span(d, s)[1]
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
        v = d[slice(*_span(d, value_at))]
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
    p, end = _checked_span(v, 0, len(v))
    if v[0] != 0x30 or end != len(v) or p == end:
        raise Unsupported("a SEQUENCE OF form")
    return p, end


def _subject_alt_names(v: bytes) -> tuple[str, ...]:
    p, end = _sequence_of(v)
    names: list[str] = []
    while p < end:
        tag = v[p]
        start, p = _checked_span(v, p, end)
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
        p = _checked_span(v, p, end)[1]
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
