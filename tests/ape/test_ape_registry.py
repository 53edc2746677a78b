"""The registry under ape: ``ape test tests/ape --network ethereum:local:foundry``.

Run by tests/test_toolchain.py in the main suite; plain pytest does not collect this folder.
"""

from __future__ import annotations

import hashlib

import ape
import pytest


@pytest.fixture
def members():  # type: ignore[no-untyped-def]
    return ape.accounts.test_accounts[:3]


@pytest.fixture
def registry(members):  # type: ignore[no-untyped-def]
    orgs = ["Vendor A", "Operator B", "CA C"]
    return ape.project.CertificateRegistry.deploy(
        [m.address for m in members], orgs, [3, 3, 3], 2, sender=members[0]
    )


def _submission(seed: bytes) -> tuple[bytes, int, int, bytes, bytes]:
    der = hashlib.sha256(seed).digest() * 19
    return (der, 0, 2**39, hashlib.sha256(b"key" + seed).digest(), b"\x00" * 32)


def test_submit_endorse_activate(registry, members) -> None:  # type: ignore[no-untyped-def]
    sub = _submission(b"one")
    registry.submit(sub, sender=members[0])
    cert_id = hashlib.sha256(sub[0]).digest()
    assert registry.isValid(cert_id) is False
    registry.endorse(cert_id, sender=members[1])
    registry.endorse(cert_id, sender=members[2])
    assert registry.isValid(cert_id) is True
    assert registry.statusOf(cert_id).endorsements == 2


def test_duplicate_reverts_with_custom_error(registry, members) -> None:  # type: ignore[no-untyped-def]
    sub = _submission(b"two")
    registry.submit(sub, sender=members[0])
    with ape.reverts(registry.CertificateAlreadyRegistered):
        registry.submit(sub, sender=members[0])
