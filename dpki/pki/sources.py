"""Certificate input: a file or bytes, one DER certificate or PEM blocks."""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import Final

from dpki.errors import ParseError
from dpki.pki.der import header, is_single_der_element

__all__ = ["MAX_INPUT_BYTES", "read_source", "split_der"]


#: the largest certificate file read (a bundle of thousands of certificates fits); larger
#: input is refused before it is read
MAX_INPUT_BYTES: Final = 16 * 1024 * 1024


_PEM_BLOCK: Final = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


_PEM_BEGIN: Final = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


_CERT_LABELS: Final = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE"})


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
    if is_single_der_element(data):
        return [data]
    if b"-----BEGIN" not in data and data[0] == 0x30:
        try:
            claimed = header(data, 0)[1]
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
