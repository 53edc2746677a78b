"""Parsing: PEM/DER loading, the facts, the ledger hashes, and malformed input."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpki.errors import DpkiError, ParseError
from dpki.pki.policy import Verdict, evaluate
from dpki.pki.x509 import (
    NO_EXPIRY,
    CertificateFacts,
    cert_id,
    dn,
    facts,
    load_certificate,
    load_certificates,
    load_facts,
    normalize_organization,
    organization_hash,
    split_der,
    validity_seconds,
    verifies_under,
)

CERTS = Path(__file__).resolve().parent / "certs"
MANIFEST = json.loads((CERTS / "expected.json").read_text())
AT = datetime.fromisoformat(MANIFEST["at"])
MALFORMED = sorted(f for f, e in MANIFEST["files"].items() if "error" in e)
READABLE = sorted(f for f, e in MANIFEST["files"].items() if "error" not in e)


def one(path: str) -> CertificateFacts:
    """Load the single certificate in a test file."""
    (found,) = load_facts(CERTS / path)
    return found


# -- loading -----------------------------------------------------------------------------


def test_id_is_sha256_of_the_der() -> None:
    der = (CERTS / "good_device_p256.der").read_bytes()
    assert cert_id(der) == hashlib.sha256(der).hexdigest()
    assert one("good_device_p256.der").id == cert_id(der)
    assert one("good_device_p256.pem").id == cert_id(der)


def test_pem_id_is_over_the_decoded_block() -> None:
    text = (CERTS / "good_ca.pem").read_bytes()
    body = b"".join(text.split(b"-----")[2].split())
    assert one("good_ca.pem").id == hashlib.sha256(base64.b64decode(body)).hexdigest()


@pytest.mark.parametrize("path", READABLE)
def test_readable_files_load_from_path_and_bytes(path: str) -> None:
    from_path = load_facts(CERTS / path)
    from_str = load_facts(str(CERTS / path))
    from_bytes = load_facts((CERTS / path).read_bytes())
    assert [f.id for f in from_path] == [f.id for f in from_bytes] == [f.id for f in from_str]
    assert len(load_certificates(CERTS / path)) == len(from_path)


def test_several_pem_certificates_in_one_file_keep_their_order() -> None:
    bundle = load_facts(CERTS / "bundle_two_good.pem")
    assert [f.id for f in bundle] == [one("good_device_p256.pem").id, one("good_ca.pem").id]


def test_pem_with_text_keys_and_headers_around_it() -> None:
    good = (CERTS / "good_device_p256.pem").read_bytes()
    noisy = b"Some text first.\n" + (CERTS / "key_only.pem").read_bytes() + b"\n" + good + b"end"
    assert [f.id for f in load_facts(noisy)] == [one("good_device_p256.pem").id]
    old = good.replace(b"BEGIN CERTIFICATE", b"BEGIN X509 CERTIFICATE").replace(
        b"END CERTIFICATE", b"END X509 CERTIFICATE"
    )
    assert load_facts(old)[0].id == one("good_device_p256.pem").id
    crlf = good.replace(b"\n", b"\r\n")
    assert load_facts(crlf)[0].id == one("good_device_p256.pem").id


@pytest.mark.parametrize("path", MALFORMED)
def test_malformed_files_raise_parse_error_saying_got_and_want(path: str) -> None:
    with pytest.raises(ParseError) as info:
        load_facts(CERTS / path)
    message = str(info.value)
    assert "got" in message and "want" in message
    assert str(CERTS / path) in message
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"hello world", "neither PEM", id="text"),
        pytest.param(b"\x30\x82\x10\x00abc", "truncated", id="der-too-short"),
        pytest.param(b"\x30\x03\x02\x01\x01", "do not parse", id="der-not-a-cert"),
        pytest.param(b"-----BEGIN CERTIFICATE-----\nAAAA\n", "END line", id="pem-no-end"),
        pytest.param(
            b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "empty PEM", id="pem-empty"
        ),
        pytest.param(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "do not parse",
            id="pem-garbage-der",
        ),
        pytest.param(
            b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", "X509 CRL", id="pem-crl"
        ),
    ],
)
def test_malformed_bytes(data: bytes, fragment: str) -> None:
    with pytest.raises(ParseError, match=fragment):
        load_facts(data)


def test_der_with_trailing_bytes_is_rejected() -> None:
    der = (CERTS / "good_device_p256.der").read_bytes()
    with pytest.raises(ParseError):
        load_facts(der + b"\x00")


def test_missing_file_and_directory_are_parse_errors(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="cannot read"):
        load_facts(tmp_path / "absent.pem")
    with pytest.raises(ParseError, match="cannot read"):
        load_facts(tmp_path)


def test_one_bad_block_names_its_position() -> None:
    good = (CERTS / "good_device_p256.pem").read_bytes()
    bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(ParseError, match="certificate 2 of 2"):
        load_facts(good + bad)


def test_split_der_returns_exact_der() -> None:
    der = (CERTS / "good_device_p256.der").read_bytes()
    assert split_der(der) == [der]
    assert split_der((CERTS / "good_device_p256.pem").read_bytes()) == [der]


# -- facts -------------------------------------------------------------------------------


def test_facts_of_a_good_device() -> None:
    f = one("good_device_p256.pem")
    cert = f.certificate
    assert f.version == 3
    assert f.subject == "O=Acme Devices,CN=device-0001" == f.issuer
    assert f.subject_organization == "Acme Devices"
    assert f.subject_organizations == ("Acme Devices",)
    assert f.subject_common_name == "device-0001"
    assert f.subject_alt_names == ("DNS:device-0001.acme.example",)
    assert (f.key_algorithm, f.key_size, f.key_curve) == ("EC", 256, "secp256r1")
    assert f.key_usage == frozenset({"digitalSignature", "keyAgreement"})
    assert f.extended_key_usage is None
    assert (f.ca, f.path_length, f.has_basic_constraints) == (False, None, True)
    assert f.critical_extensions == ("2.5.29.19", "2.5.29.15")
    assert f.not_before == datetime(2025, 1, 1, tzinfo=UTC)
    assert f.not_after == datetime(2035, 1, 1, tzinfo=UTC)
    assert f.not_before.tzinfo is not None
    assert f.signature_hash == "sha256"
    assert f.signature_algorithm == "1.2.840.10045.4.3.2"
    assert f.self_issued and f.self_signature_valid is True and f.is_self_signed
    assert not f.never_expires
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert f.spki_sha256 == hashlib.sha256(spki).digest()
    assert len(f.spki_sha256) == 32
    assert f.subject_key_identifier is not None and f.authority_key_identifier is None
    assert facts(cert) == f  # re-encoding gives the same DER, so the same facts


@pytest.mark.parametrize(
    "path", ["good_rsa2048.pem", "good_ed25519.pem", "good_ca.pem", "dsa2048.pem"]
)
def test_spki_hash_is_over_the_encoded_key(path: str) -> None:
    f = one(path)
    spki = f.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert f.spki_sha256 == hashlib.sha256(spki).digest()


@pytest.mark.parametrize(
    ("path", "algorithm", "size", "curve"),
    [
        ("good_rsa2048.pem", "RSA", 2048, None),
        ("rsa1024.pem", "RSA", 1024, None),
        ("good_ed25519.pem", "Ed25519", 256, None),
        ("ec_secp256k1.pem", "EC", 256, "secp256k1"),
        ("dsa2048.pem", "DSA", 2048, None),
    ],
)
def test_key_facts(path: str, algorithm: str, size: int, curve: str | None) -> None:
    f = one(path)
    assert (f.key_algorithm, f.key_size, f.key_curve) == (algorithm, size, curve)


def test_ca_facts() -> None:
    f = one("good_ca.pem")
    assert (f.ca, f.path_length) == (True, 0)
    assert f.key_usage == frozenset({"keyCertSign", "cRLSign"})


def test_issued_certificate_is_not_self_issued() -> None:
    f = one("good_issued.pem")
    assert not f.self_issued
    assert f.self_signature_valid is None and not f.is_self_signed
    assert f.authority_key_identifier == one("good_ca.pem").subject_key_identifier
    assert verifies_under(f.certificate, one("good_ca.pem").certificate) is True
    other = one("good_device_p256.pem").certificate
    assert verifies_under(f.certificate, other) is None  # names do not chain


def test_bad_signature_keeps_names_and_signature_apart() -> None:
    f = one("bad_signature.pem")
    assert f.self_issued is True
    assert f.self_signature_valid is False
    assert not f.is_self_signed


def test_signature_hash_names() -> None:
    assert one("sha1_signature.pem").signature_hash == "sha1"
    assert one("md5_signature.pem").signature_hash == "md5"
    assert one("good_ed25519.pem").signature_hash is None
    assert one("sha1_signature.pem").self_signature_valid is True


def test_v1_certificate() -> None:
    f = one("v1.pem")
    assert f.version == 1
    assert f.key_usage is None and f.critical_extensions == ()
    assert f.is_self_signed


def test_no_expiry_certificate() -> None:
    f = one("no_expiry_8021ar.pem")
    assert f.not_after == NO_EXPIRY == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert f.never_expires
    assert validity_seconds(f) == (int(datetime(2024, 3, 1, tzinfo=UTC).timestamp()), 253402300799)
    assert "serialNumber=ACME-0003" in f.subject


def test_validity_seconds_are_ints() -> None:
    start, end = validity_seconds(one("good_device_p256.pem"))
    assert (start, end) == (1735689600, 2051222400)
    assert type(start) is int and type(end) is int


def test_anonymous_certificate_has_no_identity() -> None:
    f = one("anonymous_key_agreement.pem")
    assert (f.subject, f.subject_organization, f.subject_common_name) == ("", None, None)
    assert f.subject_alt_names == ()


# -- organization hash -------------------------------------------------------------------

ACME_HASH = hashlib.sha256(b"Acme Devices").digest()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param("", None, id="empty"),
        pytest.param(" \t\u00a0\u3000", None, id="only-white-space"),
        pytest.param("Acme Devices", "Acme Devices", id="plain"),
        pytest.param("  Acme Devices\n", "Acme Devices", id="trimmed"),
        pytest.param("\u00a0Acme Devices\u2003", "Acme Devices", id="unicode-space-trimmed"),
        pytest.param("Acme  Devices", "Acme  Devices", id="inner-space-kept"),
        pytest.param("ACME DEVICES", "ACME DEVICES", id="case-kept"),
        pytest.param("Caf\u0065\u0301", "Caf\u00e9", id="nfc"),
        pytest.param("\u212b", "\u00c5", id="angstrom-sign-nfc"),
    ],
)
def test_normalize_organization(value: str | None, expected: str | None) -> None:
    assert normalize_organization(value) == expected


def test_organization_hash_rule() -> None:
    assert organization_hash(None) == bytes(32)
    assert organization_hash("") == bytes(32)
    assert organization_hash("   ") == bytes(32)
    assert organization_hash("Acme Devices") == ACME_HASH
    assert organization_hash(" Acme Devices\t") == ACME_HASH
    assert organization_hash("Caf\u0065\u0301") == hashlib.sha256("Café".encode()).digest()
    assert organization_hash("acme devices") != ACME_HASH
    assert organization_hash("Vendor A").hex() == hashlib.sha256(b"Vendor A").hexdigest()


def test_organization_hash_of_a_certificate() -> None:
    assert organization_hash(one("good_device_p256.pem").subject_organization) == ACME_HASH
    assert organization_hash(one("anonymous_key_agreement.pem").subject_organization) == bytes(32)


# -- the cryptography_vectors corpus -----------------------------------------------------

_SKIP_DIRS = {"requests", "ocsp", "crls", "pkcs12", "smime", "certpairs"}


def _vector_files() -> Iterator[Path]:
    root = Path(str(resources.files("cryptography_vectors") / "x509"))
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(names):
            if name.endswith((".pem", ".der", ".crt")) and "crl" not in name:
                path = Path(folder) / name
                if not name.endswith(".pem") or b"CERTIFICATE-----" in path.read_bytes():
                    yield path


def test_every_vector_gives_a_verdict_or_a_parse_error() -> None:
    counts = {"verdicts": 0, "parse_errors": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        for path in _vector_files():
            try:
                loaded = load_facts(path)
            except ParseError as exc:
                assert "got" in str(exc) and "want" in str(exc), path
                counts["parse_errors"] += 1
                continue
            for f in loaded:
                verdict = evaluate(f, organization="Acme Devices", at=AT)
                assert isinstance(verdict, Verdict)
                assert all(v.message for v in verdict.violations)
                if f.self_issued and f.self_signature_valid is not None:
                    # the fast self-check agrees with the general one
                    assert verifies_under(f.certificate, f.certificate) == f.self_signature_valid
                counts["verdicts"] += 1
    assert counts["verdicts"] > 400, counts
    assert counts["parse_errors"] > 10, counts


# -- property tests ----------------------------------------------------------------------

GOOD_DER = (CERTS / "good_device_p256.der").read_bytes()
CA_DER = split_der((CERTS / "good_ca.pem").read_bytes())[0]


def _load_and_evaluate(data: bytes) -> None:
    """Accept a verdict or a ParseError; anything else fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for f in load_facts(data):
                evaluate(f, organization="Acme Devices", at=AT)
        except DpkiError as exc:
            assert isinstance(exc, ParseError), exc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _load_and_evaluate(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600).map(lambda b: b"\x30\x82" + len(b).to_bytes(2, "big") + b))
