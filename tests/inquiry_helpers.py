"""Helpers shared by the inquiry-node tests: index databases, devices on the ledger, servers."""

from __future__ import annotations

import base64
import datetime
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from conftest import rpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from eth_account.signers.local import LocalAccount

from dpki.chain.registry import Registry, connect
from dpki.dev.devices import Device, make_device
from dpki.inquiry.indexer import Indexer
from dpki.inquiry.store import Store
from dpki.pki.x509 import load_facts
from dpki.submission import submission_for

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parent.parent
DPKI = [sys.executable, "-m", "dpki"]


def pg_available() -> bool:
    """Say whether the test PostgreSQL answers."""
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield a fresh, empty index database URL (SQLite file, or a PostgreSQL database)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.sqlite'}"
        return
    if not pg_available():  # a failure, not a skip: CI (.ci/run) starts it
        pytest.fail("PostgreSQL on 127.0.0.1:5432 is not running (`bash .ci/run` starts it)")
    name = f"dpki_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def put_on_ledger(
    registry: Registry,
    accounts: list[LocalAccount],
    device: Device,
    *,
    endorse: int = 2,
    submitter: int = 0,
) -> bytes:
    """Submit a device certificate and have ``endorse`` other validators endorse it."""
    facts = load_facts(device.der)[0]
    receipt = registry.submit(accounts[submitter], submission_for(facts)).wait()
    cert_id = bytes(receipt.event("CertificateSubmitted").args["certId"])
    others = [i for i in range(3) if i != submitter]
    for i in others[:endorse]:
        registry.endorse(accounts[i], cert_id).wait()
    return cert_id


def devices(count: int, org: str = "Vendor A") -> list[Device]:
    """Mint ``count`` demo device certificates of ``org``."""
    return [_device(org, f"SN{uuid.uuid4().hex[:10]}") for _ in range(count)]


def _device(org: str, serial: str) -> Device:
    """Mint a device certificate valid from an hour ago (chain time may trail wall time)."""
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    return make_device(org, serial, not_before=start)


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(
    args: list[str], port: int, cwd: Path, timeout: float = 30.0, *, tls_ca: Path | None = None
) -> Iterator[str]:
    """Run ``dpki serve ARGS --port PORT`` in a subprocess; yield its base URL; stop it.

    With ``tls_ca`` the server speaks HTTPS with a certificate that file verifies."""
    log = (cwd / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen(
        [*DPKI, "serve", *args, "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"{'https' if tls_ca else 'http'}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError((cwd / f"serve-{port}.log").read_text())
            try:
                verify = str(tls_ca) if tls_ca else True
                answer = requests.get(base + "/healthz", timeout=1, verify=verify)
                if answer.status_code in (200, 503):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("dpki serve did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@dataclass
class Node:
    """An inquiry node over a fresh index of devices in known states, served by `dpki serve`."""

    url: str
    dir: Path
    db_url: str
    deployment: Path
    registry: Registry
    indexer: Indexer
    accounts: list[LocalAccount]
    devices: dict[str, Device]
    ids: dict[str, bytes]
    db_kind: str = "sqlite"

    def pem(self, name: str) -> Path:
        """Return the PEM file of a device."""
        return self.dir / f"{name}.pem"

    def reindex(self, wait_for: Callable[[], bool] | None = None) -> None:
        """Catch the index up, then wait until the server shows it."""
        self.indexer.catch_up()
        if wait_for is not None:
            deadline = time.monotonic() + 10
            while not wait_for():
                assert time.monotonic() < deadline, "the server did not pick up the change"
                time.sleep(0.1)


STATES = ("good", "revoked", "suspended", "pending", "rejected", "spare", "superseded")


@contextmanager
def inquiry_node(
    rpc_url: str,
    address: str,
    deploy_block: int,
    accounts: list[LocalAccount],
    tmp: Path,
    db: str = "sqlite",
) -> Iterator[Node]:
    """Put devices in every state on the ledger (``superseded`` renewed by ``renewal``), index
    them into a ``db`` database (sqlite or postgresql), serve; revert the chain after."""
    snapshot = rpc(rpc_url, "evm_snapshot")
    registry = Registry(connect(rpc_url), address)
    made = {name: _device("Vendor A", f"{name}-{uuid.uuid4().hex[:8]}") for name in STATES}
    made["renewal"] = _device("Vendor A", f"renewal-{uuid.uuid4().hex[:8]}")
    made["unknown"] = _device("Vendor A", "never-submitted")
    ids = {
        "good": put_on_ledger(registry, accounts, made["good"]),
        "revoked": put_on_ledger(registry, accounts, made["revoked"]),
        "suspended": put_on_ledger(registry, accounts, made["suspended"]),
        "pending": put_on_ledger(registry, accounts, made["pending"], endorse=1),
        "rejected": put_on_ledger(registry, accounts, made["rejected"], endorse=0),
        "spare": put_on_ledger(registry, accounts, made["spare"]),
        "superseded": put_on_ledger(registry, accounts, made["superseded"]),
    }
    renewal = submission_for(load_facts(made["renewal"].der)[0])
    receipt = registry.renew(accounts[0], ids["superseded"], renewal).wait()
    ids["renewal"] = bytes(receipt.event("CertificateSubmitted").args["certId"])
    for i in (1, 2):  # the renewal activates: the old certificate is superseded
        registry.endorse(accounts[i], ids["renewal"]).wait()
    registry.revoke(accounts[0], ids["revoked"], 1).wait()
    registry.suspend(accounts[0], ids["suspended"]).wait()
    registry.reject(accounts[1], ids["rejected"], 3).wait()
    registry.reject(accounts[2], ids["rejected"], 3).wait()
    for name, device in made.items():
        (tmp / f"{name}.pem").write_bytes(device.pem)
        (tmp / f"{name}.key").write_bytes(device.key_pem())
    deployment = tmp / "deployment.json"
    deployment.write_text(
        json.dumps(
            {
                "rpc_url": rpc_url,
                "chain_id": registry.chain_id,
                "registry": address,
                "deploy_block": deploy_block,
                "members": [],
            }
        )
    )
    with database(db, tmp) as db_url:
        store = Store(db_url)
        indexer = Indexer(registry, store, deploy_block)
        indexer.catch_up()
        port = free_port()
        try:
            with served(["--db", db_url, "--deployment", str(deployment)], port, tmp) as url:
                yield Node(url, tmp, db_url, deployment, registry, indexer, accounts, made, ids, db)
        finally:
            store.close()
            assert rpc(rpc_url, "evm_revert", snapshot) is True


def ocsp_request(node: Node, name: str, *, nonce: bytes | None = None) -> bytes:
    """Return a DER OCSP request for a device of the node (self-signed: its own issuer)."""
    cert = x509.load_pem_x509_certificate(node.pem(name).read_bytes())
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, cert, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def b64_path(der: bytes) -> str:
    """Return a DER request as the path segment of the GET form (base64, URL-escaped)."""
    return base64.b64encode(der).decode().replace("/", "%2F").replace("+", "%2B")


def write_key(path: Path, key: Any) -> None:
    """Write a private key (EC, RSA or Ed25519) as unencrypted PKCS#8 PEM (test keys only)."""
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def self_signed(
    key: Any,
    common_name: str,
    *,
    days: int = 30,
    since: datetime.timedelta = datetime.timedelta(minutes=5),
    extensions: tuple[x509.ExtensionType, ...] = (),
) -> x509.Certificate:
    """Return a self-signed certificate of ``key``: valid from ``since`` ago for ``days``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - since)
        .not_valid_after(now + datetime.timedelta(days=days))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, digest)
