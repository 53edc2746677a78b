"""Faults on a real 3-node geth Clique network: one sealer per member, validators on each.

The network is built once for the module (geth v1.13.15, ``make geth``); each test leaves it
whole again (every node up, every link restored). Members act through their own node, as
the deployment file says; the validators are `dpki validator run` subprocesses.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from e2e import ORGS, ValidatorProcess, dpki_cmd, run_cli, wait_until

from dpki.chain.consortium import (
    clique_confirmations,
    decode_clique_extradata,
    default_confirmations,
    detect_engine,
)
from dpki.chain.deployment import Deployment
from dpki.chain.keys import dev_account
from dpki.chain.registry import Registry, Status, Submission, connect
from dpki.dev.devices import make_device
from dpki.dev.devnet import free_port
from dpki.dev.gethnet import (
    DEVNET_GAS_LIMIT,
    GethNetwork,
    GethNode,
    deploy_geth_devnet,
    rpc_call,
)
from dpki.inquiry.indexer import Indexer
from dpki.inquiry.store import Store
from dpki.pki.x509 import facts
from dpki.submission import SubmitOutcome, submission_for, submit_all

pytestmark = pytest.mark.slow

VENDOR, OPERATOR, CA = ORGS


@dataclass
class Consortium:
    """The module's network, deployment and validators."""

    net: GethNetwork
    deployment: Deployment
    validators: dict[str, ValidatorProcess]
    tmp: Path

    def node(self, org: str) -> GethNode:
        return next(n for n in self.net.nodes if n.organization == org)

    def registry(self, org: str) -> Registry:
        return Registry(connect(self.node(org).rpc_url), self.deployment.registry)

    def head(self, org: str) -> int:
        return int(rpc_call(self.node(org).rpc_url, "eth_blockNumber"), 16)

    def block_hash(self, org: str, number: int) -> str | None:
        block = rpc_call(self.node(org).rpc_url, "eth_getBlockByNumber", hex(number), False)
        return None if block is None else str(block["hash"])


_serial = iter(range(10**6))


def devices(n: int) -> list[Submission]:
    """Return ``n`` fresh Vendor A device certificates as submissions."""
    out = []
    for _ in range(n):
        d = make_device(VENDOR, f"GETH{next(_serial):06d}")
        out.append(submission_for(facts(d.certificate, der=d.der)))
    return out


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    tmp = tmp_path_factory.mktemp("geth")
    deployment = deploy_geth_devnet(ORGS, 2, state_dir=tmp, path=tmp / "deployment.json")
    assert deployment.devnet is not None
    net = GethNetwork.load(Path(deployment.devnet["root"]))
    validators = {org: ValidatorProcess(deployment, org, tmp).start() for org in ORGS}
    try:
        yield Consortium(net, deployment, validators, tmp)
    finally:
        for v in validators.values():
            v.stop()
        GethNetwork.load(net.root).stop()
    for v in validators.values():
        assert "Traceback" not in v.log_text(), v.log_text()[-3000:]


def all_status(registry: Registry, subs: list[Submission], wanted: Status) -> bool:
    return all(r.status is wanted for r in registry.statuses([s.cert_id for s in subs]))


def endorsements(registry: Registry, from_block: int) -> list[tuple[bytes, str]]:
    events = registry.events(from_block, "latest", ["CertificateEndorsed"])
    return [(bytes(e.args["certId"]), str(e.args["validator"])) for e in events]


# ---------------------------------------------------------------------------------- shape


