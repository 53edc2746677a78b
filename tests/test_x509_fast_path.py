"""The fast path of ``facts`` (reading DER directly) against the reference path.

``facts`` reads common certificates straight from their bytes (:mod:`dpki.pki.der`) and
everything else through cryptography's objects (``_facts_via_cryptography``, the code the
policy always used). Wherever the fast path gives an answer it must be the reference's:
the same facts, field by field, and the same verdict (codes and sentences), with and without
issuers; where the reference raises ParseError or warns, the fast path must step aside.
Checked over the test certificates, cryptography's vectors, certificates hypothesis builds
(names, string types, extensions) and byte flips, truncations and insertions of good ones.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.name import _NAMEOID_DEFAULT_TYPE, _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpki.dev.devices import make_ca, make_device
from dpki.errors import ParseError
from dpki.inquiry.projection import fields_via_cryptography, parse_row
from dpki.pki import bulk
from dpki.pki.bulk import ec_key_der, ecdsa_job, verify_jobs
from dpki.pki.der import Unsupported, read_layout
from dpki.pki.extensions import _basic_constraints
from dpki.pki.facts import CertificateFacts, _facts_from_der, _facts_via_cryptography
from dpki.pki.keys import verifies_under, verifies_under_layout
from dpki.pki.policy import StaticIssuers, evaluate
from dpki.pki.x509 import load_certificate, split_der

CERTS = Path(__file__).resolve().parent / "certs"
AT = datetime(2025, 6, 1, tzinfo=UTC)
ORGANIZATION = "Acme Devices"
_FIELDS = [f.name for f in dataclasses.fields(CertificateFacts) if f.name != "certificate"]


def _seed(path: str) -> bytes:
    return split_der((CERTS / path).read_bytes())[0]


GOOD = _seed("good_device_p256.der")
CA = _seed("good_ca.pem")
ISSUED = _seed("good_issued.pem")
SEEDS = [GOOD, CA, ISSUED, _seed("good_rsa2048.pem"), _seed("good_ed25519.pem")]
SEEDS += [_seed("no_expiry_8021ar.pem"), _seed("anonymous_key_agreement.pem")]
ISSUERS = StaticIssuers([load_certificate(CA)], active=True)


def _verdict(f: CertificateFacts, with_issuers: bool) -> tuple[tuple[str, str], ...]:
    found = evaluate(f, organization=ORGANIZATION, at=AT, issuers=ISSUERS if with_issuers else None)
    return tuple((v.code, v.message) for v in found.violations)


def compare(der: bytes) -> bool:
    """Check that both paths agree on ``der``; return whether the fast path answered."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the loader warns for both paths alike
            certificate = load_certificate(der)
    except ParseError:
        return False  # the loader is the same for both paths
    _compare_index_fields(der, certificate)
    with warnings.catch_warnings(record=True) as warned_fast:
        warnings.simplefilter("always")
        got = _facts_from_der(load_certificate(der), der)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            want: CertificateFacts | ParseError = _facts_via_cryptography(
                load_certificate(der), der=der
            )
        except ParseError as exc:
            want = exc
    if got is None:
        return False
    assert isinstance(want, CertificateFacts), f"the reference refused it: {want}"
    assert [str(w.message) for w in warned_fast] == [str(w.message) for w in warned]
    for name in _FIELDS:
        assert getattr(got, name) == getattr(want, name), name
    assert got == want
    layout = read_layout(der)
    assert layout.tbs == certificate.tbs_certificate_bytes  # what the signature covers
    for with_issuers in (False, True):
        assert _verdict(got, with_issuers) == _verdict(want, with_issuers)
    return True


