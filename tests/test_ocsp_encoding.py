"""The responder's hand-built DER: byte for byte what cryptography's OCSPResponseBuilder writes.

The responder encodes answers from pre-encoded parts and signs the tbsResponseData bytes
itself (for speed). Here each kind of answer is built both ways at the same instant and the
signed parts compared byte for byte; the signature is checked under the responder's key.
`openssl ocsp` and GnuTLS `ocsptool` check the served answers in test_ocsp.py.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp
from inquiry_helpers import self_signed

from dpki.inquiry.ocsp import (
    CertState,
    OcspResponder,
    ResponderIdentity,
    SigningKey,
    StatusIndex,
    revocation_reason,
)
from dpki.inquiry.store import Store
from dpki.pki.codes import Status

NOW = 1_790_000_000
KEYS: dict[str, Callable[[], SigningKey]] = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "rsa": lambda: rsa.generate_private_key(65537, 2048),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
}


@functools.cache
def _identity(kind: str) -> ResponderIdentity:
    key = KEYS[kind]()
    cert = self_signed(key, f"responder {kind}")
    return ResponderIdentity(key, cert, Path("unused.key"), Path("unused.pem"))


def _state(status: Status, reason: int = 0) -> CertState:
    return CertState("00" * 32, 1, int(status), reason, NOW - 100, NOW - 1000, NOW + 1000)


def _reference(
    identity: ResponderIdentity,
    algorithm: hashes.HashAlgorithm,
    cert_id: tuple[bytes, bytes, int],
    state: CertState | None,
    nonce: bytes | None,
    validity: int,
) -> ocsp.OCSPResponse:
    """Build the answer the way the responder did before: OCSPResponseBuilder."""
    this_update = dt.datetime.fromtimestamp(NOW, dt.UTC)
    revoked_at = reason = None
    if state is None or state.status == Status.PENDING:
        cert_status = ocsp.OCSPCertStatus.UNKNOWN
    elif state.status == Status.ACTIVE:
        cert_status = ocsp.OCSPCertStatus.GOOD
    else:
        cert_status = ocsp.OCSPCertStatus.REVOKED
        revoked_at = dt.datetime.fromtimestamp(state.updated_at, dt.UTC)
        reason = revocation_reason(state.status, state.reason)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            *cert_id[:2],
            cert_id[2],
            algorithm,
            cert_status,
            this_update,
            this_update + dt.timedelta(seconds=validity),
            revoked_at,
            reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, identity.certificate)
        .certificates([identity.certificate])
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    key = identity.key
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, digest)


def _verify(identity: ResponderIdentity, response: ocsp.OCSPResponse) -> None:
    public = identity.certificate.public_key()
    data, signature = response.tbs_response_bytes, response.signature
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(signature, data)


STATES = {
    "good": _state(Status.ACTIVE),
    "unknown": None,
    "pending": _state(Status.PENDING),
    "key-compromise": _state(Status.REVOKED, 1),
    "unspecified": _state(Status.REVOKED, 0),
    "suspended": _state(Status.SUSPENDED),
    "superseded": _state(Status.SUPERSEDED),
    "rejected": _state(Status.REJECTED),
}


@pytest.mark.parametrize("kind", sorted(KEYS))
@pytest.mark.parametrize("state", sorted(STATES))
@pytest.mark.parametrize(
    ("nonce", "algorithm", "serial"),
    [
        (None, hashes.SHA1(), 1),
        (b"\x01" * 16, hashes.SHA256(), 0x80),
        (os.urandom(200), hashes.SHA1(), 2**159 + 12345),  # long-form lengths
        (os.urandom(32), hashes.SHA256(), 2**64 - 1),
    ],
    ids=["no-nonce-sha1-1", "16-sha256-128", "200-sha1-160bit", "32-sha256-64bit"],
)
def test_hand_built_answers_equal_the_builders(
    tmp_path: Path,
    kind: str,
    state: str,
    nonce: bytes | None,
    algorithm: hashes.HashAlgorithm,
    serial: int,
) -> None:
    identity = _identity(kind)
    responder = OcspResponder(
        StatusIndex(Store(f"sqlite:///{tmp_path / 'i.sqlite'}")), identity, validity=900
    )
    size = algorithm.digest_size
    cert_id = (b"\x11" * size, b"\x22" * size, serial)
    der = responder._sign(algorithm, *cert_id, STATES[state], nonce, NOW + 0.75)
    ours = ocsp.load_der_ocsp_response(der)
    reference = _reference(identity, algorithm, cert_id, STATES[state], nonce, 900)
    # the builder writes the wall clock into producedAt; ours says the instant it was given
    assert ours.produced_at_utc == dt.datetime.fromtimestamp(NOW, dt.UTC)
    assert ours.this_update_utc == ours.produced_at_utc
    wall = reference.produced_at_utc.strftime("%Y%m%d%H%M%SZ").encode()
    given = ours.produced_at_utc.strftime("%Y%m%d%H%M%SZ").encode()
    assert ours.tbs_response_bytes == reference.tbs_response_bytes.replace(wall, given, 1)
    assert ours.signature_algorithm_oid == reference.signature_algorithm_oid
    assert [c.public_bytes(serialization.Encoding.DER) for c in ours.certificates] == [
        identity.certificate.public_bytes(serialization.Encoding.DER)
    ]
    _verify(identity, ours)
    # everything around the signature is the builder's too (ECDSA signatures vary in size)
    theirs = reference.public_bytes(serialization.Encoding.DER).replace(wall, given, 1)
    assert len(der) - len(ours.signature) == len(theirs) - len(reference.signature)
    assert der.endswith(theirs[theirs.index(reference.signature) + len(reference.signature) :])


def test_a_tampered_answer_does_not_verify(tmp_path: Path) -> None:
    identity = _identity("p256")
    responder = OcspResponder(
        StatusIndex(Store(f"sqlite:///{tmp_path / 'i.sqlite'}")), identity, validity=900
    )
    good = responder._sign(
        hashes.SHA1(), b"\x11" * 20, b"\x22" * 20, 7, STATES["good"], b"n" * 16, NOW
    )
    forged = ocsp.load_der_ocsp_response(good.replace(b"\x80\x00", b"\x82\x00", 1))
    assert forged.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    with pytest.raises(InvalidSignature):
        _verify(identity, forged)
