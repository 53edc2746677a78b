"""``dpki network init``: the files a consortium needs to run its own PoA network.

For each member a folder with its node's configuration, its static peers and its start
command; beside them the shared ``genesis.json`` and ``network.json`` (who is where). A
member listed as ``NAME=ADDRESS`` brings its own sealing key (geth: a keystore account;
Besu: the node key, whose address is the validator's); a member listed as ``NAME`` alone
gets a fresh key in its folder, readable by its owner only, to be handed to that member and
nobody else. For Besu a member may give its node's public key (``NAME=0x`` + 128 hex
digits) instead of its address, so that the others can list it as a static peer.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils.address import is_hex_address, to_checksum_address
from eth_utils.crypto import keccak

from dpki.chain.consortium import (
    DEFAULT_GAS_LIMIT,
    NodeKey,
    clique_genesis,
    qbft_genesis,
    write_json,
)
from dpki.chain.keys import encrypt_key
from dpki.errors import ConfigError

__all__ = [
    "MemberSpec",
    "geth_command",
    "geth_config",
    "init_network",
    "parse_member",
    "write_private",
]

_GETH_APIS = "eth,net,web3,clique,txpool"
_BESU_APIS = ["ETH", "NET", "QBFT", "WEB3", "TXPOOL"]


@dataclass
class MemberSpec:
    """A member as ``--org`` names it: a name and an address or public key, or neither."""

    name: str
    address: str | None = None
    public_key: bytes | None = None
    host: str | None = None


def parse_member(text: str) -> MemberSpec:
    """Parse ``NAME``, ``NAME=ADDRESS`` or ``NAME=0xPUBKEY`` (128 hex digits)."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not name:
        raise ConfigError(f"--org {text!r}: NAME, NAME=ADDRESS or NAME=PUBLIC_KEY")
    if not sep:
        return MemberSpec(name)
    value = value.strip()
    if is_hex_address(value):
        return MemberSpec(name, to_checksum_address(value))
    raw = value.removeprefix("0x")
    if re.fullmatch(r"[0-9a-fA-F]{128}", raw):
        public = bytes.fromhex(raw)
        return MemberSpec(name, to_checksum_address(keccak(public)[-20:]), public)
    raise ConfigError(
        f"--org {text!r}: {value!r} is neither an address (0x + 40 hex digits) nor a node "
        "public key (0x + 128 hex digits)"
    )


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "member"


def init_network(
    engine: str,
    members: list[MemberSpec],
    out: Path,
    *,
    period: int | None = None,
    chain_id: int = 1337,
    gas_limit: int = DEFAULT_GAS_LIMIT,
    funded: list[str] | None = None,
    base_port: int | None = None,
) -> dict[str, Any]:
    """Write genesis, per-member configuration and start commands; return the summary."""
    if engine not in ("geth-clique", "besu-qbft"):
        raise ConfigError(f"unknown engine {engine!r}: wanted geth-clique or besu-qbft")
    if not members:
        raise ConfigError("a network needs at least one --org")
    names = [m.name for m in members]
    if len(set(names)) != len(names) or len({_slug(n) for n in names}) != len(names):
        raise ConfigError(f"organizations must be distinct, got {names}")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty: choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    local = all(m.host is None for m in members)
    rows: list[dict[str, Any]] = []
    for i, m in enumerate(members):
        folder = out / _slug(m.name)
        folder.mkdir()
        host = m.host or "127.0.0.1"
        p2p, rpc, auth = _ports(base_port, i if local else 0)
        row: dict[str, Any] = {
            "organization": m.name,
            "folder": folder.name,
            "host": host,
            "p2p_port": p2p,
            "rpc_port": rpc,
        }
        if engine == "geth-clique":
            node_key = NodeKey.generate()  # devp2p identity only: Clique signs with an account
            node_key.write(folder / "nodekey")
            row["enode"] = node_key.enode(host, p2p)
            row["signer"] = m.address or _new_geth_signer(folder)
            row["auth_port"] = auth
        else:
            if m.address is None:
                node_key = NodeKey.generate()
                node_key.write(folder / "key")
                m.public_key, m.address = node_key.public_key, node_key.address
            row["signer"] = m.address
            row["enode"] = (
                f"enode://{m.public_key.hex()}@{host}:{p2p}" if m.public_key is not None else None
            )
        rows.append(row)
    signers = [r["signer"] for r in rows]
    fund = funded if funded is not None else signers
    if engine == "geth-clique":
        genesis = clique_genesis(chain_id, signers, fund, period=period or 1, gas_limit=gas_limit)
    else:
        genesis = qbft_genesis(chain_id, signers, fund, period=period or 2, gas_limit=gas_limit)
    write_json(out / "genesis.json", genesis)
    for row in rows:
        peers = [r["enode"] for r in rows if r is not row and r["enode"]]
        folder = out / row["folder"]
        if engine == "geth-clique":
            row["start"] = _geth_files(folder, row, peers, chain_id, gas_limit)
        else:
            row["start"] = _besu_files(folder, row, peers)
        row["missing_peers"] = [r["organization"] for r in rows if r is not row and not r["enode"]]
    summary = {
        "engine": engine,
        "chain_id": chain_id,
        "period": genesis["config"].get("clique", {}).get("period")
        or genesis["config"]["qbft"]["blockperiodseconds"],
        "gas_limit": gas_limit,
        "members": rows,
    }
    write_json(out / "network.json", summary)
    return summary


