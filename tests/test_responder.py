"""The OCSP responder's own key and certificate: created once, checked, refused when wrong,
and put on the ledger like any device so that clients can check the responder there too."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from inquiry_helpers import DPKI, Node, put_on_ledger, self_signed, write_key
from registry_helpers import mine_at

from dpki.dev.devices import Device, make_device
from dpki.errors import ConfigError
from dpki.inquiry.ocsp import OcspResponder, StatusIndex, load_or_create_identity
from dpki.inquiry.store import Store
from dpki.pki.policy import evaluate


def test_created_on_first_start_then_reused(tmp_path: Path) -> None:
    key, cert = tmp_path / "r.key", tmp_path / "r.pem"
    first = load_or_create_identity(key, cert, organization="Operator B")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = load_or_create_identity(key, cert)
    assert again.certificate == first.certificate
    subject = first.certificate.subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Operator B"
    eku = first.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING in eku
    now = dt.datetime.now(dt.UTC)
    assert evaluate(first.certificate, organization="Operator B", at=now).ok


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def test_refuses_half_a_pair_a_foreign_key_and_an_expired_certificate(tmp_path: Path) -> None:
    key, cert = tmp_path / "r.key", tmp_path / "r.pem"
    load_or_create_identity(key, cert)
    with pytest.raises(ConfigError, match="only one of"):
        load_or_create_identity(key, tmp_path / "missing.pem")
    other = ec.generate_private_key(ec.SECP256R1())
    write_key(tmp_path / "other.key", other)
    with pytest.raises(ConfigError, match="does not hold the public key"):
        load_or_create_identity(tmp_path / "other.key", cert)
    old = ec.generate_private_key(ec.SECP256R1())
    write_key(tmp_path / "old.key", old)
    (tmp_path / "old.pem").write_bytes(
        self_signed(old, "responder", days=-1, since=dt.timedelta(days=60)).public_bytes(
            serialization.Encoding.PEM
        )
    )
    with pytest.raises(ConfigError, match=r"breaks the policy.*EXPIRED"):
        load_or_create_identity(tmp_path / "old.key", tmp_path / "old.pem")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    write_key(tmp_path / "small.key", small)
    (tmp_path / "small.pem").write_bytes(
        self_signed(small, "responder", since=dt.timedelta(days=60)).public_bytes(
            serialization.Encoding.PEM
        )
    )
    with pytest.raises(ConfigError, match="WEAK_KEY"):
        load_or_create_identity(tmp_path / "small.key", tmp_path / "small.pem")


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_rsa_and_ed25519_responders_sign_verifiable_answers(tmp_path: Path, kind: str) -> None:
    key: PrivateKey | ed25519.Ed25519PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    write_key(tmp_path / "r.key", key)
    certificate = self_signed(key, f"{kind} responder")
    (tmp_path / "r.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    identity = load_or_create_identity(tmp_path / "r.key", tmp_path / "r.pem")
    responder = OcspResponder(StatusIndex(Store(f"sqlite:///{tmp_path / 'i.sqlite'}")), identity)
    responder.refresh()
    device = make_device("Vendor A", "x")
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(device.certificate, device.certificate, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    response = ocsp.load_der_ocsp_response(responder.respond(request))
    assert response.certificate_status == ocsp.OCSPCertStatus.UNKNOWN  # not in the index
    assert verifies_under_key(response, certificate)


def verifies_under_key(response: ocsp.OCSPResponse, signer: x509.Certificate) -> bool:
    """Check an OCSP response's signature with the signer's public key."""
    public = signer.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        from cryptography.hazmat.primitives.asymmetric import padding

        public.verify(
            response.signature,
            response.tbs_response_bytes,
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(response.signature, response.tbs_response_bytes)
    return True


def test_serve_with_a_bad_responder_key_exits_cleanly(tmp_path: Path) -> None:
    (tmp_path / "bad.key").write_text("not a key")
    (tmp_path / "bad.pem").write_text("not a certificate")
    done = subprocess.run(
        [*DPKI, "serve", "--db", f"sqlite:///{tmp_path / 'i.sqlite'}",
         "--responder-key", str(tmp_path / "bad.key"),
         "--responder-cert", str(tmp_path / "bad.pem"), "--port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot read the responder key/certificate" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_responder_certificate_goes_on_the_ledger_and_answers_for_itself(
    node: Node,
) -> None:
    pem = requests.get(node.url + "/ocsp/responder.pem", timeout=5).content
    certificate = x509.load_pem_x509_certificate(pem)
    key_path = next(node.dir.glob("ocsp-responder.key"))  # created beside the index
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    # anvil's clock restarts from the snapshot's block after every revert, so chain time may
    # trail wall time by the suite's run time; the responder certificate starts 5 minutes
    # before wall time (devices an hour before): bring the chain to wall time first
    catch_up = max(int(time.time()), node.registry.block_timestamp() + 1)
    mine_at(node.registry.rpc_url, catch_up)
    responder_id = put_on_ledger(node.registry, node.accounts, Device(key, certificate))
    record = node.registry.status_of(responder_id)
    now = node.registry.block_timestamp()
    assert node.registry.is_valid(responder_id), (record, now, node.registry.threshold())
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certificate, certificate, hashes.SHA256())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )

    def answer() -> ocsp.OCSPResponse:
        body = requests.post(node.url + "/ocsp", data=request, timeout=5).content
        return ocsp.load_der_ocsp_response(body)

    node.reindex(lambda: answer().certificate_status == ocsp.OCSPCertStatus.GOOD)
    response = answer()
    assert response.responder_key_hash is not None
    assert response.certificates == [certificate]
