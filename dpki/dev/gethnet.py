"""The consortium devnet: one geth Clique sealer per member on 127.0.0.1.

go-ethereum v1.13.15 is built once with the ordinary Go client from the module proxy
(``make geth``, or :func:`find_geth` on first use) into ``.build/bin``. Each member's node
has its own data folder, devp2p and JSON-RPC ports, a devp2p node key, and a sealing key of
its own (an encrypted keystore the node unlocks): the member's registry key never leaves the
member's side. Nodes know each other as static peers; discovery is off.

Every process is started in its own session and stopped by its PID; :meth:`GethNetwork.stop`
leaves no process and, unless asked to keep it, no data.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from eth_account import Account

from dpki.chain.consortium import NodeKey, clique_genesis, write_json
from dpki.chain.keys import encrypt_key
from dpki.chain.netinit import geth_command, geth_config, write_private
from dpki.dev.devnet import free_port, stop_pid
from dpki.errors import ChainError, ToolchainError

if TYPE_CHECKING:
    from dpki.chain.deployment import Deployment

__all__ = [
    "DEVNET_GAS_LIMIT",
    "GETH_MODULE",
    "GETH_VERSION",
    "GethNetwork",
    "GethNode",
    "build_geth",
    "deploy_geth_devnet",
    "find_geth",
    "rpc_call",
]

GETH_VERSION = "1.13.15"
GETH_MODULE = f"github.com/ethereum/go-ethereum/cmd/geth@v{GETH_VERSION}"
CHAIN_ID = 1337
#: the devnet's block gas limit. A batch of 100 submissions costs ~6.9 M gas and 100
#: endorsements ~0.93 M: 100 M gas a block carries ten such batches (1,000 certificates) and
#: both validators' endorsements of them, so a run of batches lands in one block instead of
#: spreading over three (at 30 M, four batches a block) and every block of it costs the
#: validators another period. geth processes a full 100 M-gas block of submissions in
#: well under the 1 s period on a 2-core machine (its log: ``Imported new chain segment``,
#: ``elapsed``).
DEVNET_GAS_LIMIT = 100_000_000
_APIS = "eth,net,web3,clique,admin,miner,txpool"


def _project_bin() -> Path:
    return Path(__file__).resolve().parents[2] / ".build" / "bin"


def _version(binary: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(binary), "version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return None
    for line in out.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip().removesuffix("-stable")
    return None


def build_geth(bin_dir: Path | None = None) -> Path:
    """Build geth v1.13.15 with ``go install`` into ``bin_dir`` (default ``.build/bin``)."""
    target = bin_dir or _project_bin()
    go = shutil.which("go")
    if go is None:
        raise ToolchainError(
            f"geth {GETH_VERSION} is not built and Go is not installed: install Go >= 1.21 "
            "(https://go.dev/dl/) and run `make geth`, or set DPKI_GETH to a geth "
            f"{GETH_VERSION} binary"
        )
    target.mkdir(parents=True, exist_ok=True)
    # Go >= 1.23 refuses fjl/memsize's go:linkname without -checklinkname=0
    command = [go, "install", "-ldflags=-checklinkname=0", GETH_MODULE]
    done = subprocess.run(
        command, env=dict(os.environ, GOBIN=str(target)), capture_output=True, text=True
    )
    binary = target / "geth"
    if done.returncode != 0 or not binary.is_file():
        raise ToolchainError(
            f"`{' '.join(command)}` failed (exit {done.returncode}):\n{done.stderr.strip()}"
        )
    return binary


def find_geth(build: bool = True) -> Path:
    """Return geth v1.13.15: ``$DPKI_GETH``, ``.build/bin/geth``, PATH, or build it now."""
    candidates = []
    if os.environ.get("DPKI_GETH"):
        candidates.append(Path(os.environ["DPKI_GETH"]))
    candidates.append(_project_bin() / "geth")
    on_path = shutil.which("geth")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and _version(candidate) == GETH_VERSION:
            return candidate
    if not build:
        raise ToolchainError(f"no geth {GETH_VERSION}: run `make geth`")
    return build_geth()


def rpc_call(url: str, method: str, *params: Any, timeout: float = 5.0) -> Any:
    """Call one JSON-RPC method; raise ChainError on an error answer or no answer."""
    try:
        body = requests.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
            timeout=timeout,
        ).json()
    except (requests.RequestException, ValueError) as exc:
        raise ChainError(f"{method} at {url}: no answer ({exc})") from None
    if "error" in body:
        raise ChainError(f"{method} at {url}: {body['error'].get('message')}")
    return body["result"]


@dataclass
class GethNode:
    """One member's node: its folder, ports, keys and (when running) its process."""

    organization: str
    datadir: Path
    p2p_port: int
    rpc_port: int
    auth_port: int
    signer: str
    enode: str
    pid: int | None = None

    @property
    def rpc_url(self) -> str:
        """Return the node's JSON-RPC URL."""
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def log(self) -> Path:
        """Return the node's log file."""
        return self.datadir.parent / f"{self.datadir.name}.log"

    def command(
        self,
        geth: Path | str = "geth",
        gas_limit: int = DEVNET_GAS_LIMIT,
        *,
        apis: str = _APIS,
        chain_id: int = CHAIN_ID,
    ) -> list[str]:
        """Return the command line that runs this node (no secret on it: files only)."""
        return geth_command(
            self.datadir,
            rpc_port=self.rpc_port,
            auth_port=self.auth_port,
            signer=self.signer,
            geth=geth,
            gas_limit=gas_limit,
            apis=apis,
            chain_id=chain_id,
        )

    def alive(self) -> bool:
        """Say whether the node's process exists."""
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(self.pid, os.WNOHANG)[0] == self.pid:
                return False
        return True

    def answers(self) -> bool:
        """Say whether the node answers JSON-RPC."""
        try:
            rpc_call(self.rpc_url, "eth_blockNumber", timeout=1)
        except ChainError:
            return False
        return True


