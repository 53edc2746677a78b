"""The validator's pipelined votes, and computed gas bounds that fall short (anvil).

With automine off, a test decides when blocks are sealed and which transactions the node
still holds, so votes can be kept in flight as they are on a chain with a block period.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import rpc

import dpki.submission
import dpki.validator
from dpki.chain.keys import dev_account
from dpki.chain.registry import Registry, Status, connect
from dpki.dev.devices import make_device
from dpki.errors import AlreadyVoted, OutOfGas
from dpki.pki.x509 import facts
from dpki.submission import submission_for, submit_all
from dpki.validator import Validator

VALIDATOR = dev_account(1)


def _submission(serial: str):  # type: ignore[no-untyped-def]
    device = make_device("Vendor A", serial)
    return submission_for(facts(device.certificate, der=device.der))


def _validator(chain: str, registry: Registry, deploy_block: int, state: Path) -> Validator:
    """A validator process of its own: its own client, nonce counter and fee cache."""
    return Validator(
        Registry(connect(chain), registry.address),
        VALIDATOR,
        deploy_block=deploy_block,
        state_path=state,
    )


def _endorsements_by(registry: Registry, cert_id: bytes, deploy_block: int) -> int:
    events = registry.events(deploy_block, "latest", ["CertificateEndorsed"], cert_id=cert_id)
    return sum(1 for e in events if e.args["validator"] == VALIDATOR.address)


@pytest.fixture
def manual(chain: str) -> Any:
    """Blocks only when the test mines them."""
    rpc(chain, "evm_setAutomine", False)
    yield chain
    rpc(chain, "evm_setAutomine", True)


def test_the_next_range_is_decided_while_votes_are_in_flight_and_a_lost_vote_is_resent(
    registry: Registry, deploy_block: int, manual: str, tmp_path: Path
) -> None:
    v = _validator(manual, registry, deploy_block, tmp_path / "v.json")
    rpc(manual, "evm_mine")
    while v.step():
        pass
    v.flush()
    first, second = _submission("PIPE-1"), _submission("PIPE-2")
    registry.submit(dev_account(0), first)
    rpc(manual, "evm_mine")
    assert v.step() == 1
    held_at = v.state.checkpoint
    assert v.votes_in_flight == 1
    (vote,) = [tx for r in v._in_flight for _, tx in r.votes]
    # the node loses the vote (a restart empties its pool): blocks go on without it
    assert rpc(manual, "anvil_dropTransaction", "0x" + vote.tx_hash.hex())
    registry.submit(dev_account(0), second)
    rpc(manual, "evm_mine")
    assert v.step() == 1  # decided without waiting for the first vote
    assert v.votes_in_flight == 2
    assert v.state.checkpoint == held_at  # moves only over mined votes
    deadline = time.monotonic() + 20
    while v.votes_in_flight and time.monotonic() < deadline:
        time.sleep(0.3)
        v.step()  # looks at the votes: the lost one is sent again after 2 s
        rpc(manual, "evm_mine")
        v.step()
    assert v.votes_in_flight == 0
    assert vote.resent >= 1
    assert v.state.checkpoint > held_at
    for s in (first, second):
        assert _endorsements_by(registry, s.cert_id, deploy_block) == 1


def test_a_restart_with_votes_in_flight_never_endorses_twice(
    registry: Registry, deploy_block: int, manual: str, tmp_path: Path
) -> None:
    state = tmp_path / "v.json"
    v = _validator(manual, registry, deploy_block, state)
    rpc(manual, "evm_mine")
    while v.step():
        pass
    v.flush()
    cert = _submission("RESTART-1")
    registry.submit(dev_account(0), cert)
    rpc(manual, "evm_mine")
    assert v.step() == 1  # its vote is in the node's pool, not mined: then the process dies
    restarted = _validator(manual, registry, deploy_block, state)
    assert restarted.step() == 1  # from the checkpoint: decided again, voted again
    rpc(manual, "evm_mine")  # the first vote counts, the second reverts (AlreadyVoted)
    with pytest.raises(AlreadyVoted):
        restarted.flush()
    # what `run` does on a refused vote: back to the checkpoint, nonce asked again, re-read
    restarted.drop_in_flight()
    restarted.registry.resync_nonce(VALIDATOR.address)
    assert restarted.step() == 0  # hasVoted: nothing to decide
    rpc(manual, "evm_mine")
    restarted.step()
    assert restarted.votes_in_flight == 0
    assert _endorsements_by(registry, cert.cert_id, deploy_block) == 1
    assert registry.endorsers_of(cert.cert_id) == [VALIDATOR.address]


def test_a_submission_batch_whose_computed_gas_is_short_is_not_lost(
    registry: Registry, chain: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # above the transaction's intrinsic gas (else no node would take it), below its needs
    monkeypatch.setattr(dpki.submission, "submit_batch_gas", lambda subs: 250_000)
    subs = [_submission(f"SHORT-{i}") for i in range(5)]
    first_block = registry.block_number() + 1
    outcomes = submit_all(registry, dev_account(0), subs, batch_size=5)
    assert all(o.submitted for o in outcomes)
    assert {r.status for r in registry.statuses([s.cert_id for s in subs])} == {Status.PENDING}
    assert registry.transactions.estimate_always  # estimated from then on
    receipts: list[dict[str, str]] = []
    for n in range(first_block, registry.block_number() + 1):
        receipts += rpc(chain, "eth_getBlockReceipts", hex(n))  # type: ignore[arg-type]
    failed = [r for r in receipts if int(r["status"], 16) == 0]
    assert len(failed) == 1 and int(failed[0]["gasUsed"], 16) == 250_000  # ran out, mined


def test_a_vote_batch_whose_computed_gas_is_short_is_cast_again(
    registry: Registry, deploy_block: int, chain: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    v = _validator(chain, registry, deploy_block, tmp_path / "v.json")
    while v.step():
        pass
    cert = _submission("SHORT-VOTE")
    registry.submit(dev_account(0), cert).wait()

    def short(count: int, renewals: int = 0, *, anchored: bool = False) -> int:
        return 35_000

    monkeypatch.setattr(dpki.validator, "endorse_batch_gas", short)
    with pytest.raises(OutOfGas):
        v.step()
    assert not registry.has_voted(cert.cert_id, VALIDATOR.address)
    v.drop_in_flight()  # what `run` does on a failed vote
    v.registry.resync_nonce(VALIDATOR.address)
    assert v.step() == 1  # estimated this time
    assert v.votes_in_flight == 0
    assert _endorsements_by(registry, cert.cert_id, deploy_block) == 1