def _ports(base: int | None, offset: int) -> tuple[int, int, int]:
    """Return (devp2p, JSON-RPC, engine API) ports: the standard ones, or from ``base``."""
    if base is None:
        return 30303 + offset, 8545 + offset, 8551 + offset
    return base + offset, base + 100 + offset, base + 200 + offset


def write_private(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def geth_config(listen: str, peers: list[str]) -> str:
    """Return a geth node's config.toml: where devp2p listens (``host:port``, or ``:port``
    for every interface) and its static peers (enode URLs)."""
    return f"[Node.P2P]\nListenAddr = {json.dumps(listen)}\nStaticNodes = {json.dumps(peers)}\n"


def geth_command(
    datadir: Path,
    *,
    rpc_port: int,
    auth_port: int,
    signer: str,
    gas_limit: int,
    chain_id: int,
    geth: Path | str = "geth",
    apis: str = _GETH_APIS,
) -> list[str]:
    """Return the command line of a geth v1.13.15 Clique sealer whose files are in
    ``datadir`` (config.toml with its devp2p address and static peers, see
    :func:`geth_config`; nodekey, keystore, password): secrets in files only, JSON-RPC and
    the engine API on 127.0.0.1, no discovery. (No ``--port``: it would make devp2p listen
    on every interface whatever the config says.)"""
    d = str(datadir)
    return [
        str(geth),
        "--datadir", d,
        "--config", f"{d}/config.toml",
        "--networkid", str(chain_id),
        "--nodekey", f"{d}/nodekey",
        "--nodiscover", "--nat", "none", "--maxpeers", "50",
        "--http", "--http.addr", "127.0.0.1", "--http.port", str(rpc_port),
        "--http.api", apis,
        "--authrpc.addr", "127.0.0.1", "--authrpc.port", str(auth_port),
        "--ipcdisable",
        "--syncmode", "full", "--gcmode", "archive",
        "--mine", "--miner.etherbase", signer,
        "--miner.gaslimit", str(gas_limit), "--miner.gasprice", "1",
        "--miner.recommit", "1s",
        "--unlock", signer, "--password", f"{d}/password", "--allow-insecure-unlock",
        "--txpool.nolocals", "--txpool.pricelimit", "1",
        "--txpool.accountslots", "4096", "--txpool.globalslots", "65536",
        "--txpool.accountqueue", "4096", "--txpool.globalqueue", "65536",
        "--rpc.txfeecap", "0", "--rpc.gascap", "0",
        "--verbosity", "3",
    ]  # fmt: skip


def _new_geth_signer(folder: Path) -> str:
    """Create a sealing account in the member's keystore (password in a 0600 file)."""
    account = Account.create()
    password = secrets.token_urlsafe(24)
    write_private(folder / "password", password)
    keyfile = encrypt_key(account.key, password)
    write_private(
        folder / "keystore" / f"signer-{account.address.lower()}.json", json.dumps(keyfile)
    )
    return str(account.address)


def _geth_files(
    folder: Path, row: dict[str, Any], peers: list[str], chain_id: int, gas_limit: int
) -> str:
    # on its own host a node takes peers on every interface
    (folder / "config.toml").write_text(geth_config(f":{row['p2p_port']}", peers))
    command = geth_command(
        Path("."),
        rpc_port=row["rpc_port"],
        auth_port=row["auth_port"],
        signer=row["signer"],
        gas_limit=gas_limit,
        chain_id=chain_id,
    )
    if row["host"] != "127.0.0.1":
        command[command.index("none")] = f"extip:{row['host']}"
    script = folder / "start.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"# {row['organization']}: geth v1.13.15 Clique sealer ({row['signer']}).\n"
        "# Needs the signer in keystore/ and its password in ./password (generated here, or\n"
        "# yours: geth account import --datadir . KEYFILE) and the consortium's genesis.json.\n"
        'cd "$(dirname "$0")"\n'
        "GETH=${DPKI_GETH:-geth}\n"
        '[ -d geth/chaindata ] || "$GETH" --datadir . init ../genesis.json\n'
        'exec "$GETH" ' + " ".join(command[1:]) + "\n"
    )
    script.chmod(0o755)
    return "sh start.sh"


def _besu_files(folder: Path, row: dict[str, Any], peers: list[str]) -> str:
    write_json(folder / "static-nodes.json", peers)
    lines = [
        'data-path="data"',
        'genesis-file="../genesis.json"',
        'node-private-key-file="key"',
        f"p2p-port={row['p2p_port']}",
        "discovery-enabled=false",
        'static-nodes-file="static-nodes.json"',
        "rpc-http-enabled=true",
        'rpc-http-host="127.0.0.1"',
        f"rpc-http-port={row['rpc_port']}",
        "rpc-http-api=" + json.dumps(_BESU_APIS),
        'host-allowlist=["localhost","127.0.0.1"]',
    ]
    if row["host"] != "127.0.0.1":
        lines.insert(4, f'p2p-host="{row["host"]}"')
    (folder / "config.toml").write_text("\n".join(lines) + "\n")
    script = folder / "start.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"# {row['organization']}: Hyperledger Besu QBFT validator ({row['signer']}).\n"
        "# The node key file `key` (hex) must be this validator's: its address is the one in\n"
        "# the genesis extraData.\n"
        'cd "$(dirname "$0")"\n'
        'exec "${BESU:-besu}" --config-file=config.toml\n'
    )
    script.chmod(0o755)
    return "sh start.sh"
