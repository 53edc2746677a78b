"""The indexer against SQLite and PostgreSQL: mirror, resume after a crash, reorganizations."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from conftest import rpc
from eth_account.signers.local import LocalAccount
from inquiry_helpers import PG_ADMIN, database, devices, put_on_ledger

from dpki.chain.registry import Registry, Status, connect
from dpki.inquiry.indexer import Indexer
from dpki.inquiry.store import KEEP_BLOCKS, Store
from dpki.pki.x509 import load_facts
from dpki.submission import submission_for


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Yield a fresh index on SQLite or PostgreSQL."""
    with database(request.param, tmp_path) as url:
        s = Store(url)
        yield s
        s.close()


def _lifecycle(registry: Registry, accounts: list[LocalAccount]) -> dict[str, bytes]:
    """Put five devices on the ledger in five different end states."""
    d = devices(5)
    ids = {
        "active": put_on_ledger(registry, accounts, d[0]),
        "revoked": put_on_ledger(registry, accounts, d[1]),
        "suspended": put_on_ledger(registry, accounts, d[2]),
        "pending": put_on_ledger(registry, accounts, d[3], endorse=1),
        "rejected": put_on_ledger(registry, accounts, d[4], endorse=0),
    }
    registry.revoke(accounts[0], ids["revoked"], 1).wait()
    registry.suspend(accounts[0], ids["suspended"]).wait()
    registry.reject(accounts[1], ids["rejected"], 3).wait()
    registry.reject(accounts[2], ids["rejected"], 3).wait()
    return ids


def _assert_mirrors(store: Store, registry: Registry) -> None:
    """Check every certificate row against the ledger's own view."""
    for cid in store.all_ids():
        row = store.certificate(cid)
        assert row is not None
        chain = registry.status_of(cid)
        assert (row["status"], row["reason"]) == (int(chain.status), chain.reason), cid
        assert (row["endorsements"], row["rejections"]) == (chain.endorsements, chain.rejections)
        assert {v["validator"] for v in store.votes(cid) if v["kind"] == "endorsed"} == set(
            registry.endorsers_of(cid)
        )


def test_mirrors_members_certificates_votes_and_history(
    registry: Registry, accounts: list[LocalAccount], deploy_block: int, store: Store
) -> None:
    ids = _lifecycle(registry, accounts)
    indexer = Indexer(registry, store, deploy_block)
    events = indexer.catch_up()
    assert events == len(registry.events(deploy_block)) == store.event_count()
    assert store.all_ids() == {c.hex() for c in ids.values()}
    _assert_mirrors(store, registry)
    assert [m["organization"] for m in store.members()] == ["Vendor A", "Operator B", "CA C"]
    row = store.certificate(ids["revoked"].hex())
    assert row is not None and row["organization"] == "Vendor A" and row["der"]
    assert row["issuer_key_sha1"] == row["key_sha1"]  # self-signed: its own key
    steps = [(h["event"], Status(h["status"]).label) for h in store.history(ids["revoked"].hex())]
    assert steps == [("submitted", "pending"), ("endorsed", "active"), ("revoked", "revoked")]
    assert all(h["block_hash"] and h["timestamp"] > 0 for h in store.history(ids["revoked"].hex()))
    assert store.counts() == {s: 1 for s in ids}
    assert indexer.catch_up() == 0  # nothing new, nothing doubled
    assert store.event_count() == events