def test_one_sealer_per_member_static_peers_no_discovery(consortium: Consortium) -> None:
    net, deployment = consortium.net, consortium.deployment
    genesis = json.loads((net.root / "genesis.json").read_text())
    signers = decode_clique_extradata(bytes.fromhex(genesis["extradata"][2:]))
    assert sorted(s.lower() for s in signers) == sorted(n.signer.lower() for n in net.nodes)
    assert genesis["config"]["clique"]["period"] == 1
    assert int(genesis["gasLimit"], 16) == DEVNET_GAS_LIMIT == 100_000_000  # batches, not mainnet
    assert "shanghaiTime" not in genesis["config"]  # Clique refuses Shanghai
    assert deployment.engine == detect_engine(net.nodes[1].rpc_url) == "geth-clique"
    # no one of three signers can undo a block with one on top (the partition test shows it)
    assert default_confirmations(None, net.nodes[1].rpc_url) == clique_confirmations(3) == 1
    urls = {m.organization: m.rpc_url for m in deployment.members}
    assert urls == {n.organization: n.rpc_url for n in net.nodes}
    assert len(set(urls.values())) == 3
    assert len({n.datadir for n in net.nodes}) == 3
    for node in net.nodes:
        info = rpc_call(node.rpc_url, "admin_nodeInfo")
        assert info["ports"]["discovery"] == 0  # --nodiscover
        assert info["ports"]["listener"] == node.p2p_port
        assert info["listenAddr"] == f"127.0.0.1:{node.p2p_port}"  # devp2p on loopback only
        others = {n.enode.split("@")[0] for n in net.nodes if n is not node}
        assert set(net.peers(node)) == others
        static = (node.datadir / "config.toml").read_text()
        assert all(o in static for o in others)
    start = consortium.head(VENDOR)
    wait_until(lambda: consortium.head(VENDOR) >= start + 6, timeout=30, what="6 blocks")
    rows = {r["organization"]: r for r in net.status()}
    assert all(r["sealing"] and r["is_signer"] and r["peers"] == 2 for r in rows.values())
    assert sum(r["sealed_recent"] > 0 for r in rows.values()) >= 2  # they take turns


def test_devnet_status_cli_shows_every_node(consortium: Consortium) -> None:
    result = run_cli("devnet", "status", "--json", deployment=consortium.deployment)
    assert result.returncode == 0, result.stderr
    nodes = json.loads(result.stdout)["nodes"]
    assert [n["organization"] for n in nodes] == list(ORGS)
    assert all(n["head"] > 0 and n["peers"] == 2 and n["sealing"] for n in nodes)
    text = run_cli("devnet", "status", deployment=consortium.deployment).stdout
    assert text.count("sealing as") == 3


# ---------------------------------------------------------------------------------- faults


def test_propagation_indexers_and_relying_parties_agree(consortium: Consortium) -> None:
    """4. A member's transactions reach the sealers; every node's view agrees once settled."""
    vendor_node = consortium.node(VENDOR)
    rpc_call(vendor_node.rpc_url, "miner_stop")  # only the other sealers can mine them now
    try:
        subs = devices(30)
        first = consortium.head(VENDOR)
        outcomes = submit_all(
            consortium.registry(VENDOR), dev_account(0), subs, batch_size=10, confirmations=2
        )
        assert all(o.submitted for o in outcomes)
        sealers = {
            str(rpc_call(vendor_node.rpc_url, "clique_getSigner", hex(o.block))).lower()
            for o in outcomes
            if o.block is not None
        }
        assert vendor_node.signer.lower() not in sealers
        assert sealers <= {n.signer.lower() for n in consortium.net.nodes}
    finally:
        rpc_call(vendor_node.rpc_url, "miner_start")
    registry = consortium.registry(OPERATOR)
    wait_until(lambda: all_status(registry, subs, Status.ACTIVE), timeout=90, what="active")
    settled = max(consortium.head(o) for o in ORGS) + 3
    wait_until(lambda: min(consortium.head(o) for o in ORGS) >= settled, timeout=60, what="+3")
    views: list[dict[str, Any]] = []
    for org in ORGS:
        store = Store(f"sqlite:///{consortium.tmp / f'index-{org.split()[-1]}.sqlite'}")
        try:
            reg = consortium.registry(org)
            Indexer(reg, store, consortium.deployment.deploy_block).catch_up()
            views.append(
                {
                    "index": {
                        s.cert_id.hex(): (store.certificate(s.cert_id.hex()) or {}).get("status")
                        for s in subs
                    },
                    "relying": [reg.is_valid(s.cert_id) for s in subs],
                    "block": consortium.block_hash(org, settled),
                }
            )
        finally:
            store.close()
    assert views[0] == views[1] == views[2]
    assert set(views[0]["index"].values()) == {int(Status.ACTIVE)}
    assert all(views[0]["relying"])
    assert first < settled


