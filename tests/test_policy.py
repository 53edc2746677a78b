"""The policy: one defect per file gives exactly its code; boundaries; issuers; settings."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dpki.errors import PolicyError
from dpki.pki.codes import REJECTION_REASONS, rejection_name
from dpki.pki.policy import (
    DEFAULT,
    UNDERSTOOD_EXTENSIONS,
    IssuerCandidate,
    Policy,
    StaticIssuers,
    Verdict,
    evaluate,
)
from dpki.pki.x509 import CertificateFacts, facts, load_certificates, load_facts

CERTS = Path(__file__).resolve().parent / "certs"
MANIFEST = json.loads((CERTS / "expected.json").read_text())
AT = datetime.fromisoformat(MANIFEST["at"])
ORG = MANIFEST["organization"]
KNOWN_ANSWERS = sorted((f, e) for f, e in MANIFEST["files"].items() if "codes" in e)

TABLE = (
    "ORG_MISMATCH",
    "KU_SIGNATURE_WITHOUT_IDENTITY",
    "BAD_SIGNATURE",
    "UNKNOWN_ISSUER",
    "ISSUER_NOT_ACTIVE",
    "ISSUER_NOT_CA",
    "EXPIRED",
    "NOT_YET_VALID",
    "VALIDITY_TOO_LONG",
    "WEAK_KEY",
    "WEAK_SIGNATURE_HASH",
    "NOT_V3",
    "UNKNOWN_CRITICAL_EXTENSION",
    "CA_WITHOUT_KEYCERTSIGN",
)
#: codes added after MALFORMED (15), SUBMISSION_MISMATCH (16) and the entitlement codes
LATER = ("WEAK_ISSUER_KEY", "KEYCERTSIGN_WITHOUT_CA", "EXPLICIT_CURVE_PARAMETERS")


def one(path: str) -> CertificateFacts:
    """Load the single certificate in a test file."""
    (found,) = load_facts(CERTS / path)
    return found


def issuers_from(*paths: str, active: bool | None = None) -> StaticIssuers:
    """Build a static look-up from test files."""
    certs = [c for p in paths for c in load_certificates(CERTS / p)]
    return StaticIssuers(certs, active=active)


def check(
    f: CertificateFacts | x509.Certificate,
    *,
    at: datetime = AT,
    organization: str | None = ORG,
    issuers: StaticIssuers | None = None,
    policy: Policy = DEFAULT,
) -> tuple[str, ...]:
    """Return the violation codes of one evaluation."""
    return evaluate(f, organization=organization, at=at, issuers=issuers, policy=policy).codes


# -- known answers -----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "expected"), KNOWN_ANSWERS, ids=[f for f, _ in KNOWN_ANSWERS])
def test_each_file_gives_exactly_its_codes(path: str, expected: dict[str, object]) -> None:
    lookup = issuers_from(*expected["issuers"]) if "issuers" in expected else None  # type: ignore[misc]
    for f in load_facts(CERTS / path):
        verdict = evaluate(f, organization=ORG, at=AT, issuers=lookup)
        assert list(verdict.codes) == expected["codes"], [v.message for v in verdict.violations]
        assert verdict.ok is (not expected["codes"])
        for violation in verdict.violations:
            assert "got" in violation.message and "want" in violation.message
            assert violation.number == REJECTION_REASONS[violation.code]


def test_every_code_but_two_has_a_file() -> None:
    covered = {c for _, e in KNOWN_ANSWERS for c in e["codes"]}
    # ISSUER_NOT_ACTIVE needs a ledger status, VALIDITY_TOO_LONG a non-default policy
    assert covered == set(TABLE + LATER) - {"ISSUER_NOT_ACTIVE", "VALIDITY_TOO_LONG"}


def test_evaluate_takes_a_certificate_or_facts() -> None:
    f = one("expired.pem")
    assert check(f.certificate) == check(f) == ("EXPIRED",)


# -- time --------------------------------------------------------------------------------

SECOND = timedelta(seconds=1)
SKEW = DEFAULT.clock_skew


@pytest.mark.parametrize(
    ("offset", "codes"),
    [
        pytest.param(-SECOND, (), id="notAfter-1s"),
        pytest.param(timedelta(0), (), id="at-notAfter"),
        pytest.param(SECOND, (), id="notAfter+1s-within-skew"),
        pytest.param(SKEW, (), id="notAfter+skew"),
        pytest.param(SKEW + SECOND, ("EXPIRED",), id="notAfter+skew+1s"),
        pytest.param(SKEW + timedelta(microseconds=1), ("EXPIRED",), id="notAfter+skew+1us"),
    ],
)
def test_expiry_boundary(offset: timedelta, codes: tuple[str, ...]) -> None:
    f = one("good_device_p256.pem")
    assert check(f, at=f.not_after + offset) == codes


@pytest.mark.parametrize(
    ("offset", "codes"),
    [
        pytest.param(SECOND, (), id="notBefore+1s"),
        pytest.param(timedelta(0), (), id="at-notBefore"),
        pytest.param(-SKEW, (), id="notBefore-skew"),
        pytest.param(-SKEW - SECOND, ("NOT_YET_VALID",), id="notBefore-skew-1s"),
    ],
)
def test_not_yet_valid_boundary(offset: timedelta, codes: tuple[str, ...]) -> None:
    f = one("good_device_p256.pem")
    assert check(f, at=f.not_before + offset) == codes


def test_zero_skew() -> None:
    f = one("good_device_p256.pem")
    strict = Policy(clock_skew=timedelta(0))
    assert check(f, at=f.not_after, policy=strict) == ()
    assert check(f, at=f.not_after + SECOND, policy=strict) == ("EXPIRED",)
    assert check(f, at=f.not_before - SECOND, policy=strict) == ("NOT_YET_VALID",)


def test_no_expiry_is_valid_at_any_time() -> None:
    f = one("no_expiry_8021ar.pem")
    assert check(f, at=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)) == ()
    assert check(f, at=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == ()


def test_at_in_another_zone_is_the_same_instant() -> None:
    f = one("good_device_p256.pem")
    plus_two = timezone(timedelta(hours=2))
    assert check(f, at=(f.not_after + SKEW).astimezone(plus_two)) == ()
    assert check(f, at=(f.not_after + SKEW + SECOND).astimezone(plus_two)) == ("EXPIRED",)


def test_naive_time_is_refused() -> None:
    with pytest.raises(PolicyError, match="naive"):
        evaluate(one("good_device_p256.pem"), organization=ORG, at=datetime(2025, 6, 1))


def test_max_validity() -> None:
    ten_years = one("good_device_p256.pem")
    assert check(ten_years, policy=Policy(max_validity=timedelta(days=3653))) == ()
    assert check(ten_years, policy=Policy(max_validity=timedelta(days=365))) == (
        "VALIDITY_TOO_LONG",
    )
    no_expiry = one("no_expiry_8021ar.pem")
    assert check(no_expiry) == ()
    verdict = evaluate(
        no_expiry, organization=ORG, at=AT, policy=Policy(max_validity=timedelta(days=36500))
    )
    assert verdict.codes == ("VALIDITY_TOO_LONG",)
    assert "no expiry" in verdict.violations[0].message


# -- organization ------------------------------------------------------------------------

_KEY = ec.generate_private_key(ec.SECP256R1())


def self_signed(
    org: str | None = ORG,
    cn: str | None = "device",
    usage: x509.KeyUsage | None = None,
    sans: list[x509.GeneralName] | None = None,
    ca: bool | None = None,
    orgs: list[str] | None = None,
) -> x509.Certificate:
    """Build a P-256 self-signed certificate for the rules that read the subject."""
    attrs = []
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    for value in orgs if orgs is not None else ([org] if org is not None else []):
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, value))
    name = x509.Name(attrs)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2026, 1, 1, tzinfo=UTC))
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    return builder.sign(_KEY, hashes.SHA256())


def ku(*bits: str) -> x509.KeyUsage:
    """Build a KeyUsage from snake_case bit names."""
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{n: n in bits for n in names})


@pytest.mark.parametrize(
    ("cert_org", "submitter", "codes"),
    [
        pytest.param("Acme Devices", "Acme Devices", (), id="equal"),
        pytest.param("  Acme Devices ", "Acme Devices", (), id="cert-trimmed"),
        pytest.param("Acme Devices", "\tAcme Devices\u00a0", (), id="submitter-trimmed"),
        pytest.param("Caf\u0065\u0301 SA", "Caf\u00e9 SA", (), id="cert-nfd-vs-nfc"),
        pytest.param("Caf\u00e9 SA", "Caf\u0065\u0301 SA", (), id="submitter-nfd-vs-nfc"),
        pytest.param("acme devices", "Acme Devices", ("ORG_MISMATCH",), id="case-matters"),
        pytest.param("Acme  Devices", "Acme Devices", ("ORG_MISMATCH",), id="inner-space"),
        pytest.param("Mallory Corp", "Acme Devices", ("ORG_MISMATCH",), id="different"),
        pytest.param(None, "Acme Devices", (), id="no-O-is-not-a-mismatch"),
        pytest.param("Mallory Corp", None, (), id="no-submitter-skips-rule"),
    ],
)
def test_organization(cert_org: str | None, submitter: str | None, codes: tuple[str, ...]) -> None:
    assert check(self_signed(org=cert_org), organization=submitter) == codes


def test_every_o_attribute_must_match() -> None:
    assert check(self_signed(orgs=["Acme Devices", "Acme Devices"])) == ()
    assert check(self_signed(orgs=["Acme Devices", "Mallory Corp"])) == ("ORG_MISMATCH",)


def test_issued_certificates_are_not_held_to_the_submitter_organization() -> None:
    lookup = issuers_from("good_ca.pem")
    assert check(one("good_issued.pem"), organization="Someone Else", issuers=lookup) == ()


# -- identity and key usage --------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "codes"),
    [
        pytest.param(ku("key_agreement"), (), id="keyAgreement"),
        pytest.param(ku("key_encipherment", "data_encipherment"), (), id="encipherment"),
        pytest.param(ku("key_agreement", "encipher_only"), (), id="encipherOnly"),
        pytest.param(ku("digital_signature"), ("KU_SIGNATURE_WITHOUT_IDENTITY",), id="digSig"),
        pytest.param(
            ku("content_commitment"), ("KU_SIGNATURE_WITHOUT_IDENTITY",), id="nonRepudiation"
        ),
        pytest.param(ku("crl_sign"), ("KU_SIGNATURE_WITHOUT_IDENTITY",), id="cRLSign"),
        pytest.param(None, ("KU_SIGNATURE_WITHOUT_IDENTITY",), id="no-keyUsage"),
    ],
)
def test_signing_usage_without_identity(
    usage: x509.KeyUsage | None, codes: tuple[str, ...]
) -> None:
    assert check(self_signed(org=None, cn=None, usage=usage)) == codes


@pytest.mark.parametrize(
    "identity",
    [
        pytest.param({"cn": "device"}, id="CN"),
        pytest.param({"org": ORG}, id="O"),
        pytest.param({"sans": [x509.DNSName("device.example")]}, id="SAN"),
    ],
)
def test_any_identity_allows_signing(identity: dict[str, object]) -> None:
    args: dict[str, object] = {"org": None, "cn": None, "usage": ku("digital_signature")}
    args.update(identity)
    assert check(self_signed(**args)) == ()  # type: ignore[arg-type]


def test_ca_without_key_usage_is_flagged() -> None:
    verdict = evaluate(self_signed(ca=True), organization=ORG, at=AT)
    assert verdict.codes == ("CA_WITHOUT_KEYCERTSIGN",)
    assert "no keyUsage" in verdict.violations[0].message
    assert check(self_signed(ca=True, usage=ku("key_cert_sign"))) == ()


def test_keycertsign_needs_ca_true() -> None:
    """RFC 5280 4.2.1.9: with keyCertSign asserted, cA MUST be asserted too."""
    verdict = evaluate(self_signed(ca=False, usage=ku("key_cert_sign")), organization=ORG, at=AT)
    assert verdict.codes == ("KEYCERTSIGN_WITHOUT_CA",)
    assert "cA=FALSE" in verdict.violations[0].message
    without = evaluate(self_signed(ca=None, usage=ku("key_cert_sign")), organization=ORG, at=AT)
    assert without.codes == ("KEYCERTSIGN_WITHOUT_CA",)
    assert "no basicConstraints" in without.violations[0].message


def test_understood_extensions() -> None:
    assert "2.5.29.19" in UNDERSTOOD_EXTENSIONS  # basicConstraints
    assert "2.5.29.30" not in UNDERSTOOD_EXTENSIONS  # nameConstraints: not enforced
    assert len(UNDERSTOOD_EXTENSIONS) == 9


# -- issuers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("active", "codes"),
    [
        pytest.param(None, (), id="from-a-file"),
        pytest.param(True, (), id="active-on-ledger"),
        pytest.param(False, ("ISSUER_NOT_ACTIVE",), id="not-active-on-ledger"),
    ],
)
def test_issuer_status(active: bool | None, codes: tuple[str, ...]) -> None:
    lookup = issuers_from("good_ca.pem", active=active)
    assert check(one("good_issued.pem"), issuers=lookup) == codes


def test_no_issuer_known() -> None:
    assert check(one("good_issued.pem")) == ("UNKNOWN_ISSUER",)
    assert check(one("good_issued.pem"), issuers=StaticIssuers([])) == ("UNKNOWN_ISSUER",)
    unrelated = issuers_from("good_device_p256.pem")
    assert check(one("good_issued.pem"), issuers=unrelated) == ("UNKNOWN_ISSUER",)


def test_issuer_look_up_is_any_callable() -> None:
    ca = load_certificates(CERTS / "good_ca.pem")[0]
    verdict = evaluate(
        one("good_issued.pem"),
        organization=ORG,
        at=AT,
        issuers=lambda cert: [IssuerCandidate(ca, active=False)],
    )
    assert verdict.codes == ("ISSUER_NOT_ACTIVE",)


def test_forged_issuer_name_and_real_issuer_side_by_side() -> None:
    forged = one("issued_bad_signature.pem")
    assert check(forged, issuers=issuers_from("good_ca.pem")) == ("BAD_SIGNATURE",)
    # same name, two keys: the one that verifies wins, whatever the order
    real = one("good_issued.pem")
    ca = load_certificates(CERTS / "good_ca.pem")[0]
    impostor = self_signed_ca_named(ca.subject)
    for order in ([ca, impostor], [impostor, ca]):
        assert check(real, issuers=StaticIssuers(order)) == ()


def self_signed_ca_named(name: x509.Name) -> x509.Certificate:
    """Build a CA certificate with ``name`` but a fresh key."""
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(99)
        .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2035, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ku("key_cert_sign"), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def test_static_issuers_prefer_the_matching_key_identifier() -> None:
    real = one("good_issued.pem").certificate
    ca = load_certificates(CERTS / "good_ca.pem")[0]
    impostor = self_signed_ca_named(ca.subject)
    found = StaticIssuers([impostor, ca])(real)
    assert [c.certificate for c in found] == [ca, impostor]


def test_prefer_an_active_ca_among_verifying_issuers() -> None:
    ca = load_certificates(CERTS / "good_ca.pem")[0]
    lookup = StaticIssuers([IssuerCandidate(ca, active=False), IssuerCandidate(ca, active=True)])
    assert check(one("good_issued.pem"), issuers=lookup) == ()


def test_issuer_not_ca_and_not_active_together() -> None:
    lookup = issuers_from("issuer_not_ca/issuer.pem", active=False)
    assert check(one("issuer_not_ca/leaf.pem"), issuers=lookup) == (
        "ISSUER_NOT_ACTIVE",
        "ISSUER_NOT_CA",
    )


def test_self_signed_certificates_ignore_the_look_up() -> None:
    def fail(cert: x509.Certificate) -> list[IssuerCandidate]:
        raise AssertionError("looked up an issuer for a self-signed certificate")

    assert evaluate(one("good_device_p256.pem"), organization=ORG, at=AT, issuers=fail).ok


# -- settings and codes ------------------------------------------------------------------


def test_reason_codes_are_the_table_in_order() -> None:
    assert tuple(REJECTION_REASONS)[: len(TABLE)] == TABLE
    assert [REJECTION_REASONS[c] for c in TABLE] == list(range(1, len(TABLE) + 1))
    assert REJECTION_REASONS["MALFORMED"] == len(TABLE) + 1
    assert REJECTION_REASONS["SUBMISSION_MISMATCH"] == len(TABLE) + 2
    assert [REJECTION_REASONS[c] for c in LATER] == [22, 23, 24]
    assert len(set(REJECTION_REASONS.values())) == len(REJECTION_REASONS)


def test_rejection_name() -> None:
    for name, number in REJECTION_REASONS.items():
        assert rejection_name(number) == name
    assert rejection_name(0) == "UNSPECIFIED"
    with pytest.raises(PolicyError):
        rejection_name(99)


def test_violations_come_in_table_order() -> None:
    ca = load_certificates(CERTS / "good_ca.pem")[0]
    verdict = evaluate(
        one("issued_by_unknown.pem"),
        organization=ORG,
        at=datetime(2040, 1, 1, tzinfo=UTC),
        issuers=StaticIssuers([ca]),
        policy=Policy(max_validity=timedelta(days=30)),
    )
    assert verdict.codes == ("UNKNOWN_ISSUER", "EXPIRED", "VALIDITY_TOO_LONG")
    numbers = [v.number for v in verdict.violations]
    assert numbers == sorted(numbers)


def test_policy_settings() -> None:
    assert DEFAULT.min_rsa_bits == 2048
    assert DEFAULT.clock_skew == timedelta(minutes=5)
    assert DEFAULT.max_validity is None
    assert Policy(allowed_curves=frozenset({"P-256"})).allowed_curves == {"secp256r1"}
    assert check(one("rsa1024.pem"), policy=Policy(min_rsa_bits=1024)) == ()
    k1 = Policy(allowed_curves=DEFAULT.allowed_curves | {"secp256k1"})
    assert check(one("ec_secp256k1.pem"), policy=k1) == ()
    only_rsa = Policy(allowed_key_algorithms=frozenset({"RSA"}))
    assert check(one("good_device_p256.pem"), policy=only_rsa) == ("WEAK_KEY",)
    allow_sha1 = Policy(forbidden_signature_hashes=frozenset({"md5"}))
    assert check(one("sha1_signature.pem"), policy=allow_sha1) == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.min_rsa_bits = 1024  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"clock_skew": timedelta(seconds=-1)}, id="negative-skew"),
        pytest.param({"max_validity": timedelta(0)}, id="zero-max-validity"),
        pytest.param({"min_rsa_bits": -1}, id="negative-rsa"),
        pytest.param({"allowed_curves": "secp256r1"}, id="curves-as-string"),
    ],
)
def test_bad_policy_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(PolicyError, match="want"):
        Policy(**kwargs)  # type: ignore[arg-type]


def test_verdict_is_immutable_and_keeps_the_facts() -> None:
    f = one("expired.pem")
    verdict = evaluate(f, organization=ORG, at=AT)
    assert isinstance(verdict, Verdict) and verdict.facts is f and not verdict.ok
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.ok = True  # type: ignore[misc]
    assert facts(f.certificate, der=f.der) == f


def test_self_issued_certificate_signed_by_another_key_of_that_name() -> None:
    ca = load_certificates(CERTS / "good_ca.pem")[0]
    old_key = ec.generate_private_key(ec.SECP256R1())
    old_ca = (
        x509.CertificateBuilder()
        .subject_name(ca.subject)
        .issuer_name(ca.subject)
        .public_key(old_key.public_key())
        .serial_number(7)
        .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2035, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ku("key_cert_sign"), critical=True)
        .sign(old_key, hashes.SHA256())
    )
    # key rollover: the new CA key certified under the old key, same name on both sides
    rollover = (
        x509.CertificateBuilder()
        .subject_name(ca.subject)
        .issuer_name(ca.subject)
        .public_key(ca.public_key())
        .serial_number(8)
        .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2035, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ku("key_cert_sign"), critical=True)
        .sign(old_key, hashes.SHA256())
    )
    f = facts(rollover)
    assert f.self_issued and f.self_signature_valid is False
    assert check(f) == ("BAD_SIGNATURE",)
    assert check(f, issuers=StaticIssuers([old_ca]), organization="Someone Else") == ()