def test_random_der_sequences(data: bytes) -> None:
    _load_and_evaluate(data)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([GOOD_DER, CA_DER]),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
)
def test_byte_flips_of_good_certificates(der: bytes, flips: list[tuple[int, int]]) -> None:
    mutated = bytearray(der)
    for position, mask in flips:
        mutated[position % len(mutated)] ^= mask
    _load_and_evaluate(bytes(mutated))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([GOOD_DER, CA_DER]), st.integers(0, 10**6), st.binary(max_size=8))
def test_truncations_and_insertions(der: bytes, cut: int, junk: bytes) -> None:
    position = cut % len(der)
    _load_and_evaluate(der[:position])
    _load_and_evaluate(der[:position] + junk + der[position:])


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 255))
def test_byte_flips_inside_pem(position: int, mask: int) -> None:
    pem = bytearray((CERTS / "good_device_p256.pem").read_bytes())
    pem[position % len(pem)] ^= mask
    _load_and_evaluate(bytes(pem))


def test_load_certificate_wraps_cryptography_errors() -> None:
    with pytest.raises(ParseError, match="do not parse"):
        load_certificate(GOOD_DER[:-10])
    assert isinstance(load_certificate(GOOD_DER), x509.Certificate)


_NAME_OIDS = [
    NameOID.COMMON_NAME,
    NameOID.ORGANIZATION_NAME,
    NameOID.COUNTRY_NAME,
    NameOID.SERIAL_NUMBER,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.EMAIL_ADDRESS,
    x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"),
]
_NAME_VALUES = st.one_of(
    st.text(min_size=1, max_size=12),
    st.text(alphabet=' #"+,;<>\\\x00=aZ', min_size=1, max_size=6),
    st.sampled_from(["Vendor A", " lead", "trail ", "#hash", " ", "é ü"]),
)


@st.composite
def _names(draw: st.DrawFn) -> x509.Name:
    rdns = []
    for _ in range(draw(st.integers(0, 4))):
        oids = draw(st.lists(st.sampled_from(_NAME_OIDS), min_size=1, max_size=2, unique=True))
        values = [draw(_NAME_VALUES) for _ in oids]
        attributes = [
            x509.NameAttribute(o, "DE" if o == NameOID.COUNTRY_NAME else v)
            for o, v in zip(oids, values, strict=True)
        ]
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


@settings(deadline=None)  # the first examples build cryptography's name tables
@given(_names())
def test_dn_text_is_cryptographys_rfc4514_string(name: x509.Name) -> None:
    """dn() writes plain values itself (for speed): always what cryptography writes."""
    from dpki.pki.names import _DN_NAMES, name_facts

    text, organizations, common_names = name_facts(name)
    assert text == name.rfc4514_string(_DN_NAMES) == dn(name)
    assert organizations == tuple(
        str(a.value) for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )
    assert common_names == tuple(
        str(a.value) for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)
    )