def test_a_sealer_dies_and_comes_back(consortium: Consortium) -> None:
    """1. Kill one node of three: two seal on, certificates activate, the third catches up.

    The node that dies is the vendor's (with its validator): the two remaining validators
    are then the ones that may endorse the vendor's certificates under any rule; the vendor
    submits through another member's node meanwhile.
    """
    net = consortium.net
    dead = consortium.node(VENDOR)
    validator = consortium.validators[VENDOR]
    # its first checkpoint, whatever ran before (this test also runs alone)
    wait_until(validator.state.exists, timeout=30, what="the validator's checkpoint")
    net.kill_node(dead)
    validator.kill()
    checkpoint_before = json.loads(validator.state.read_text())["checkpoint"]
    try:
        start = consortium.head(OPERATOR)
        wait_until(lambda: consortium.head(OPERATOR) >= start + 4, timeout=30, what="2 seal on")
        subs = devices(20)
        submit_all(consortium.registry(OPERATOR), dev_account(0), subs, batch_size=10)
        registry = consortium.registry(CA)
        wait_until(lambda: all_status(registry, subs, Status.ACTIVE), timeout=90, what="active")
    finally:
        net.start_node(dead)
        validator.start()
    target = consortium.head(OPERATOR)
    wait_until(lambda: consortium.head(VENDOR) >= target, timeout=60, what="the node syncs")
    assert consortium.block_hash(VENDOR, target) == consortium.block_hash(OPERATOR, target)
    wait_until(
        lambda: json.loads(validator.state.read_text())["checkpoint"] >= target - 2,
        timeout=60,
        what="the validator catches up",
    )
    log = validator.log_text()
    assert f"from block {checkpoint_before + 1}" in log  # resumed from its checkpoint
    own = consortium.registry(VENDOR)
    assert all_status(own, subs, Status.ACTIVE)  # nothing lost
    votes = endorsements(own, consortium.deployment.deploy_block)
    assert len(votes) == len(set(votes))  # nothing endorsed twice
    assert "AlreadyVoted" not in log
    wait_until(lambda: len(net.peers(dead)) == 2, timeout=30, what="peers again")


def test_partition_minority_stalls_then_reorganizes(consortium: Consortium) -> None:
    """2. Cut CA C off: A and B seal on, C stalls; on healing C takes the majority's chain
    and its inquiry node drops what it took from the abandoned block."""
    net = consortium.net
    minority, majority = consortium.node(CA), [consortium.node(VENDOR), consortium.node(OPERATOR)]
    (target,) = devices(1)
    submit_all(consortium.registry(VENDOR), dev_account(0), [target], confirmations=2)
    wait_until(
        lambda: consortium.registry(CA).status_of(target.cert_id).status is Status.ACTIVE,
        timeout=60,
        what="target active",
    )
    cid = target.cert_id.hex()
    inquiry = InquiryNode(consortium, minority).start()
    try:
        wait_until(lambda: inquiry.status(cid) == "active", timeout=60, what="indexed")
        # the minority signs nothing until it is alone, so that it may seal one block then
        rpc_call(minority.rpc_url, "miner_stop")
        base = consortium.head(VENDOR)
        wait_until(lambda: consortium.head(VENDOR) >= base + 2, timeout=30, what="2 blocks")
        net.partition([minority], majority)
        # the vendor's one nonce, spent differently on each side
        suspend = consortium.registry(CA).transact(dev_account(0), "suspend", target.cert_id)
        revoke = consortium.registry(VENDOR).transact(dev_account(0), "revoke", target.cert_id, 1)
        rpc_call(minority.rpc_url, "miner_start")
        wait_until(lambda: inquiry.status(cid) == "suspended", timeout=30, what="minority block")
        stalled_at = consortium.head(CA)
        majority_at = consortium.head(VENDOR)
        time.sleep(4)
        assert consortium.head(CA) == stalled_at  # one of any 2 consecutive blocks: stalled
        fork_point = next(  # the newest block both sides share
            n
            for n in range(stalled_at, -1, -1)
            if consortium.block_hash(CA, n) == consortium.block_hash(VENDOR, n)
        )
        assert 0 < stalled_at - fork_point <= clique_confirmations(len(net.nodes))
        assert consortium.head(VENDOR) >= majority_at + 3  # two of three seal on
        assert consortium.registry(VENDOR).status_of(cid).status is Status.REVOKED
        health = inquiry.health()
        assert health["chain_head"] == stalled_at and health["lag_blocks"] == 0
        assert health["chain_head_age_seconds"] >= 3 and not health["ok"]  # and says so
        assert inquiry.status(cid) == "suspended"  # answers from its last state meanwhile
        for node in majority:
            net.link(minority, node)
        top = consortium.head(VENDOR)
        wait_until(
            lambda: consortium.head(CA) >= top and consortium.block_hash(CA, top) is not None,
            timeout=60,
            what="minority syncs",
        )
        assert consortium.block_hash(CA, stalled_at) == consortium.block_hash(VENDOR, stalled_at)
        assert (
            rpc_call(minority.rpc_url, "eth_getTransactionReceipt", "0x" + suspend.tx_hash.hex())
            is None
        )
        assert consortium.registry(CA).wait_settled([revoke])[0].block_number <= top
        wait_until(lambda: inquiry.status(cid) == "revoked", timeout=60, what="index rolls back")
        history = inquiry.record(cid)["history"]
        assert [h["status"] for h in history][-1] == "revoked"
        assert "suspended" not in [h["status"] for h in history]  # nothing from the lost block
        assert "reorganized" in inquiry.log_text()
        wait_until(lambda: inquiry.health()["ok"], timeout=30, what="healthy again")
    finally:
        inquiry.stop()
        rpc_call(minority.rpc_url, "miner_start")
        for node in majority:
            net.link(minority, node)
    store = Store(inquiry.db)
    try:  # every block the index keeps is on the chain
        for block in store.recent_blocks(256):
            assert consortium.block_hash(CA, block.number) == "0x" + block.hash
    finally:
        store.close()


