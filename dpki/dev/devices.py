"""Demo device certificates: what a vendor's factory line would mint (P-256, self-signed, or
issued by the vendor's own CA with :func:`make_ca`).

The profile follows IEEE 802.1AR DevIDs: subject O is the vendor, CN and serialNumber name
the device, keyUsage digitalSignature + keyAgreement, EKU clientAuth/serverAuth, and
optionally notAfter 99991231235959Z ("no well-defined expiration").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Device", "make_ca", "make_device"]

NO_EXPIRY = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Device:
    """A device key and its certificate."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        """Return the certificate's DER."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        """Return the certificate's PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """Return the private key as unencrypted PKCS#8 PEM (demo devices only)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def make_device(
    organization: str | None,
    serial: str,
    *,
    not_before: dt.datetime | None = None,
    days: int | None = 3650,
    common_name: str | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
    issuer: Device | None = None,
) -> Device:
    """Mint a P-256 device certificate (``days=None``: no expiry), self-signed or issued by
    ``issuer`` (a CA from :func:`make_ca`)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    start = (not_before or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    end = NO_EXPIRY if days is None else start + dt.timedelta(days=days)
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name or f"device-{serial}"))
    attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    name = x509.Name(attrs)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(f"{serial}.devices.example")]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    if issuer is not None:
        cert = cert.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    return Device(key, cert.sign(issuer.key if issuer else key, hashes.SHA256()))


def make_ca(organization: str, name: str = "Device CA", *, days: int = 7300) -> Device:
    """Mint a self-signed P-256 issuing CA (cA=TRUE, keyCertSign + cRLSign) for devices."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Device(key, cert)