def test_resumes_after_a_crash_with_nothing_lost_or_doubled(
    registry: Registry,
    accounts: list[LocalAccount],
    deploy_block: int,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _lifecycle(registry, accounts)
    total = len(registry.events(deploy_block))
    crashing = Indexer(registry, store, deploy_block, batch_blocks=3)
    real = Store._write_rows
    calls = {"n": 0}

    def crash_on_fourth(db: sa.Connection, rows: dict) -> None:  # type: ignore[type-arg]
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("power cut")  # mid-transaction, after the event rows
        real(db, rows)

    monkeypatch.setattr(Store, "_write_rows", staticmethod(crash_on_fourth))
    with pytest.raises(KeyboardInterrupt):
        crashing.catch_up()
    partial = store.checkpoint()
    assert partial is not None and store.event_count() < total
    monkeypatch.setattr(Store, "_write_rows", staticmethod(real))
    resumed = Indexer(registry, Store(store.url), deploy_block, batch_blocks=3)
    resumed.catch_up()
    assert store.event_count() == total
    _assert_mirrors(store, registry)


def test_confirmations_hold_back_the_newest_blocks(
    registry: Registry, accounts: list[LocalAccount], deploy_block: int, store: Store
) -> None:
    cid = put_on_ledger(registry, accounts, devices(1)[0])
    indexer = Indexer(registry, store, deploy_block, confirmations=2)
    indexer.catch_up()
    row = store.certificate(cid.hex())
    assert row is not None and row["status"] == Status.PENDING  # the activation is 1 deep
    rpc(registry.rpc_url, "evm_mine")
    rpc(registry.rpc_url, "evm_mine")
    indexer.catch_up()
    row = store.certificate(cid.hex())
    assert row is not None and row["status"] == Status.ACTIVE


def test_reorg_drops_rows_from_abandoned_blocks(
    registry: Registry, accounts: list[LocalAccount], deploy_block: int, store: Store
) -> None:
    keep, fork = devices(2)
    keep_id = put_on_ledger(registry, accounts, keep)
    fork_id = put_on_ledger(registry, accounts, fork)
    snapshot = rpc(registry.rpc_url, "evm_snapshot")
    registry.revoke(accounts[0], fork_id, 1).wait()
    doomed = put_on_ledger(registry, accounts, devices(1)[0], endorse=1)
    indexer = Indexer(registry, store, deploy_block)
    indexer.catch_up()
    assert store.certificate(doomed.hex()) is not None
    abandoned = {b.number: b.hash for b in store.recent_blocks()}

    assert rpc(registry.rpc_url, "evm_revert", snapshot) is True  # the other branch wins
    fresh = Registry(registry.w3, registry.address)
    fresh.suspend(accounts[0], fork_id).wait()
    for _ in range(4):  # longer than the abandoned branch
        rpc(registry.rpc_url, "evm_mine")

    result = indexer.step()
    assert result.rolled_back_to is not None
    indexer.catch_up()
    assert store.certificate(doomed.hex()) is None
    row = store.certificate(fork_id.hex())
    assert row is not None and row["status"] == Status.SUSPENDED
    assert [h["event"] for h in store.history(fork_id.hex())] == [
        "submitted",
        "endorsed",
        "suspended",
    ]
    assert store.certificate(keep_id.hex())["status"] == Status.ACTIVE  # type: ignore[index]
    kept = store.recent_blocks()
    current = indexer.headers(b.number for b in kept)
    assert all(current[b.number].hash == b.hash for b in kept)  # type: ignore[union-attr]
    assert any(abandoned.get(b.number) not in (None, b.hash) for b in kept)
    _assert_mirrors(store, fresh)
    assert store.event_count() == len(fresh.events(deploy_block))


def test_renewal_links_both_certificates_when_it_activates(
    registry: Registry, accounts: list[LocalAccount], deploy_block: int, store: Store
) -> None:
    old, new = devices(2)
    old_id = put_on_ledger(registry, accounts, old)
    receipt = registry.renew(accounts[0], old_id, submission_for(load_facts(new.der)[0])).wait()
    new_id = bytes(receipt.event("CertificateSubmitted").args["certId"])
    indexer = Indexer(registry, store, deploy_block)
    indexer.catch_up()
    before = store.certificate(old_id.hex())
    assert before is not None and before["status"] == Status.ACTIVE
    assert before["replaced_by"] is None  # a pending renewal replaces nothing yet
    assert store.certificate(new_id.hex())["replaces"] == old_id.hex()  # type: ignore[index]

    snapshot = rpc(registry.rpc_url, "evm_snapshot")
    registry.endorse(accounts[1], new_id).wait()
    registry.endorse(accounts[2], new_id).wait()
    indexer.catch_up()
    after = store.certificate(old_id.hex())
    assert after is not None and after["status"] == Status.SUPERSEDED
    assert after["replaced_by"] == new_id.hex() == registry.replaced_by(old_id).hex()  # type: ignore[union-attr]
    _assert_mirrors(store, registry)

    # the activation is abandoned: the old certificate is active again and replaced by nothing
    assert rpc(registry.rpc_url, "evm_revert", snapshot) is True
    for _ in range(3):
        rpc(registry.rpc_url, "evm_mine")
    indexer.catch_up()
    again = store.certificate(old_id.hex())
    assert again is not None and again["status"] == Status.ACTIVE and again["replaced_by"] is None
    fresh = Registry(registry.w3, registry.address)  # nonces from the chain, not the old branch
    fresh.endorse(accounts[1], new_id).wait()
    fresh.endorse(accounts[2], new_id).wait()
    indexer.catch_up()
    assert store.certificate(old_id.hex())["replaced_by"] == new_id.hex()  # type: ignore[index]


def test_hashes_of_old_empty_blocks_are_pruned_but_reorgs_still_found(
    registry: Registry, accounts: list[LocalAccount], deploy_block: int, store: Store
) -> None:
    """A QBFT chain makes a block every few seconds; the index keeps the blocks its events
    are in and the last KEEP_BLOCKS, not one row per step forever."""
    cid = put_on_ledger(registry, accounts, devices(1)[0])
    indexer = Indexer(registry, store, deploy_block, batch_blocks=40)
    indexer.catch_up()
    event_blocks = {e.block_number for e in registry.events(deploy_block)}
    rpc(registry.rpc_url, "anvil_mine", hex(1000))  # empty blocks
    indexer.catch_up()  # 25 steps, each saving its checkpoint block
    kept = {b.number for b in store.recent_blocks(10_000)}
    head = registry.block_number()
    assert event_blocks <= kept  # their times date the history
    assert {n for n in kept if n not in event_blocks} <= set(
        range(head - KEEP_BLOCKS - 40, head + 1)
    )
    assert len(kept) <= len(event_blocks) + KEEP_BLOCKS // 40 + 3
    # a reorganization in the recent blocks is still found and followed
    snapshot = rpc(registry.rpc_url, "evm_snapshot")
    rpc(registry.rpc_url, "anvil_mine", hex(5))
    indexer.catch_up()
    assert rpc(registry.rpc_url, "evm_revert", snapshot) is True
    fresh = Registry(registry.w3, registry.address)
    fresh.suspend(accounts[0], cid).wait()
    rpc(registry.rpc_url, "anvil_mine", hex(10))
    assert indexer.step().rolled_back_to is not None
    indexer.catch_up()
    assert store.certificate(cid.hex())["status"] == Status.SUSPENDED  # type: ignore[index]


def test_follows_through_database_and_ledger_outages(
    registry: Registry, accounts: list[LocalAccount], deploy_block: int, tmp_path: Path
) -> None:
    """PostgreSQL and the chain node behind proxies that go down and come back: the running
    indexer backs off, then catches up with nothing lost or doubled."""
    from e2e import TcpProxy, wait_until

    with database("postgresql", tmp_path) as url:
        db_proxy, rpc_proxy = TcpProxy(5432), TcpProxy(int(registry.rpc_url.rsplit(":", 1)[1]))
        db_proxy.up()
        rpc_proxy.up()
        store = Store(url.replace("127.0.0.1:5432", f"127.0.0.1:{db_proxy.port}"))
        via_proxy = Registry(connect(rpc_proxy.url), registry.address)
        indexer = Indexer(via_proxy, store, deploy_block)
        stop = threading.Event()
        runner = threading.Thread(target=indexer.run, kwargs={"poll": 0.1, "stop": stop})
        runner.start()
        try:
            first = put_on_ledger(registry, accounts, devices(1)[0])
            wait_until(lambda: store.certificate(first.hex()) is not None, 30, "the first")
            for proxy in (db_proxy, rpc_proxy):
                proxy.down()
                later = put_on_ledger(registry, accounts, devices(1)[0])
                time.sleep(1.0)  # the indexer fails and backs off meanwhile
                proxy.up()
                wait_until(
                    lambda cid=later: store.certificate(cid.hex()) is not None,  # type: ignore[misc]
                    60,
                    "the certificate submitted during the outage",
                )
            stop.set()
            runner.join(30)
            assert not runner.is_alive()
            assert store.event_count() == len(registry.events(deploy_block))
            _assert_mirrors(store, registry)
        finally:
            stop.set()
            store.close()
            db_proxy.down()
            rpc_proxy.down()


def _rows(store: Store) -> dict[str, list[dict[str, object]]]:
    """Return every table of the index, rows in primary-key order.

    Left out, as they differ with the range size by design: the ``revision`` column and
    meta key (a counter of commits) and the hashes of blocks without events (each range
    keeps its last block's, for finding reorganizations)."""
    from dpki.inquiry import schema

    out = {}
    with store.engine.connect() as db:
        for table in schema.meta_table.metadata.sorted_tables:
            result = db.execute(sa.select(table).order_by(*table.primary_key.columns))
            rows = [dict(r._mapping) for r in result]
            for row in rows:
                row.pop("revision", None)
            out[table.name] = [r for r in rows if r.get("key") != "revision"]
    with_events = {r["block_number"] for r in out["events"]}
    out["blocks"] = [r for r in out["blocks"] if r["number"] in with_events]
    return out


def _ledger_for_equal_rows(registry: Registry, accounts: list[LocalAccount]) -> None:
    """Put on the ledger what every path of the projection handles: the five end states, a
    certificate submitted before its issuing CA (adopted when the CA arrives), a batch of
    devices issued by that CA and endorsed in batches (many events a block, as in a
    catch-up), and a renewal that activates (superseded, replaced_by)."""
    from dpki.dev.devices import make_ca, make_device
    from dpki.submission import submit_all

    _lifecycle(registry, accounts)
    ca = make_ca("Vendor A", "Equal Rows CA")
    put_on_ledger(registry, accounts, make_device("Vendor A", "EQ-early", issuer=ca))
    put_on_ledger(registry, accounts, ca)
    batch = [make_device("Vendor A", f"EQ{i}", issuer=ca) for i in range(24)]
    subs = [submission_for(load_facts(d.der)[0]) for d in batch]
    submit_all(registry, accounts[0], subs, batch_size=8)
    ids = [s.cert_id for s in subs]
    for who in (1, 2):
        for start in range(0, len(ids), 8):
            registry.endorse_batch(accounts[who], ids[start : start + 8]).wait()
    renewal = make_device("Vendor A", "EQ0-renewed", issuer=ca)
    receipt = registry.renew(accounts[0], ids[0], submission_for(load_facts(renewal.der)[0]))
    new_id = bytes(receipt.wait().event("CertificateSubmitted").args["certId"])
    registry.endorse(accounts[1], new_id).wait()
    registry.endorse(accounts[2], new_id).wait()  # the last block holds events


def _renews(events: list[Any]) -> bool:
    """Say whether a transaction's events supersede a certificate (a renewal activates)."""
    return any(
        e.name == "CertificateStatusChanged" and e.args["status"] == Status.SUPERSEDED
        for e in events
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_index_built_in_one_range_equals_one_built_event_by_event(
    registry: Registry,
    accounts: list[LocalAccount],
    deploy_block: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """A catch-up (one range read in parts, rows written through the driver beside the
    signature checks) makes the same rows in every table as the indexer in one-block steps
    and as one event per transaction through SQLAlchemy's ``insert()``."""
    from dpki.inquiry import store as store_module

    _ledger_for_equal_rows(registry, accounts)
    events = registry.events(deploy_block)
    for name in ("fast", "steps", "slow"):
        (tmp_path / name).mkdir()
    with (
        database(kind, tmp_path / "fast") as fast_url,
        database(kind, tmp_path / "steps") as steps_url,
        database(kind, tmp_path / "slow") as slow_url,
    ):
        fast = Store(fast_url)
        results: list[int] = []
        assert Indexer(registry, fast, deploy_block).catch_up(
            progress=lambda r: results.append(r.events)
        ) == len(events)
        assert results[0] == len(events)  # one range: the catch-up path, not many small ones
        assert len(results) == 1  # it reached the head it read: no step to find nothing new
        steps = Store(steps_url)
        assert Indexer(registry, steps, deploy_block, batch_blocks=1).catch_up() == len(events)
        slow = Store(slow_url)
        indexer = Indexer(registry, slow, deploy_block)
        blocks = indexer.headers({e.block_number for e in events})

        def insert_with_sqlalchemy(db: sa.Connection, table: sa.Table, rows: list) -> None:  # type: ignore[type-arg]
            if rows:
                db.execute(table.insert(), list(rows))

        monkeypatch.setattr(store_module, "_insert_many", insert_with_sqlalchemy)
        # one event per transaction, except that a transaction's events stay together as
        # every range keeps them (a renewal's activation names what it replaces only beside
        # the predecessor's supersession, in the same transaction)
        for _tx, group in itertools.groupby(events, key=lambda e: e.tx_hash):
            together = list(group)
            split = (
                [[e] for e in together]
                if len(together) < 2 or not _renews(together)
                else [together]
            )
            for part in split:
                block = blocks[part[0].block_number]
                assert block is not None
                slow.commit_range(part, {block.number: block}, block)
        want = _rows(slow)
        assert len(want["certificates"]) == 5 + 2 + 24 + 1
        assert len(want["events"]) == len(events) and len(want["members"]) == 3
        issued = [r for r in want["certificates"] if not r["self_issued"]]
        assert len(issued) == 26 and all(r["issuer_key_sha1"] for r in issued)
        assert sum(r["replaced_by"] is not None for r in want["certificates"]) == 1
        assert {r["key"] for r in want["meta"]} >= {"checkpoint", "registry", "threshold"}
        for got in (_rows(fast), _rows(steps)):
            assert got.keys() == want.keys()
            for table in want:
                assert got[table] == want[table], table
        for store in (fast, steps, slow):
            store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_driver_level_inserts_fail_as_sqlalchemy_errors(tmp_path: Path, kind: str) -> None:
    """Rows written through the driver still fail with SQLAlchemy's exceptions (the indexer
    retries UNAVAILABLE ones), and a failed range leaves nothing behind."""
    from dpki.inquiry import schema
    from dpki.inquiry.store import UNAVAILABLE, _insert_many

    row = {"number": 7, "hash": "ab" * 32, "timestamp": 1}
    with database(kind, tmp_path) as url:
        store = Store(url)
        with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as db:
            _insert_many(db, schema.blocks_table, [row, row])  # the same primary key twice
        with store.engine.connect() as db:
            assert db.execute(sa.select(schema.blocks_table)).all() == []
        if kind == "postgresql":  # the server ends the session mid-range: an outage
            with pytest.raises(UNAVAILABLE), store.engine.begin() as db:
                pid = db.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                _insert_many(db, schema.blocks_table, [row])
        store.close()
