"""Concurrent senders from one account never fail a provisioning (issue 10, reliability).

A member's validator and its submission node are separate processes that send from the
same account: each keeps its own nonce counter, so one of them sends with a nonce the
other already used. Here two clients with their own counters (as two processes have) send
from one account on the real chain. A member may also give each role its own key.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from conftest import fake_submission, rpc
from e2e import ORGS, ValidatorProcess, private_devnet, run_cli
from eth_account.signers.local import LocalAccount

from dpki.chain.deployment import validator_account_name
from dpki.chain.registry import Registry, Status, connect
from dpki.dev.devices import make_device
from dpki.submission import submit_all


def _client(registry: Registry) -> Registry:
    """Return a second client of the same registry: its own nonce counter, as a process."""
    return Registry(connect(registry.rpc_url), registry.address)


def test_a_stale_nonce_is_resynced_and_the_batch_sent(
    registry: Registry, accounts: list[LocalAccount]
) -> None:
    vendor = accounts[0]
    submission_node, validator_node = registry, _client(registry)
    first = [fake_submission(b"stale-%d" % i) for i in range(3)]
    submit_all(submission_node, vendor, first)  # the submission node's counter is now warm
    for i in range(3):  # the validator process sends from the same account meanwhile
        validator_node.submit(vendor, fake_submission(b"other-%d" % i)).wait()
    later = [fake_submission(b"later-%d" % i) for i in range(4)]
    outcomes = submit_all(submission_node, vendor, later, batch_size=2)
    assert [o.submitted for o in outcomes] == [True] * 4
    assert all(r.status is Status.PENDING for r in registry.statuses([s.cert_id for s in later]))


def test_the_same_items_sent_twice_at_once_are_submitted_not_failed(
    registry: Registry, accounts: list[LocalAccount]
) -> None:
    """Two processes of one member submit the same certificates at the same time: whichever
    loses the race finds them registered from its own account and reports them submitted."""
    vendor = accounts[0]
    items = [fake_submission(b"twice-%d" % i) for i in range(6)]
    results: dict[int, list[bool]] = {}
    errors: list[BaseException] = []

    def run(n: int, client: Registry) -> None:
        try:
            results[n] = [o.submitted for o in submit_all(client, vendor, items, batch_size=2)]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n, _client(registry))) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    records = registry.statuses([s.cert_id for s in items])
    assert all(r.status is Status.PENDING and r.submitter == vendor.address for r in records)
    # each item counts as submitted by every run that sent it or found it sent from its own
    # account after a conflict; a run that found it already there at the start says so
    assert all(len(r) == len(items) for r in results.values())
    assert any(all(r) for r in results.values())


def test_a_transaction_the_node_already_holds_counts_as_sent(
    registry: Registry, accounts: list[LocalAccount]
) -> None:
    """Two processes of one member can sign byte-identical transactions (the same call, nonce
    and fees); the node answers the second "already imported" (anvil), "already known"
    (geth) or "Known transaction" (Besu). That transaction is sent, not failed."""
    vendor, url = accounts[0], registry.rpc_url
    rpc(url, "evm_setAutomine", False)
    try:
        pending = registry.submit(vendor, fake_submission(b"held-twice"))
        assert pending.raw
        other_process = _client(registry).transactions
        assert other_process._send_raw(pending.raw) == pending.tx_hash
        rpc(url, "evm_mine")
    finally:
        rpc(url, "evm_setAutomine", True)
    assert pending.wait().block_number > 0
    [record] = registry.statuses([fake_submission(b"held-twice").cert_id])
    assert record.status is Status.PENDING


def test_a_member_gives_each_role_its_own_key(tmp_path: Path) -> None:
    """`dpki devnet up --role-keys`: every organization submits with one account and
    validates with another; the submitting account has no vote, so votes do not double."""
    with private_devnet(tmp_path, role_keys=True) as net:
        registry = net.registry_client()
        members = {m.organization: m for m in registry.members()}
        for org in ORGS:
            submitter, validator = members[org], members[validator_account_name(org)]
            assert submitter.address != validator.address
            assert (submitter.is_submitter, submitter.is_validator) == (True, False)
            assert (validator.is_submitter, validator.is_validator) == (False, True)
        assert registry.validator_count() == len(ORGS)
        procs = [
            ValidatorProcess(net, validator_account_name(org), tmp_path).start() for org in ORGS
        ]
        try:
            device = make_device(ORGS[0], "role-keys")
            (tmp_path / "d.pem").write_bytes(device.pem)
            sent = run_cli("submit", str(tmp_path / "d.pem"), "--as", ORGS[0], "--wait",
                           "--json", deployment=net)  # fmt: skip
            assert sent.returncode == 0, sent.stdout + sent.stderr
            cert_id = hashlib.sha256(device.der).digest()
            endorsers = set(registry.endorsers_of(cert_id))
            assert members[ORGS[0]].address not in endorsers
            assert endorsers <= {members[validator_account_name(o)].address for o in ORGS}
        finally:
            for p in procs:
                assert p.stop() == 0, p.log_text()[-2000:]
