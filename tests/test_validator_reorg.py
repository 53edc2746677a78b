"""A validator after a reorganization: back to the fork point, decide what the new chain has.

anvil's snapshot/revert replaces blocks the validator already decided with other blocks at
the same heights (a reorganization as a node would see it).
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
from conftest import rpc

from dpki.chain.consortium import (
    CONFIRMATIONS,
    UNKNOWN_CONFIRMATIONS,
    clique_confirmations,
    default_confirmations,
    detect_engine,
)
from dpki.chain.keys import dev_account
from dpki.chain.registry import Registry
from dpki.dev.devices import make_device
from dpki.errors import ConfigError
from dpki.pki.x509 import facts
from dpki.submission import submission_for
from dpki.validator import Validator


def _submission(serial: str):  # type: ignore[no-untyped-def]
    device = make_device("Vendor A", serial)
    return submission_for(facts(device.certificate, der=device.der))


def test_validator_decides_again_from_the_fork_point(
    registry: Registry, deploy_block: int, chain: str, tmp_path: Path
) -> None:
    validator = Validator(
        registry, dev_account(1), deploy_block=deploy_block, state_path=tmp_path / "v.json"
    )
    while validator.step():
        pass
    fork = rpc(chain, "evm_snapshot")
    lost = _submission("LOST")
    registry.submit(dev_account(0), lost)
    assert validator.step() == 1  # endorsed on the branch about to be abandoned
    assert registry.has_voted(lost.cert_id, dev_account(1).address)
    decided_at = validator.state.checkpoint
    assert rpc(chain, "evm_revert", fork) is True
    registry.resync_nonce(dev_account(0).address)
    registry.resync_nonce(dev_account(1).address)
    kept = _submission("KEPT")
    registry.submit(dev_account(0), kept)  # a different block at the same height
    for _ in range(3):
        rpc(chain, "evm_mine")
    assert registry.block_number() > decided_at
    validator.step()
    assert validator.state.reorgs == 1
    while validator.step():
        pass
    assert registry.has_voted(kept.cert_id, dev_account(1).address)  # the new chain's
    assert not registry.has_voted(lost.cert_id, dev_account(1).address)
    reloaded = Validator(
        registry, dev_account(1), deploy_block=deploy_block, state_path=tmp_path / "v.json"
    )
    assert reloaded.state.recent[-1] == validator.state.recent[-1]  # hashes survive restarts


def test_votes_decided_on_a_replaced_block_are_decided_again(
    registry: Registry,
    deploy_block: int,
    chain: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The validator's side of anchored votes: a vote whose block is gone by the time it is
    mined reverts (StaleAnchor); the running validator decides that range again on the
    chain as it is and the vote counts once."""
    validator = Validator(
        registry, dev_account(1), deploy_block=deploy_block, state_path=tmp_path / "v.json"
    )
    while validator.step():
        pass
    cert = _submission("STALE-ANCHOR")
    registry.submit(dev_account(0), cert).wait()
    anchors = []
    send = validator._send_votes

    def first_block_replaced(decisions, renewals, anchor):  # type: ignore[no-untyped-def]
        if decisions:
            anchors.append(anchor)
        if len(anchors) == 1:  # as if that block had been replaced before the vote was mined
            anchor = (anchor[0], hashlib.sha256(anchor[1]).digest())
        return send(decisions, renewals, anchor)

    monkeypatch.setattr(validator, "_send_votes", first_block_replaced)
    stop = threading.Event()
    runner = threading.Thread(target=validator.run, args=(stop,), kwargs={"poll": 0.02})
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not registry.has_voted(
            cert.cert_id, dev_account(1).address
        ):
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(30)
    assert registry.has_voted(cert.cert_id, dev_account(1).address)
    assert len(anchors) == 2  # decided on the replaced block, then again on the chain as it is
    assert validator.metrics.errors.labels("stale_anchor")._value.get() == 1
    assert registry.status_of(cert.cert_id).endorsements == 1
    assert validator.state.endorsed == 1


def test_no_rewind_without_a_reorganization(
    registry: Registry, deploy_block: int, tmp_path: Path
) -> None:
    validator = Validator(
        registry, dev_account(1), deploy_block=deploy_block, state_path=tmp_path / "v.json"
    )
    for serial in ("A", "B"):
        registry.submit(dev_account(0), _submission(serial))
        while validator.step():
            pass
    assert validator.state.reorgs == 0
    assert len(validator.state.recent) >= 2


def test_confirmations_default_per_engine(chain: str) -> None:
    assert detect_engine(chain) == "anvil"
    assert default_confirmations(None, chain) == 0
    # a Clique node that does not tell its signers: assume forks, as for an unknown engine
    assert default_confirmations("geth-clique", chain) == UNKNOWN_CONFIRMATIONS == 2
    assert default_confirmations("besu-qbft", chain) == CONFIRMATIONS["besu-qbft"] == 0
    assert default_confirmations("something-else", chain) == 2


def test_clique_confirmations_outlast_any_minority() -> None:
    """A minority of k <= n // 2 signers seals at most k blocks in a row (one of any
    n // 2 + 1 consecutive each), so n // 2 blocks on top put a block beyond its reach.
    The partition test on a real 3-node network checks the minority's fork depth."""
    assert [clique_confirmations(n) for n in range(1, 8)] == [1, 1, 1, 2, 2, 3, 3]
    for n in range(1, 30):
        minority = n // 2  # the most signers that are not a majority
        window = n // 2 + 1  # a signer seals one of any `window` consecutive blocks
        longest_fork = minority if minority < window else window  # then it stalls
        assert longest_fork <= clique_confirmations(n)


@pytest.mark.parametrize(
    ("version", "refused"),
    [("2.0.0", True), ("1.9.9", True), ("not a version", True), ("2.1.0", False), ("10.0", False)],
)
def test_a_registry_without_anchored_votes_is_refused_at_start(
    registry: Registry,
    deploy_block: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    version: str,
    refused: bool,
) -> None:
    """Against a registry older than 2.1 every vote would revert without a reason: the
    validator says so once, at start, instead of failing every step."""
    monkeypatch.setattr(registry, "version", lambda: version)

    def start() -> Validator:
        return Validator(
            registry, dev_account(1), deploy_block=deploy_block, state_path=tmp_path / "v.json"
        )

    if refused:
        with pytest.raises(ConfigError, match=f"version {version}; .*endorseBatchAt"):
            start()
    else:
        assert start().state.checkpoint == deploy_block - 1