def test_submitters_node_restarts_mid_batch(consortium: Consortium) -> None:
    """3. The vendor's node dies with its batches in its pool only: sent again, once each."""
    net = consortium.net
    own = consortium.node(VENDOR)
    others = [consortium.node(OPERATOR), consortium.node(CA)]
    rpc_call(own.rpc_url, "miner_stop")
    net.partition([own], others)  # the batches stay in this node's pool: nobody hears of them
    subs = devices(40)
    result: list[list[SubmitOutcome]] = []
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            result.append(
                submit_all(
                    consortium.registry(VENDOR),
                    dev_account(0),
                    subs,
                    batch_size=10,
                    confirmations=2,
                    timeout=240,
                )
            )
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=submit)
    thread.start()
    try:
        wait_until(
            lambda: int(rpc_call(own.rpc_url, "txpool_status")["pending"], 16) >= 4,
            timeout=60,
            what="4 batches in the pool",
        )
        net.kill_node(own, signal.SIGKILL)  # the pool is gone with it (no journal)
        time.sleep(2)
    finally:
        net.start_node(own)
    thread.join(240)
    assert not errors, errors
    (outcomes,) = result
    assert all(o.submitted for o in outcomes)
    assert sum(o.resent for o in outcomes) >= 10  # what was lost was sent again
    registry = consortium.registry(OPERATOR)
    wait_until(lambda: all_status(registry, subs, Status.ACTIVE), timeout=90, what="active")
    submitted = registry.events(
        consortium.deployment.deploy_block, "latest", ["CertificateSubmitted"]
    )
    ids = [bytes(e.args["certId"]) for e in submitted]
    assert all(ids.count(s.cert_id) == 1 for s in subs)  # nothing submitted twice
    wait_until(lambda: len(net.peers(own)) == 2, timeout=30, what="peers again")


# ---------------------------------------------------------------------------------- CLI


def test_devnet_up_status_down_leaves_nothing(tmp_path: Path) -> None:
    env_file = tmp_path / "deployment.json"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            dpki_cmd(*args, "--deployment", str(env_file)),
            capture_output=True,
            text=True,
            timeout=120,
        )

    up = cli("devnet", "up", "--engine", "geth", "--nodes", "2", "--period", "2", "--json")
    assert up.returncode == 0, up.stderr
    data = json.loads(up.stdout)
    assert data["engine"] == "geth-clique"
    assert [m["organization"] for m in data["members"]] == ["Member 1", "Member 2"]
    pids = [n["pid"] for n in data["devnet"]["nodes"]]
    root = Path(data["devnet"]["root"])
    genesis = json.loads((root / "genesis.json").read_text())
    assert genesis["config"]["clique"]["period"] == 2
    again = cli("devnet", "up", "--engine", "geth")
    assert again.returncode == 2 and "already running" in again.stderr
    status = cli("devnet", "status")
    assert status.returncode == 0 and status.stdout.count("sealing as") == 2
    down = cli("devnet", "down")
    assert down.returncode == 0, down.stderr
    for pid in pids:
        assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0
    assert not root.exists() and not env_file.exists()
    assert cli("devnet", "status").returncode == 1