@dataclass
class GethNetwork:
    """A Clique network of one sealing node per member."""

    root: Path
    nodes: list[GethNode]
    period: int = 1
    gas_limit: int = DEVNET_GAS_LIMIT
    geth: str = "geth"
    funded: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ set-up

    @classmethod
    def create(
        cls,
        root: Path,
        organizations: Sequence[str],
        funded: Sequence[str],
        *,
        period: int = 1,
        gas_limit: int = DEVNET_GAS_LIMIT,
        geth: Path | None = None,
    ) -> GethNetwork:
        """Write the genesis, keys and configuration of every node and initialise them."""
        binary = geth or find_geth()
        root.mkdir(parents=True, exist_ok=True)
        nodes = []
        node_keys = []
        signer_keys = []
        for i, org in enumerate(organizations):
            datadir = root / f"node{i + 1}"
            node_key = NodeKey.generate()
            signer = Account.create()
            ports = [free_port() for _ in range(3)]
            while len(set(ports)) < 3:
                ports = [free_port() for _ in range(3)]
            nodes.append(
                GethNode(
                    organization=org,
                    datadir=datadir,
                    p2p_port=ports[0],
                    rpc_port=ports[1],
                    auth_port=ports[2],
                    signer=signer.address,
                    enode=node_key.enode("127.0.0.1", ports[0]),
                )
            )
            node_keys.append(node_key)
            signer_keys.append(signer)
        genesis = clique_genesis(
            CHAIN_ID, [n.signer for n in nodes], funded, period=period, gas_limit=gas_limit
        )
        write_json(root / "genesis.json", genesis)
        for node, node_key, signer in zip(nodes, node_keys, signer_keys, strict=True):
            node.datadir.mkdir(parents=True, exist_ok=True)
            node_key.write(node.datadir / "nodekey")
            password = secrets.token_hex(16)
            write_private(node.datadir / "password", password)
            keyfile = encrypt_key(signer.key, password, kdf="scrypt", iterations=2**12)
            write_private(
                node.datadir / "keystore" / f"signer-{signer.address.lower()}.json",
                json.dumps(keyfile),
            )
            peers = [n.enode for n in nodes if n is not node]
            # devp2p on the loopback only, as JSON-RPC: a devnet takes no peers from outside
            (node.datadir / "config.toml").write_text(
                geth_config(f"127.0.0.1:{node.p2p_port}", peers)
            )
            done = subprocess.run(
                [str(binary), "--datadir", str(node.datadir), "init", str(root / "genesis.json")],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise ToolchainError(f"geth init failed for {node.datadir}: {done.stderr}")
        net = cls(root, nodes, period, gas_limit, str(binary), list(funded))
        net.save()
        return net

    # ------------------------------------------------------------------ processes

    def start(self, timeout: float = 60.0) -> None:
        """Start every node that is not running and wait until they answer and peer."""
        for node in self.nodes:
            if not node.alive():
                self.start_node(node, wait=False)
        self.wait_ready(timeout)

    def start_node(self, node: GethNode, *, wait: bool = True, timeout: float = 60.0) -> None:
        """Start one node (appending to its log)."""
        with open(node.log, "ab") as out:
            proc = subprocess.Popen(
                node.command(self.geth, self.gas_limit),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        node.pid = proc.pid
        self.save()
        if wait:
            self._wait_answers(node, timeout)

    def _wait_answers(self, node: GethNode, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not node.answers():
            if not node.alive():
                raise ToolchainError(
                    f"geth for {node.organization} exited; last lines of {node.log}:\n"
                    + _tail(node.log)
                )
            if time.monotonic() > deadline:
                raise ToolchainError(f"geth for {node.organization} did not answer in {timeout} s")
            time.sleep(0.1)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every running node answers and is peered with every other one."""
        deadline = time.monotonic() + timeout
        running = [n for n in self.nodes if n.pid is not None]
        for node in running:
            self._wait_answers(node, max(1.0, deadline - time.monotonic()))
        while True:
            counts = [int(rpc_call(n.rpc_url, "net_peerCount"), 16) for n in running]
            if all(c >= len(running) - 1 for c in counts):
                return
            if time.monotonic() > deadline:
                raise ToolchainError(f"nodes did not peer in {timeout:.0f} s: peers {counts}")
            time.sleep(0.2)

    def kill_node(self, node: GethNode, sig: int = signal.SIGKILL) -> None:
        """Stop one node abruptly (SIGKILL by default: a crash) and reap it."""
        if node.pid is None:
            return
        if sig == signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while node.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
        else:
            stop_pid(node.pid)
        node.pid = None
        self.save()

    def stop(self, keep_data: bool = False) -> list[int]:
        """Stop every node by its PID; remove the data unless ``keep_data``. Return the PIDs."""
        stopped = []
        for node in self.nodes:
            if node.pid is not None:
                stop_pid(node.pid, timeout=20)
                stopped.append(node.pid)
                node.pid = None
        if keep_data:
            self.save()
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        return stopped

    def wait_block(self, number: int, timeout: float = 60.0) -> None:
        """Wait until every running node has block ``number`` (the same one)."""
        deadline = time.monotonic() + timeout
        running = [n for n in self.nodes if n.alive()]
        while True:
            hashes = set()
            for n in running:
                block = rpc_call(n.rpc_url, "eth_getBlockByNumber", hex(number), False)
                hashes.add(block["hash"] if block else None)
            if None not in hashes and len(hashes) == 1:
                return
            if time.monotonic() > deadline:
                raise ChainError(f"nodes do not agree on block {number} after {timeout:.0f} s")
            time.sleep(0.1)

    # ------------------------------------------------------------------ peers

    def cut(self, a: GethNode, b: GethNode) -> None:
        """Cut the devp2p link between two nodes (both sides drop it from their static set)."""
        rpc_call(a.rpc_url, "admin_removePeer", b.enode)
        rpc_call(b.rpc_url, "admin_removePeer", a.enode)

    def partition(
        self, side: Sequence[GethNode], other: Sequence[GethNode], timeout: float = 20.0
    ) -> None:
        """Cut every link between two groups of nodes and wait until none is left (a dial
        already under way may bring a link back once: it is cut again)."""
        deadline = time.monotonic() + timeout
        far = {n.enode.split("@")[0] for n in other}
        while True:
            for a in side:
                for b in other:
                    self.cut(a, b)
            time.sleep(0.3)
            if not any(far & set(self.peers(a)) for a in side):
                return
            if time.monotonic() > deadline:
                raise ChainError(f"links still up after {timeout:.0f} s of cutting")

    def link(self, a: GethNode, b: GethNode) -> None:
        """Restore the devp2p link between two nodes."""
        rpc_call(a.rpc_url, "admin_addPeer", b.enode)
        rpc_call(b.rpc_url, "admin_addPeer", a.enode)

    def peers(self, node: GethNode) -> list[str]:
        """Return the enode public keys ``node`` is connected to."""
        return [str(p["enode"]).split("@")[0] for p in rpc_call(node.rpc_url, "admin_peers")]

    # ------------------------------------------------------------------ status

    def status(self) -> list[dict[str, Any]]:
        """Return one row per node: head, peers, signers, whether it seals."""
        rows = []
        for node in self.nodes:
            row: dict[str, Any] = {
                "organization": node.organization,
                "rpc_url": node.rpc_url,
                "p2p_port": node.p2p_port,
                "pid": node.pid,
                "signer": node.signer,
                "running": node.alive(),
            }
            if row["running"] and node.answers():
                head = rpc_call(node.rpc_url, "eth_getBlockByNumber", "latest", False)
                signers = rpc_call(node.rpc_url, "clique_getSigners", "latest")
                clique = rpc_call(node.rpc_url, "clique_status")
                activity = {k.lower(): v for k, v in clique["sealerActivity"].items()}
                row.update(
                    head=int(head["number"], 16),
                    head_age_seconds=max(0, int(time.time()) - int(head["timestamp"], 16)),
                    peers=int(rpc_call(node.rpc_url, "net_peerCount"), 16),
                    signers=[str(s) for s in signers],
                    is_signer=node.signer.lower() in {s.lower() for s in signers},
                    sealed_recent=activity.get(node.signer.lower(), 0),
                    sealing=bool(rpc_call(node.rpc_url, "eth_mining")),
                )
            rows.append(row)
        return rows

    # ------------------------------------------------------------------ files

    def to_json(self) -> dict[str, Any]:
        """Return the network as JSON (what the deployment file keeps)."""
        return {
            "engine": "geth-clique",
            "root": str(self.root),
            "period": self.period,
            "gas_limit": self.gas_limit,
            "geth": self.geth,
            "funded": self.funded,
            "nodes": [
                {k: str(v) if isinstance(v, Path) else v for k, v in asdict(n).items()}
                for n in self.nodes
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GethNetwork:
        """Rebuild a network from :meth:`to_json`."""
        nodes = [GethNode(**dict(n, datadir=Path(n["datadir"]))) for n in data["nodes"]]
        return cls(
            Path(data["root"]),
            nodes,
            int(data["period"]),
            int(data["gas_limit"]),
            str(data["geth"]),
            list(data.get("funded", [])),
        )

    def save(self) -> None:
        """Write ``network.json`` in the network's folder (PIDs included)."""
        if self.root.is_dir():
            write_json(self.root / "network.json", self.to_json())

    @classmethod
    def load(cls, root: Path) -> GethNetwork:
        """Read ``network.json`` from a network's folder."""
        return cls.from_json(json.loads((root / "network.json").read_text()))


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


#: fresh sets of ports tried when a port picked for a node was taken before geth bound it
_PORT_ATTEMPTS = 3


def _started_network(
    root: Path,
    orgs: Sequence[str],
    funded: Sequence[str],
    period: int,
    gas_limit: int,
    timeout: float,
) -> GethNetwork:
    """Create and start a network; when another process took one of the free ports picked
    for it before geth could bind it (they are picked, then bound), start over with fresh
    ones, as a retry of the whole network (peers name each other's ports)."""
    attempt = 1
    while True:
        net = GethNetwork.create(root, orgs, funded, period=period, gas_limit=gas_limit)
        try:
            net.start(timeout)
            return net
        except BaseException as exc:
            net.stop()
            clash = isinstance(exc, ToolchainError) and "address already in use" in str(exc)
            if not clash or attempt == _PORT_ATTEMPTS:
                raise
        attempt += 1


def deploy_geth_devnet(
    orgs: Sequence[str],
    threshold: int,
    *,
    state_dir: Path,
    path: Path,
    period: int = 1,
    gas_limit: int = DEVNET_GAS_LIMIT,
    timeout: float = 60.0,
) -> Deployment:
    """Start one geth Clique sealer per organization, deploy the registry, save the file.

    Member ``i`` acts with the devnet's dev key ``i`` (funded in the genesis) through its
    own node; each node seals with a key of its own.
    """
    from dpki.chain.deployment import Deployment, DeploymentMember, roles_to_names
    from dpki.chain.keys import dev_account
    from dpki.chain.registry import ROLE_SUBMITTER, ROLE_VALIDATOR, MemberSpec, Registry, connect

    accounts = [dev_account(i) for i in range(len(orgs))]
    net = _started_network(
        state_dir / "geth", orgs, [a.address for a in accounts], period, gas_limit, timeout
    )
    try:
        specs = [
            MemberSpec(a.address, org, ROLE_VALIDATOR | ROLE_SUBMITTER)
            for a, org in zip(accounts, orgs, strict=True)
        ]
        registry, receipt = Registry.deploy(
            connect(net.nodes[0].rpc_url), accounts[0], specs, threshold
        )
        net.wait_block(receipt.block_number, timeout)
        deployment = Deployment(
            rpc_url=net.nodes[0].rpc_url,
            chain_id=registry.chain_id,
            registry=registry.address,
            deploy_block=receipt.block_number,
            members=[
                DeploymentMember(
                    s.organization, s.address, roles_to_names(s.roles), i, None, n.rpc_url
                )
                for i, (s, n) in enumerate(zip(specs, net.nodes, strict=True))
            ],
            network="devnet",
            devnet=net.to_json(),
            engine="geth-clique",
        )
        deployment.save(path)
    except BaseException:
        net.stop()
        raise
    return deployment
