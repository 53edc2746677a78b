"""Shared fixtures: one anvil chain per session, snapshot/revert around each test."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings

from dpki.chain.keys import dev_account
from dpki.chain.registry import (
    ROLE_SUBMITTER,
    ROLE_VALIDATOR,
    MemberSpec,
    Registry,
    Submission,
    connect,
)
from dpki.dev.devnet import Devnet

# hypothesis' timing checks judge the machine, not the code: a loaded CI host makes example
# generation "too slow" and single examples miss a deadline, so the suite checks neither
settings.register_profile("dpki", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("dpki")

ROOT = Path(__file__).resolve().parent.parent
ORGS = ("Vendor A", "Operator B", "CA C")

# tests/ape runs under `ape test` (see tests/test_toolchain.py), not under plain pytest.
collect_ignore = ["ape"]


def rpc(url: str, method: str, *params: object) -> object:
    """Call a JSON-RPC method (anvil-only methods are fine in tests)."""
    response = requests.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=30
    ).json()
    assert "error" not in response, response
    return response["result"]


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """Start one anvil for the whole session on a free port."""
    log = tmp_path_factory.mktemp("anvil") / "anvil.log"
    net = Devnet.start(log=log, accounts=20)
    yield net
    net.stop()


@pytest.fixture(scope="session")
def accounts() -> list[LocalAccount]:
    """Return anvil's first 20 dev accounts."""
    return [dev_account(i) for i in range(20)]


@pytest.fixture(scope="session")
def _deployed(anvil: Devnet, accounts: list[LocalAccount]) -> tuple[str, int]:
    """Deploy the default 3-member registry once per session (threshold 2)."""
    w3 = connect(anvil.rpc_url)
    specs = [
        MemberSpec(accounts[i].address, org, ROLE_VALIDATOR | ROLE_SUBMITTER)
        for i, org in enumerate(ORGS)
    ]
    registry, receipt = Registry.deploy(w3, accounts[0], specs, 2)
    return registry.address, receipt.block_number


@pytest.fixture
def a(accounts: list[LocalAccount]) -> LocalAccount:
    """Vendor A of the session registry."""
    return accounts[0]


@pytest.fixture
def b(accounts: list[LocalAccount]) -> LocalAccount:
    """Operator B of the session registry."""
    return accounts[1]


@pytest.fixture
def c(accounts: list[LocalAccount]) -> LocalAccount:
    """CA C of the session registry."""
    return accounts[2]


@pytest.fixture
def chain(anvil: Devnet) -> Iterator[str]:
    """Snapshot the chain before a test and revert it after; yield the RPC URL."""
    snapshot = rpc(anvil.rpc_url, "evm_snapshot")
    yield anvil.rpc_url
    assert rpc(anvil.rpc_url, "evm_revert", snapshot) is True
    catch_up_the_clock(anvil.rpc_url)


def catch_up_the_clock(url: str) -> None:
    """Set anvil's clock to the wall clock again (never backwards) and mine a block at it.

    A revert restores the snapshot's time, so without this every test leaves the chain behind
    by its own length, and a certificate made later with a wall-clock notBefore is not yet
    valid on the chain."""
    latest: Any = rpc(url, "eth_getBlockByNumber", "latest", False)
    rpc(url, "evm_setTime", max(int(time.time()), int(latest["timestamp"], 16) + 1))
    rpc(url, "evm_mine")  # so that the latest block, which chain_time() reads, says it too


@pytest.fixture
def registry(chain: str, _deployed: tuple[str, int]) -> Registry:
    """Return a fresh client (fresh nonce counter) for the session's registry."""
    return Registry(connect(chain), _deployed[0])


@pytest.fixture
def deploy_block(_deployed: tuple[str, int]) -> int:
    """Return the block the session's registry was deployed in."""
    return _deployed[1]


def fake_submission(
    seed: int | bytes,
    size: int = 600,
    window: tuple[int, int] = (0, 2**39),
    organization: str | None = None,
) -> Submission:
    """Return a submission whose DER is deterministic filler (the contract parses DER only
    to list a compromised key); ``organization`` gives its declared orgHash (default none)."""
    material = seed if isinstance(seed, bytes) else seed.to_bytes(8, "big")
    der = (hashlib.sha256(material).digest() * (size // 32 + 1))[:size]
    return Submission(
        der=der,
        not_before=window[0],
        not_after=window[1],
        key_hash=hashlib.sha256(b"key" + material).digest(),
        org_hash=hashlib.sha256(organization.encode()).digest() if organization else bytes(32),
    )


@pytest.fixture(scope="module")
def node(
    request: pytest.FixtureRequest,
    anvil: Devnet,
    _deployed: tuple[str, int],
    accounts: list[LocalAccount],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """Serve an index of devices in every state (an inquiry node) for the whole module, on
    SQLite unless parametrized indirectly with "postgresql"."""
    from inquiry_helpers import inquiry_node  # it imports this module

    db = getattr(request, "param", "sqlite")
    with inquiry_node(
        anvil.rpc_url, _deployed[0], _deployed[1], accounts, tmp_path_factory.mktemp("node"), db
    ) as n:
        yield n
