"""Generate the policy test certificates into this folder, one defect per file.

Run from the repository root: ``.venv/bin/python tests/certs/make_certs.py``. Keys are
fresh on every run, so certificate ids change; names, times and expected codes do not.
``expected.json`` maps each file to the codes it must produce (see README.md).
Certificates ``cryptography`` refuses to build (SHA-1, MD5, v1) are made by taking a
certificate it did build, editing the TBSCertificate DER and signing it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent

#: the instant the tests evaluate at, and the organization they submit as
AT = datetime(2025, 6, 1, tzinfo=UTC)
ORGANIZATION = "Acme Devices"

NOT_BEFORE = datetime(2025, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2035, 1, 1, tzinfo=UTC)
NO_EXPIRY = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

_SHA1_RSA = bytes.fromhex("300d06092a864886f70d0101050500")
_MD5_RSA = bytes.fromhex("300d06092a864886f70d0101040500")

Key = CertificateIssuerPrivateKeyTypes


def name(cn: str | None = None, o: str | None = ORGANIZATION, **extra: str) -> x509.Name:
    """Build a subject name from a CN, an O and further attributes by NameOID name."""
    attrs = []
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    if o is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    for oid_name, value in extra.items():
        attrs.append(x509.NameAttribute(getattr(NameOID, oid_name), value))
    return x509.Name(attrs)


def key_usage(*names: str) -> x509.KeyUsage:
    """Build a KeyUsage from snake_case bit names."""
    bits = {
        n: n in names
        for n in (
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
    }
    return x509.KeyUsage(**bits)


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def build(
    subject: x509.Name,
    key: Key,
    *,
    issuer: tuple[x509.Name, Key] | None = None,
    serial: int = 1,
    not_before: datetime = NOT_BEFORE,
    not_after: datetime = NOT_AFTER,
    ca: bool | None = False,
    usage: x509.KeyUsage | None = None,
    sans: Sequence[x509.GeneralName] | None = None,
    extra: list[tuple[x509.ExtensionType, bool]] | None = None,
    extensions: bool = True,
) -> x509.Certificate:
    """Build and sign a certificate; self-signed unless ``issuer`` (name, key) is given."""
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if extensions:
        if ca is not None:
            builder = builder.add_extension(
                x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True
            )
        if usage is None:
            usage = (
                key_usage("key_cert_sign", "crl_sign")
                if ca
                else key_usage("digital_signature", "key_agreement")
            )
        builder = builder.add_extension(usage, critical=True)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
            critical=False,
        )
        if issuer:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False,
            )
        for ext, critical in extra or []:
            builder = builder.add_extension(ext, critical=critical)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


# -- hand-edited DER ---------------------------------------------------------------------


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _children(element: bytes) -> list[bytes]:
    """Split a constructed DER element into its child elements (whole TLVs)."""
    length = element[1]
    pos = 2
    if length & 0x80:
        count = length & 0x7F
        pos += count
    out = []
    while pos < len(element):
        start = pos
        length = element[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(element[pos : pos + count], "big")
            pos += count
        pos += length
        out.append(element[start:pos])
    return out


#: the P-256 curve spelled out as specifiedCurve ECParameters, from
#: ``openssl ecparam -name prime256v1 -param_enc explicit -outform DER``
_P256_EXPLICIT = bytes.fromhex(
    "3081f7020101302c06072a8648ce3d0101022100ffffffff00000001000000000000000000000000"
    "ffffffffffffffffffffffff305b0420ffffffff00000001000000000000000000000000ffffffff"
    "fffffffffffffffc04205ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2"
    "604b031500c49d360886e704936a6678e1139d26b7819f7e900441046b17d1f2e12c4247f8bce6e5"
    "63a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce3357"
    "6b315ececbb6406837bf51f5022100ffffffff00000000ffffffffffffffffbce6faada7179e84f3"
    "b9cac2fc632551020101"
)
_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")


def explicit_spki(cert: x509.Certificate) -> bytes:
    """Return ``cert``'s P-256 SubjectPublicKeyInfo with the curve as explicit parameters."""
    spki = _children(cert.tbs_certificate_bytes)[6]
    _, key_bits = _children(spki)
    return _tlv(0x30, _tlv(0x30, _EC_PUBLIC_KEY + _P256_EXPLICIT) + key_bits)


def resign(
    cert: x509.Certificate,
    sign: Callable[[bytes], bytes],
    *,
    algorithm: bytes | None = None,
    drop_version_and_extensions: bool = False,
    spki: bytes | None = None,
) -> bytes:
    """Re-sign ``cert``'s TBS, optionally with another AlgorithmIdentifier or
    SubjectPublicKeyInfo, or as v1."""
    tbs_fields = _children(cert.tbs_certificate_bytes)
    if spki is not None:
        tbs_fields[6] = spki  # version, serial, signature, issuer, validity, subject, SPKI
    if drop_version_and_extensions:
        tbs_fields = [f for f in tbs_fields if f[0] not in (0xA0, 0xA3)]
    sig_index = 1 if tbs_fields[0][0] == 0x02 else 2  # after [version,] serialNumber
    algorithm = algorithm or tbs_fields[sig_index]
    tbs_fields[sig_index] = algorithm
    tbs = _tlv(0x30, b"".join(tbs_fields))
    signature = sign(tbs)
    return _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\x00" + signature))