def test_a_port_taken_before_geth_binds_it_gets_a_fresh_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ports are picked free, then bound by geth: another process may take one in between
    (a loaded CI machine). The devnet starts over with fresh ports instead of failing."""
    import socket

    import dpki.dev.gethnet as gethnet

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        picks = iter([port])  # the first node's devp2p port: taken

        def pick() -> int:
            return next(picks, None) or free_port()

        monkeypatch.setattr(gethnet, "free_port", pick)
        # three sealers, as every devnet here: two Clique sealers must take strict turns,
        # and a pair under load once stopped sealing altogether (a CI run of 41b72c9)
        deployment = deploy_geth_devnet(
            ("Member 1", "Member 2", "Member 3"),
            2,
            state_dir=tmp_path,
            path=tmp_path / "deployment.json",
        )
        net = GethNetwork.from_json(deployment.devnet or {})
        try:
            assert port not in {net.nodes[0].p2p_port, net.nodes[0].rpc_port}
            assert all(n.answers() for n in net.nodes)
            assert connect(deployment.rpc_url).eth.block_number >= deployment.deploy_block
        finally:
            net.stop()
        assert not (tmp_path / "geth").exists()


def test_devnet_up_refuses_bad_input(tmp_path: Path) -> None:
    for args, words in [
        (["--engine", "anvil", "--nodes", "3"], "--engine geth"),
        (["--engine", "geth", "--nodes", "2", "--org", "A"], "one node per member"),
        (["--engine", "geth", "--period", "0"], "period"),
    ]:
        result = subprocess.run(
            dpki_cmd("devnet", "up", *args, "--deployment", str(tmp_path / "d.json")),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------- helpers


class InquiryNode:
    """`dpki serve --follow` reading one node of the network (its own deployment file)."""

    def __init__(self, consortium: Consortium, node: GethNode) -> None:
        tmp = consortium.tmp / f"inquiry-{node.organization.split()[-1]}"
        tmp.mkdir(exist_ok=True)
        self.deployment = tmp / "deployment.json"
        self.deployment.write_text(
            json.dumps(consortium.deployment.to_json() | {"rpc_url": node.rpc_url})
        )
        self.db = f"sqlite:///{tmp / 'index.sqlite'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> InquiryNode:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                dpki_cmd(
                    "serve", "--follow", "--db", self.db, "--port", str(self.port),
                    "--max-head-age", "3", "--deployment", str(self.deployment),
                ),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        wait_until(self._answers, timeout=60, what="inquiry node up")
        return self

    def _answers(self) -> bool:
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code in (200, 503)
        except requests.RequestException:
            return False

    def status(self, cid: str) -> str | None:
        response = requests.get(f"{self.url}/status/{cid}", timeout=5)
        return str(response.json()["status"]) if response.status_code == 200 else None

    def record(self, cid: str) -> dict[str, Any]:
        return dict(requests.get(f"{self.url}/certificates/{cid}", timeout=5).json())

    def health(self) -> dict[str, Any]:
        return dict(requests.get(self.url + "/healthz", timeout=5).json())

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


def test_demo_on_geth_leaves_nothing_behind(tmp_path: Path) -> None:
    result = subprocess.run(
        dpki_cmd(
            "demo", "--engine", "geth", "--devices", "20", "--workdir", str(tmp_path), "--json"
        ),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["active"] == 20
    assert report["impostor_status"] == "rejected"
    assert report["ocsp"] == {"device 18": "good", "device 17": "revoked (key_compromise)"}
    deployment = json.loads((tmp_path / "deployment.json").read_text())
    assert deployment["engine"] == "geth-clique"
    for node in deployment["devnet"]["nodes"]:
        assert subprocess.run(["kill", "-0", str(node["pid"])], capture_output=True).returncode
    assert not (tmp_path / "geth").exists()
