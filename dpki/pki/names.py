"""Names: RFC 4514 text, organizations and common names, and the organization hash.

A name is read through ``cryptography``'s objects (:func:`name_facts`) or, on the fast
path, straight from its DER (:func:`read_name`, which knows single-valued RDNs of
well-known attribute types with UTF8String, PrintableString or IA5String values that need
no escaping, and raises :class:`~dpki.pki.der.Unsupported` for anything else). Both write
the same text.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache
from typing import Final, TypeAlias

from cryptography import x509
from cryptography.x509.oid import NameOID

from dpki.pki.der import Unsupported, span

__all__ = ["dn", "name_facts", "normalize_organization", "organization_hash", "read_name"]


#: the Unicode White_Space property, spelled out so the rule does not depend on a runtime
_WHITE_SPACE: Final = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


_ZERO_HASH: Final = bytes(32)


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


# -- from DER ----------------------------------------------------------------------------

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


#: a name read from DER: RFC 4514 text, O values, CN values, (type, value) list
_ReadName: TypeAlias = tuple[str, tuple[str, ...], tuple[str, ...], tuple[tuple[bytes, str], ...]]
#: names up to this size are kept once read (real ones are a few hundred bytes; a member
#: cannot make the cache hold thousands of names the size of a transaction)
_KEPT_NAME_BYTES: Final = 1024


def read_name(name: bytes) -> _ReadName:
    """Return a Name's RFC 4514 text, its O values, its CN values and its (type, value) list.

    The text is what ``x509.dn`` writes; the list compares as cryptography compares names.
    Kept for the names read most recently (a pure function of the bytes): the issuer of a
    thousand devices is one name read a thousand times.
    """
    return _read_kept(name) if len(name) <= _KEPT_NAME_BYTES else _read_name(name)


@lru_cache(maxsize=4096)
def _read_kept(name: bytes) -> _ReadName:
    return _read_name(name)


def _read_name(name: bytes) -> _ReadName:
    parts: list[str] = []
    organizations: list[str] = []
    common_names: list[str] = []
    pairs: list[tuple[bytes, str]] = []
    p, end = span(name, 0)
    while p < end:
        s, rdn_end = span(name, p)  # SET OF
        s, atv_end = span(name, s)  # AttributeTypeAndValue
        if atv_end != rdn_end:
            raise Unsupported("a multi-valued RDN")
        value_at = span(name, s)[1]
        attribute_type = name[s:value_at]
        entry = _NAME_TYPES.get(attribute_type)
        if entry is None or name[value_at] not in _STRING_TAGS:
            raise Unsupported("an attribute type or string type read by cryptography")
        start, p = span(name, value_at)
        label, kind, limits = entry
        if limits is not None and not limits[0] <= p - start <= limits[1]:
            raise Unsupported("a value outside cryptography's length limits")
        try:
            value = name[start:p].decode()
        except UnicodeDecodeError:
            raise Unsupported("a value that is not UTF-8") from None
        if not value or value[0] in "# " or value[-1] == " " or _DN_ESCAPED.search(value):
            raise Unsupported("a value RFC 4514 escapes")
        parts.append(f"{label}={value}")
        pairs.append((attribute_type, value))
        if kind == _ORGANIZATION:
            organizations.append(value)
        elif kind == _COMMON_NAME:
            common_names.append(value)
    parts.reverse()
    return ",".join(parts), tuple(organizations), tuple(common_names), tuple(pairs)