def pem(der: bytes) -> bytes:
    """Armour one DER certificate as PEM."""
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def der_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


# -- the set -----------------------------------------------------------------------------


def main() -> None:
    """Write every test certificate and the manifest."""
    out: dict[str, bytes] = {}
    expected: dict[str, dict[str, object]] = {}

    def put(path: str, data: bytes, codes: list[str], *, issuers: list[str] | None = None) -> None:
        out[path] = data
        entry: dict[str, object] = {"codes": codes}
        if issuers:
            entry["issuers"] = issuers
        expected[path] = entry

    def put_error(path: str, data: bytes) -> None:
        out[path] = data
        expected[path] = {"error": "ParseError"}

    dns = [x509.DNSName("device-0001.acme.example")]

    # good ones
    key = p256()
    good = build(name("device-0001"), key, sans=dns)
    put("good_device_p256.pem", pem(der_of(good)), [])
    put("good_device_p256.der", der_of(good), [])
    put(
        "good_rsa2048.pem",
        pem(der_of(build(name("device-rsa"), rsa.generate_private_key(65537, 2048)))),
        [],
    )
    put(
        "good_ed25519.pem",
        pem(der_of(build(name("device-ed25519"), ed25519.Ed25519PrivateKey.generate()))),
        [],
    )
    put(
        "no_expiry_8021ar.pem",
        pem(
            der_of(
                build(
                    name("IDevID device-0003", SERIAL_NUMBER="ACME-0003"),
                    p256(),
                    not_before=datetime(2024, 3, 1, tzinfo=UTC),
                    not_after=NO_EXPIRY,
                    usage=key_usage("digital_signature"),
                )
            )
        ),
        [],
    )
    put(
        "anonymous_key_agreement.pem",
        pem(der_of(build(x509.Name([]), p256(), usage=key_usage("key_agreement")))),
        [],
    )
    ca_key = p256()
    ca_name = name("Acme Device CA")
    ca = build(ca_name, ca_key, ca=True)
    put("good_ca.pem", pem(der_of(ca)), [])
    issued = build(name("device-0002"), p256(), issuer=(ca_name, ca_key), serial=2)
    put("good_issued.pem", pem(der_of(issued)), [], issuers=["good_ca.pem"])
    put("bundle_two_good.pem", pem(der_of(good)) + pem(der_of(ca)), [])

    # one defect each
    put(
        "org_mismatch.pem",
        pem(der_of(build(name("device-0004", o="Mallory Corp"), p256()))),
        ["ORG_MISMATCH"],
    )
    put(
        "ku_signature_without_identity.pem",
        pem(der_of(build(x509.Name([]), p256(), usage=key_usage("digital_signature")))),
        ["KU_SIGNATURE_WITHOUT_IDENTITY"],
    )
    bad = bytearray(der_of(build(name("device-0005"), p256())))
    bad[-1] ^= 0x01  # last byte of the ECDSA signature value
    put("bad_signature.pem", pem(bytes(bad)), ["BAD_SIGNATURE"])
    forged = build(name("device-0006"), p256(), issuer=(ca_name, p256()), serial=6)
    put("issued_bad_signature.pem", pem(der_of(forged)), ["BAD_SIGNATURE"], issuers=["good_ca.pem"])
    unknown_ca = (name("Unknown CA", o="Elsewhere"), p256())
    put(
        "issued_by_unknown.pem",
        pem(der_of(build(name("device-0007"), p256(), issuer=unknown_ca, serial=7))),
        ["UNKNOWN_ISSUER"],
    )
    not_ca_key = p256()
    not_ca_name = name("device-not-a-ca")
    put("issuer_not_ca/issuer.pem", pem(der_of(build(not_ca_name, not_ca_key))), [])
    put(
        "issuer_not_ca/leaf.pem",
        pem(der_of(build(name("device-0008"), p256(), issuer=(not_ca_name, not_ca_key)))),
        ["ISSUER_NOT_CA"],
        issuers=["issuer_not_ca/issuer.pem"],
    )
    put(
        "expired.pem",
        pem(
            der_of(
                build(
                    name("device-0009"),
                    p256(),
                    not_before=datetime(2020, 1, 1, tzinfo=UTC),
                    not_after=datetime(2024, 12, 31, tzinfo=UTC),
                )
            )
        ),
        ["EXPIRED"],
    )
    put(
        "not_yet_valid.pem",
        pem(
            der_of(build(name("device-0010"), p256(), not_before=datetime(2026, 1, 1, tzinfo=UTC)))
        ),
        ["NOT_YET_VALID"],
    )
    put(
        "rsa1024.pem",
        pem(der_of(build(name("device-rsa1024"), rsa.generate_private_key(65537, 1024)))),
        ["WEAK_KEY"],
    )
    put(
        "ec_secp256k1.pem",
        pem(der_of(build(name("device-k1"), ec.generate_private_key(ec.SECP256K1())))),
        ["WEAK_KEY"],
    )
    put(
        "dsa2048.pem",
        pem(
            der_of(
                build(
                    name("device-dsa"),
                    dsa.generate_private_key(2048),
                    usage=key_usage("digital_signature"),
                )
            )
        ),
        ["WEAK_KEY"],
    )
    for label, hash_, alg in (("sha1", hashes.SHA1(), _SHA1_RSA), ("md5", hashes.MD5(), _MD5_RSA)):
        rsa_key = rsa.generate_private_key(65537, 2048)
        template = build(name(f"device-{label}"), rsa_key)

        def sign_rsa(
            tbs: bytes, k: rsa.RSAPrivateKey = rsa_key, h: hashes.HashAlgorithm = hash_
        ) -> bytes:
            return k.sign(tbs, padding.PKCS1v15(), h)

        put(
            f"{label}_signature.pem",
            pem(resign(template, sign_rsa, algorithm=alg)),
            ["WEAK_SIGNATURE_HASH"],
        )
    v1_key = p256()
    v1_template = build(name("device-v1"), v1_key, extensions=False)
    put(
        "v1.pem",
        pem(
            resign(
                v1_template,
                lambda tbs: v1_key.sign(tbs, ec.ECDSA(hashes.SHA256())),
                drop_version_and_extensions=True,
            )
        ),
        ["NOT_V3"],
    )
    put(
        "unknown_critical_ext.pem",
        pem(
            der_of(
                build(
                    name("device-0011"),
                    p256(),
                    extra=[
                        (
                            x509.UnrecognizedExtension(
                                x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1"), b"\x05\x00"
                            ),
                            True,
                        )
                    ],
                )
            )
        ),
        ["UNKNOWN_CRITICAL_EXTENSION"],
    )
    put(
        "ca_without_keycertsign.pem",
        pem(
            der_of(
                build(name("Acme Odd CA"), p256(), ca=True, usage=key_usage("digital_signature"))
            )
        ),
        ["CA_WITHOUT_KEYCERTSIGN"],
    )

    put(
        "keycertsign_without_ca.pem",
        pem(
            der_of(
                build(
                    name("device-0012"),
                    p256(),
                    usage=key_usage("digital_signature", "key_cert_sign"),
                )
            )
        ),
        ["KEYCERTSIGN_WITHOUT_CA"],
    )
    explicit_key = p256()
    explicit_template = build(name("device-explicit"), explicit_key)
    put(
        "explicit_ec_parameters.pem",
        pem(
            resign(
                explicit_template,
                lambda tbs: explicit_key.sign(tbs, ec.ECDSA(hashes.SHA256())),
                spki=explicit_spki(explicit_template),
            )
        ),
        ["EXPLICIT_CURVE_PARAMETERS"],
    )
    # a good leaf signed by a CA whose key breaks the key rules: the CA file has WEAK_KEY,
    # the leaf (checked with it) WEAK_ISSUER_KEY only
    weak_cas: list[tuple[str, Key]] = [
        ("p192", ec.generate_private_key(ec.SECP192R1())),
        ("dsa2048", dsa.generate_private_key(2048)),
        ("rsa1024", rsa.generate_private_key(65537, 1024)),
    ]
    for label, weak_key in weak_cas:
        weak_name = name(f"Acme Weak CA {label}")
        put(
            f"weak_issuer/{label}_ca.pem",
            pem(der_of(build(weak_name, weak_key, ca=True))),
            ["WEAK_KEY"],
        )
        put(
            f"weak_issuer/{label}_leaf.pem",
            pem(
                der_of(build(name(f"device-{label}-issued"), p256(), issuer=(weak_name, weak_key)))
            ),
            ["WEAK_ISSUER_KEY"],
            issuers=[f"weak_issuer/{label}_ca.pem"],
        )

    # not certificates at all
    good_der = der_of(good)
    put_error("truncated.der", good_der[: len(good_der) // 2])
    put_error("truncated.pem", pem(good_der)[:200])
    put_error("not_a_cert.pem", b"this is not a certificate\n")
    put_error(
        "bad_base64.pem",
        b"-----BEGIN CERTIFICATE-----\nMIIB!!notbase64!!\n-----END CERTIFICATE-----\n",
    )
    put_error("empty.pem", b"")
    put_error(
        "key_only.pem",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )

    for path, data in out.items():
        target = HERE / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    manifest = {
        "at": AT.isoformat().replace("+00:00", "Z"),
        "organization": ORGANIZATION,
        "files": dict(sorted(expected.items())),
    }
    (HERE / "expected.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(out)} files and expected.json to {HERE}")


if __name__ == "__main__":
    main()
