"""DER: element headers, where a certificate's parts are, and cryptography's errors in words.

Everything here reads bytes that ``load_der_x509_certificate`` already accepted, or checks
every length it follows (:func:`checked_span`, :func:`header`); nothing re-encodes.
:func:`read_layout` finds the parts of a v3 certificate for the fast path of
:func:`dpki.pki.facts.facts` (:class:`Unsupported` for anything else, and the caller takes
the reference path through ``cryptography``'s objects).
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

__all__ = [
    "DECODE_ERRORS",
    "Layout",
    "Unsupported",
    "checked_span",
    "describe",
    "explicit_ec_parameters",
    "header",
    "is_single_der_element",
    "read_layout",
    "reraise_interrupts",
    "span",
    "spki_key_bits",
    "tbs_parts",
]


#: errors cryptography raises while decoding parts of a certificate lazily
DECODE_ERRORS: Final = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


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


_V3: Final = b"\xa0\x03\x02\x01\x02"


def span(d: bytes, p: int) -> tuple[int, int]:
    """Return (content start, end) of the element at ``p`` of bytes the loader checked."""
    n = d[p + 1]
    if n < 0x80:
        return p + 2, p + 2 + n
    if n == 0x81:
        return p + 3, p + 3 + d[p + 2]
    if n == 0x82:
        return p + 4, p + 4 + (d[p + 2] << 8 | d[p + 3])
    raise Unsupported("an element of 64 KiB or more")


def checked_span(d: bytes, p: int, limit: int) -> tuple[int, int]:
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
    tbs = span(d, 0)[0]
    p, tbs_end = span(d, tbs)
    if d[p : p + 5] != _V3:
        raise Unsupported("not X.509 v3")
    p = span(d, p + 5)[1]  # serialNumber
    issuer_start = span(d, p)[1]  # after the inner signature AlgorithmIdentifier
    issuer_end = span(d, issuer_start)[1]
    subject_start = span(d, issuer_end)[1]  # after validity
    subject_end = span(d, subject_start)[1]
    spki_end = span(d, subject_end)[1]
    p = spki_end
    while p < tbs_end and d[p] in (0x81, 0x82):  # issuer/subject unique identifiers
        p = span(d, p)[1]
    extensions = (0, 0)
    if p < tbs_end:
        if d[p] != 0xA3:
            raise Unsupported("unexpected TBSCertificate field")
        extensions = span(d, span(d, p)[0])
        if extensions[0] == extensions[1]:
            raise Unsupported("an empty extensions field")
    return Layout(
        tbs=d[tbs:tbs_end],
        issuer=d[issuer_start:issuer_end],
        subject=d[subject_start:subject_end],
        spki=d[subject_end:spki_end],
        signature_algorithm=d[tbs_end : span(d, tbs_end)[1]],
        extensions=extensions,
    )


def is_single_der_element(data: bytes) -> bool:
    """Say whether ``data`` is exactly one DER SEQUENCE (tag, length and content)."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    try:
        return header(data, 0)[1] == len(data)
    except IndexError:
        return False


def header(buf: bytes, pos: int) -> tuple[int, int]:
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
    pos = header(spki, 0)[0]
    pos = header(spki, pos)[1]  # skip AlgorithmIdentifier
    start, end = header(spki, pos)
    if end > len(spki):
        raise IndexError("subjectPublicKey runs past the end of the SubjectPublicKeyInfo")
    return spki[start + 1 : end]


def tbs_parts(der: bytes) -> tuple[bytes, bytes, bytes]:
    """Return the issuer, subject and SubjectPublicKeyInfo elements, as encoded."""
    tbs_start, _ = header(der, 0)  # Certificate SEQUENCE -> TBSCertificate
    pos, _ = header(der, tbs_start)  # TBSCertificate content
    if der[pos] == 0xA0:  # [0] EXPLICIT version
        pos = header(der, pos)[1]
    pos = header(der, pos)[1]  # serialNumber
    pos = header(der, pos)[1]  # signature
    issuer_end = header(der, pos)[1]
    issuer = der[pos:issuer_end]
    subject_start = header(der, issuer_end)[1]  # skip validity
    subject_end = header(der, subject_start)[1]
    spki_end = header(der, subject_end)[1]
    if der[subject_end] != 0x30 or spki_end > len(der):
        raise IndexError("SubjectPublicKeyInfo is not where RFC 5280 puts it")
    return issuer, der[subject_start:subject_end], der[subject_end:spki_end]


_EC_PUBLIC_KEY: Final = bytes.fromhex("06072a8648ce3d0201")  # OID 1.2.840.10045.2.1


def explicit_ec_parameters(spki: bytes) -> bool:
    """Say whether an SPKI is id-ecPublicKey with parameters other than a namedCurve OID."""
    try:
        algorithm_start, _ = header(spki, 0)
        start, end = header(spki, algorithm_start)
        if spki[start : start + len(_EC_PUBLIC_KEY)] != _EC_PUBLIC_KEY:
            return False
        parameters = start + len(_EC_PUBLIC_KEY)
        return parameters >= end or spki[parameters] != 0x06
    except IndexError:
        return False


def reraise_interrupts(exc: BaseException) -> None:
    """Re-raise what must stop the process; anything else is bad input.

    pyo3's ``PanicException`` (a panic inside cryptography's Rust code) derives from
    BaseException, so the boundary catches BaseException and lets only these through.
    """
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit | MemoryError):
        raise exc


def describe(exc: BaseException) -> str:
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