def _compare_index_fields(der: bytes, certificate: x509.Certificate) -> None:
    """The indexer's row fields (names and OCSP hashes) read the fast way are the
    reference's, and a certificate the reference cannot describe is a parse error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, _, layout = parse_row(der)
        try:
            want: dict[str, Any] | None = fields_via_cryptography(certificate)
        except Exception:
            want = None
    if want is None:
        assert got["parse_error"], got
    else:
        assert got == want
    if layout is None:
        return
    # the indexer's issuer link: the same answer as verifies_under, under itself and the CA
    for issuer_der in (der, CA):
        subject = read_layout(issuer_der).subject
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the loader warns for both alike
            issuer = load_certificate(issuer_der)
            fast = verifies_under_layout(certificate, layout, issuer, subject)
            assert fast == verifies_under(certificate, issuer)
            # and the bulk check in C, where it decides: the same answer again
            job = ecdsa_job(certificate, layout, ec_key_der(issuer), subject)
            if job is not None:
                assert bulk.AVAILABLE
                answer = verify_jobs([job])[0]
                assert answer is None or answer == fast


# -- fixed corpora -----------------------------------------------------------------------


def _files(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            if name.endswith((".pem", ".der", ".crt")) and "crl" not in name:
                yield Path(folder) / name


def _ders(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.suffix == ".pem" and b"CERTIFICATE-----" not in data:
        return []
    try:
        return split_der(data)
    except ParseError:
        return []


def test_test_certificates_agree_and_the_ordinary_ones_take_the_fast_path() -> None:
    taken = {p.name for p in _files(CERTS) for der in _ders(p) if compare(der)}
    # every certificate the policy accepts, device, CA or issued, is read the fast way
    assert {
        "good_device_p256.der",
        "good_ca.pem",
        "good_issued.pem",
        "good_rsa2048.pem",
        "good_ed25519.pem",
        "no_expiry_8021ar.pem",
        "anonymous_key_agreement.pem",
    } <= taken


def test_cryptography_vectors_agree() -> None:
    root = Path(str(resources.files("cryptography_vectors") / "x509"))
    counts = {"fast": 0, "reference": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in _files(root):
            for der in _ders(path):
                counts["fast" if compare(der) else "reference"] += 1
    assert counts["fast"] > 400, counts  # real-world shapes, not only our own
    assert counts["reference"] > 10, counts  # v1, malformed, exotic: the reference reads them


# -- mutations ---------------------------------------------------------------------------


def _region(der: bytes) -> tuple[int, int]:
    """Return where the names, key and extensions are: flips there reach the fast reader."""
    layout = read_layout(der)
    return der.index(layout.issuer), der.index(layout.tbs) + len(layout.tbs)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=3),
    st.booleans(),
)
def test_byte_flips_agree(der: bytes, flips: list[tuple[int, int]], anywhere: bool) -> None:
    start, end = (0, len(der)) if anywhere else _region(der)
    mutated = bytearray(der)
    for position, mask in flips:
        mutated[start + position % (end - start)] ^= mask
    compare(bytes(mutated))


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(SEEDS), st.integers(0, 10**6), st.binary(max_size=6), st.booleans())
def test_truncations_and_insertions_agree(
    der: bytes, cut: int, junk: bytes, fix_lengths: bool
) -> None:
    start, end = _region(der)
    position = start + cut % (end - start)
    compare(der[:position])
    inserted = der[:position] + junk + der[position:]
    compare(_relength(inserted, len(junk)) if fix_lengths else inserted)


def _relength(der: bytes, grown: int) -> bytes:
    """Grow the outer two-byte lengths (Certificate, TBSCertificate) by ``grown`` bytes."""
    out = bytearray(der)
    for at in (2, 6):
        if out[at - 1] == 0x82:
            length = int.from_bytes(out[at : at + 2], "big") + grown
            out[at : at + 2] = (length & 0xFFFF).to_bytes(2, "big")
    return bytes(out)


#: same-length edits of good_device_p256.der (its signature breaks, its facts do not)
_EDITS = {
    "keyUsage encipherOnly alone": ("03 02 03 88", "03 02 00 01"),
    "keyUsage padding bits set": ("03 02 03 88", "03 02 03 89"),
    "keyUsage 8 unused bits": ("03 02 03 88", "03 02 08 88"),
    "keyUsage with 2 bytes": ("04 04 03 02 03 88", "04 04 03 02 07 80"),
    "basicConstraints not a SEQUENCE": ("04 02 30 00", "04 02 01 00"),
    "SAN dNSName constructed": ("82 18 64", "a2 18 64"),
    "SAN x400Address": ("82 18 64", "83 18 64"),
    "SAN otherName": ("82 18 64", "80 18 64"),
    "SAN not UTF-8": ("82 18 64", "82 18 ff"),
    "SAN not ASCII": ("82 18 64 65", "82 18 c3 a9"),
    "CN as PrintableString": ("0c 0b 64", "13 0b 64"),
    "O as BMPString": ("0c 0c 41", "1e 0c 41"),  # "Ac" is U+4163 there
    "O as UniversalString": ("0c 0c 41", "1c 0c 41"),
    "CN as BMPString of odd length": ("0c 0b 64", "1e 0b 64"),
    "CN as UniversalString": ("0c 0b 64", "1c 0b 64"),
    "CN as OCTET STRING": ("0c 0b 64", "04 0b 64"),
    "CN as T61String": ("0c 0b 64", "14 0b 64"),
    "CN not UTF-8": ("0c 0b 64", "0c 0b ff"),
    "CN with a comma": ("0c 0b 64", "0c 0b 2c"),
    "CN with a leading #": ("0c 0b 64", "0c 0b 23"),
    "CN with NUL": ("0c 0b 64", "0c 0b 00"),
    "CN type unknown": ("06 03 55 04 03", "06 03 55 04 41"),
    "O becomes OU": ("06 03 55 04 0a", "06 03 55 04 0b"),
    "basicConstraints becomes CRL number": ("55 1d 13", "55 1d 14"),
    "SKI becomes a second SAN": ("55 1d 0e", "55 1d 11"),
    "SKI becomes AKI": ("55 1d 0e 04 16 04", "55 1d 23 04 16 04"),
    "SKI becomes EKU": ("55 1d 0e", "55 1d 25"),
    "SKI not an OCTET STRING": ("04 16 04 14", "04 16 05 14"),
    "SKI of indefinite length": ("04 16 04 14", "04 16 04 80"),
    "keyUsage not critical": ("55 1d 0f 01 01 ff", "55 1d 0f 01 01 00"),
}


@pytest.mark.parametrize("edit", list(_EDITS.values()), ids=list(_EDITS))
def test_edited_device_certificates_agree(edit: tuple[str, str]) -> None:
    old, new = (bytes.fromhex(e) for e in edit)
    assert old in GOOD
    compare(GOOD.replace(old, new))  # in issuer and subject alike, for names
    at = GOOD.rindex(old)
    compare(GOOD[:at] + new + GOOD[at + len(old) :])  # in the subject only


# -- generated certificates --------------------------------------------------------------

_NOT_AFTER = [
    datetime(2035, 1, 1, tzinfo=UTC),
    datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),  # the last UTCTime
    datetime(2050, 1, 1, tzinfo=UTC),  # GeneralizedTime
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),  # no expiry
    datetime(2024, 1, 1, tzinfo=UTC),  # expired at AT
]
_Key = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_P256 = ec.generate_private_key(ec.SECP256R1())
_ED25519 = ed25519.Ed25519PrivateKey.generate()
_KEYS: list[_Key] = [_P256, _ED25519]
_PRINTABLE = "ABCXYZabcxyz0189 '()+,-./:=?"
_VALUES = st.one_of(
    st.text(min_size=1, max_size=10),
    st.text(alphabet=' #"+,;<>\\\x00=aZé', min_size=1, max_size=5),
    st.sampled_from(["Acme Devices", " Acme Devices", "Other Org", "DE", "x" * 65, "a"]),
)
#: string type -> values cryptography can encode as that type
_STRING_TYPES = {
    None: _VALUES,
    _ASN1Type.UTF8String: _VALUES,
    _ASN1Type.PrintableString: st.text(alphabet=_PRINTABLE, min_size=1, max_size=8),
    _ASN1Type.IA5String: st.text(alphabet=st.characters(max_codepoint=127), min_size=1),
    _ASN1Type.BMPString: st.text(
        alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]), min_size=1
    ),
    _ASN1Type.T61String: st.text(alphabet=st.characters(max_codepoint=255), min_size=1),
}
_NAME_OIDS = [
    NameOID.COMMON_NAME,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.COUNTRY_NAME,
    NameOID.SERIAL_NUMBER,
    NameOID.EMAIL_ADDRESS,
    NameOID.DOMAIN_COMPONENT,
    NameOID.LOCALITY_NAME,
    NameOID.PSEUDONYM,
    x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"),
]


@st.composite
def _attribute(draw: st.DrawFn) -> x509.NameAttribute[str]:
    oid = draw(st.sampled_from(_NAME_OIDS))
    kind = draw(st.sampled_from(list(_STRING_TYPES)))
    encoded_as = kind or _NAMEOID_DEFAULT_TYPE.get(oid, _ASN1Type.UTF8String)
    value = draw(_STRING_TYPES[encoded_as])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return x509.NameAttribute(oid, value, kind, _validate=False)


@st.composite
def _names(draw: st.DrawFn) -> x509.Name:
    rdns = [
        x509.RelativeDistinguishedName(
            draw(st.lists(_attribute(), min_size=1, max_size=2, unique_by=lambda a: a.oid))
        )
        for _ in range(draw(st.integers(0, 4)))
    ]
    return x509.Name(rdns)


_GENERAL_NAMES = st.one_of(
    st.from_regex(r"\A[a-z0-9.*-]{1,20}\Z").map(x509.DNSName),
    st.from_regex(r"\A[a-z]{1,8}@[a-z]{1,8}\.example\Z").map(x509.RFC822Name),
    st.sampled_from(["https://a.example/x", "urn:dev:1"]).map(x509.UniformResourceIdentifier),
    st.sampled_from(["192.0.2.1", "2001:db8::1"]).map(
        lambda ip: x509.IPAddress(ipaddress.ip_address(ip))
    ),
    st.just(x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d")]))),
    st.just(x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4"))),
)
_PURPOSES = st.lists(
    st.sampled_from(
        [
            ExtendedKeyUsageOID.SERVER_AUTH,
            ExtendedKeyUsageOID.CLIENT_AUTH,
            ExtendedKeyUsageOID.CODE_SIGNING,
            ExtendedKeyUsageOID.OCSP_SIGNING,
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
            x509.ObjectIdentifier("1.3.6.1.4.1.99999.7"),
        ]
    ),
    min_size=1,
    max_size=3,
)


@st.composite
def _key_usage(draw: st.DrawFn) -> x509.KeyUsage:
    bits = draw(st.lists(st.booleans(), min_size=9, max_size=9))
    if not bits[4]:
        bits[7] = bits[8] = False  # cryptography cannot build the others
    return x509.KeyUsage(*bits)


@st.composite
def _certificates(draw: st.DrawFn) -> bytes:
    subject = draw(_names())
    issued = draw(st.integers(0, 2))  # 0 self-signed, 1 issued by CA, 2 issuer re-encoded
    ca = load_certificate(CA)
    issuer = subject if issued == 0 else ca.subject
    if issued == 2:  # the same names as other string types: cryptography calls them equal
        issuer = x509.Name(
            [x509.NameAttribute(a.oid, str(a.value), _ASN1Type.UTF8String) for a in ca.subject]
        )
    key = draw(st.sampled_from(_KEYS))
    extensions: list[tuple[x509.ExtensionType, bool]] = []
    if draw(st.booleans()):
        is_ca = draw(st.booleans())
        path = draw(st.one_of(st.none(), st.integers(0, 300))) if is_ca else None
        extensions.append((x509.BasicConstraints(is_ca, path), draw(st.booleans())))
    if draw(st.booleans()):
        extensions.append((draw(_key_usage()), draw(st.booleans())))
    if draw(st.booleans()):
        names = draw(st.lists(_GENERAL_NAMES, min_size=1, max_size=3))
        extensions.append((x509.SubjectAlternativeName(names), draw(st.booleans())))
    if draw(st.booleans()):
        extensions.append((x509.ExtendedKeyUsage(draw(_PURPOSES)), draw(st.booleans())))
    if draw(st.booleans()):
        digest = draw(st.binary(min_size=0, max_size=140))
        extensions.append((x509.SubjectKeyIdentifier(digest), False))
    if draw(st.booleans()):
        kid = draw(st.one_of(st.none(), st.binary(max_size=130)))
        extra = draw(st.booleans())
        aki = x509.AuthorityKeyIdentifier(
            kid,
            [x509.DirectoryName(ca.subject)] if extra else None,
            7 if extra else None,
        )
        extensions.append((aki, False))
    if draw(st.booleans()):
        other = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.9.9"), b"\x05\x00")
        extensions.append((other, draw(st.booleans())))
    return _build(
        subject,
        issuer,
        key,
        key if issued == 0 else _P256,
        serial=draw(st.integers(1, 2**64)),
        not_after=draw(st.sampled_from(_NOT_AFTER)),
        extensions=draw(st.permutations(extensions)),
    )


def _build(
    subject: x509.Name,
    issuer: x509.Name,
    key: _Key,
    sign_with: _Key,
    *,
    serial: int = 1,
    not_after: datetime = _NOT_AFTER[0],
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(datetime(2023, 1, 1, tzinfo=UTC))
        .not_valid_after(not_after)
    )
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    algorithm = None if isinstance(sign_with, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(sign_with, algorithm).public_bytes(serialization.Encoding.DER)


def _self_signed(*attributes: tuple[x509.ObjectIdentifier, str, _ASN1Type | None]) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subject = x509.Name(
            [
                x509.NameAttribute(oid, value, kind, _validate=False)
                for oid, value, kind in attributes
            ]
        )
    return _build(subject, subject, _P256, _P256)


_CN, _O, _C = NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.COUNTRY_NAME
_SPECIAL_NAMES = {
    "CN of 64 bytes": [(_CN, "x" * 64, None)],
    "CN of 65 bytes (cryptography warns)": [(_CN, "x" * 65, None)],
    "CN of 64 bytes in 32 characters": [(_CN, "é" * 32, None)],
    "CN of 66 bytes in 33 characters": [(_CN, "é" * 33, None)],
    "empty CN": [(_CN, "", None)],
    "country of 3 letters (cryptography warns)": [(_C, "DEU", None)],
    "country of 2 letters": [(_C, "DE", None)],
    "O as BMPString": [(_O, "Acme Devices", _ASN1Type.BMPString)],
    "O as UniversalString": [(_O, "Acme", _ASN1Type.UniversalString)],
    "O as VisibleString": [(_O, "Acme", _ASN1Type.VisibleString)],
    "O as T61String": [(_O, "Acme", _ASN1Type.T61String)],
    "O with a trailing space": [(_O, "Acme ", None)],
    "O of one space": [(_O, " ", None)],
    "O with a plus": [(_O, "A+B", None)],
    "O with U+2028": [(_O, "A\u2028B", None)],
}


@pytest.mark.parametrize("attributes", list(_SPECIAL_NAMES.values()), ids=list(_SPECIAL_NAMES))
def test_special_names_agree(attributes: list[tuple[x509.ObjectIdentifier, str, Any]]) -> None:
    compare(_self_signed(*attributes))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_certificates())
def test_generated_certificates_agree(der: bytes) -> None:
    compare(der)


def test_minted_devices_and_cas_take_the_fast_path() -> None:
    """What the product mints must not fall back to the reference (that would be slow)."""
    ca = make_ca("Vendor A", "Fast CA")
    devices = [make_device("Vendor A", "fast-1"), make_device(None, "fast-2", days=None)]
    devices.append(make_device("Vendor A", "fast-3", issuer=ca))
    assert all(compare(d.der) for d in [ca, *devices])


@pytest.mark.parametrize(
    "value",
    [b"\x30\x00", b"\x30\x03\x01\x01\xff", b"\x30\x06\x01\x01\xff\x02\x01\x05"],
    ids=["end-entity", "ca", "ca-path-length"],
)
def test_basic_constraints_forms(value: bytes) -> None:
    assert _basic_constraints(value)[0] == (value != b"\x30\x00")


@pytest.mark.parametrize(
    "value",
    [
        b"\x30\x03\x01\x01\x00",  # cA FALSE encoded (a DEFAULT): cryptography refuses it
        b"\x30\x03\x02\x01\x00",  # pathLen without cA: cryptography refuses it
        b"\x30\x06\x01\x01\xff\x02\x01\xff",  # negative pathLen
        b"\x30\x00\x00",  # trailing byte
    ],
)
def test_other_basic_constraints_take_the_reference_path(value: bytes) -> None:
    with pytest.raises(Unsupported):
        _basic_constraints(value)


def test_only_names_of_ordinary_size_are_kept_once_read() -> None:
    """A member cannot make the name cache hold names the size of a transaction: a big one
    is read every time, with the same answer."""
    from dpki.pki import names

    small = read_layout(GOOD).subject
    unit = x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "u" * 60)
    big = x509.Name([x509.RelativeDistinguishedName([unit])] * 40).public_bytes()
    assert len(big) > names._KEPT_NAME_BYTES >= len(small)
    names._read_kept.cache_clear()
    for name in (big, small, big, small):
        assert names.read_name(name) == names._read_name(name)
    info = names._read_kept.cache_info()
    assert (info.currsize, info.hits) == (1, 1)  # the small one, read once then kept


def test_only_signature_algorithms_of_ordinary_size_are_kept() -> None:
    from dpki.pki import keys

    cert = load_certificate(GOOD)
    encoded = read_layout(GOOD).signature_algorithm
    big = encoded + bytes(keys._KEPT_ALGORITHM_BYTES)  # as a member could make one
    keys._SIGNATURE_ALGORITHMS.clear()
    found = [keys.signature_algorithm_of(cert, e) for e in (big, encoded)]
    assert found[0] is not None and found[1] is not None
    assert found[0][:2] == found[1][:2]  # the same algorithm and hash, either way
    assert list(keys._SIGNATURE_ALGORITHMS) == [encoded]
