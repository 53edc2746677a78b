"""Look-alike issuers on the ledger (issue 10, item 9): shared by the test and bench/issuers.py.

An active CA of Vendor A, then any number of decoys another member submits: self-signed CA
certificates carrying the CA's subject, half of them its subjectKeyIdentifier too, each with
a key of its own; half are rejected by the validators, the others stay pending.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from eth_account.signers.local import LocalAccount

from dpki.chain.registry import Event, Registry
from dpki.chain.rpc import RpcClient
from dpki.chain.transactions import Transactions
from dpki.dev.devices import Device, make_ca, make_device
from dpki.pki.codes import REJECTION_REASONS
from dpki.pki.x509 import parse_certificate
from dpki.submission import submission_for

VENDOR = "Vendor A"


class CountingRpc(RpcClient):
    """A JSON-RPC client that counts what it sends (a batch counts once)."""

    requests = 0

    def request(self, method: str, params: list[Any]) -> dict[str, Any]:
        self.requests += 1
        return super().request(method, params)

    def post_batch(self, payload: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        self.requests += 1
        return super().post_batch(payload)


class CountingRegistry(Registry):
    """A registry client whose JSON-RPC requests are counted (``requests``)."""

    def __init__(self, w3: Any, address: str) -> None:
        super().__init__(w3, address)
        self.rpc = self.counter = CountingRpc(w3)
        self.transactions = Transactions(self.rpc, self.abi)

    @property
    def requests(self) -> int:
        """Return how many JSON-RPC requests this client sent."""
        return self.counter.requests


def decoy(ca: Device, copy_key_identifier: bool) -> bytes:
    """Return the DER of a self-signed CA certificate with ``ca``'s subject and a fresh key."""
    key = ec.generate_private_key(ec.SECP256R1())
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    own = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(ca.certificate.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(ski if copy_key_identifier else own, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def active_ca(registry: Registry, accounts: Sequence[LocalAccount]) -> Device:
    """Put a CA of Vendor A on the ledger and have two validators activate it."""
    ca = make_ca(VENDOR, "Decoy Target CA")
    receipt = registry.submit(accounts[0], submission_for(parse_certificate(ca.der))).wait()
    cert_id = bytes(receipt.event("CertificateSubmitted").args["certId"])
    registry.endorse(accounts[1], cert_id).wait()
    registry.endorse(accounts[2], cert_id).wait()
    return ca


def put_decoys(
    registry: Registry, accounts: Sequence[LocalAccount], ca: Device, count: int
) -> list[bytes]:
    """Submit ``count`` decoys of ``ca`` from Operator B; reject every other one."""
    ders = [decoy(ca, copy_key_identifier=i % 2 == 0) for i in range(count)]
    subs = [submission_for(parse_certificate(d)) for d in ders]
    for start in range(0, len(subs), 50):
        registry.submit_batch(accounts[1], subs[start : start + 50]).wait()
    ids = [s.cert_id for s in subs]
    rejected = ids[::2]
    code = REJECTION_REASONS["ORG_MISMATCH"]
    for start in range(0, len(rejected), 50):
        part = rejected[start : start + 50]
        for validator in (accounts[0], accounts[2]):
            registry.reject_batch(validator, part, [code] * len(part)).wait()
    return ids


def submit_leaf(registry: Registry, account: LocalAccount, ca: Device, serial: str) -> Event:
    """Submit a device certificate ``ca`` issued; return its submission event."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    leaf = make_device(VENDOR, serial, not_before=start, issuer=ca)
    receipt = registry.submit(account, submission_for(parse_certificate(leaf.der))).wait()
    return receipt.event("CertificateSubmitted")
