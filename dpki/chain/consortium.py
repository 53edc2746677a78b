"""Genesis files and node configurations for a consortium's proof-of-authority network.

Two engines:

- **geth Clique** (go-ethereum v1.13.15, the last release that seals Clique): the signers are
  listed in the genesis ``extraData`` as 32 bytes of vanity, the signer addresses (20 bytes
  each, ascending) and 65 zero bytes for the seal. A signer may seal one of any
  ``N // 2 + 1`` consecutive blocks, so ``N // 2`` signers may be down.
- **Besu QBFT** (what a consortium should run in production: immediate finality, more than
  2/3 of the validators needed): ``extraData`` is the RLP list
  ``[vanity (32 bytes), [validator addresses], vote (empty list), round (0, an empty
  string), committed seals (empty list)]`` exactly as Besu documents it
  (https://besu.hyperledger.org/private-networks/how-to/configure/consensus/qbft).

Both genesis files enable every fork up to London at block 0 and nothing later, so the chain
runs the Paris-target registry (Clique refuses Shanghai; Paris adds no opcode over London).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlp
from eth_keys import keys  # type: ignore[attr-defined]
from eth_utils.address import is_hex_address, to_checksum_address

from dpki.errors import ConfigError

__all__ = [
    "CONFIRMATIONS",
    "DEFAULT_GAS_LIMIT",
    "ENGINES",
    "NodeKey",
    "clique_confirmations",
    "clique_extradata",
    "clique_genesis",
    "decode_clique_extradata",
    "decode_qbft_extradata",
    "default_confirmations",
    "detect_engine",
    "qbft_extradata",
    "qbft_genesis",
    "write_json",
]

ENGINES = ("geth-clique", "besu-qbft")

#: 30 M gas a block: four batches of 100 certificate submissions (~6.8 M each) plus the
#: validators' endorsements (~0.9 M per 100) fit in one block of a 1-second period.
DEFAULT_GAS_LIMIT = 30_000_000

#: every fork up to London at block 0 (the EVM the Paris-target registry needs)
_LONDON_FORKS = (
    "homesteadBlock",
    "eip150Block",
    "eip155Block",
    "eip158Block",
    "byzantiumBlock",
    "constantinopleBlock",
    "petersburgBlock",
    "istanbulBlock",
    "muirGlacierBlock",
    "berlinBlock",
    "londonBlock",
    "arrowGlacierBlock",
    "grayGlacierBlock",
)
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_VANITY = b"\x00" * 32
_SEAL = b"\x00" * 65
#: "Istanbul practical byzantine fault tolerance", the mixHash Besu wants in a BFT genesis
_BFT_MIX_HASH = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"


@dataclass(frozen=True)
class NodeKey:
    """A secp256k1 key: a node's devp2p identity (and, on Besu, its validator address)."""

    secret: bytes

    @classmethod
    def generate(cls) -> NodeKey:
        """Return a fresh random key."""
        while True:
            candidate = secrets.token_bytes(32)
            if 0 < int.from_bytes(candidate, "big") < _SECP256K1_N:
                return cls(candidate)

    @property
    def public_key(self) -> bytes:
        """Return the 64-byte uncompressed public key (no 0x04 prefix)."""
        return bytes(keys.PrivateKey(self.secret).public_key.to_bytes())

    @property
    def address(self) -> str:
        """Return the checksummed address of the key."""
        return str(keys.PrivateKey(self.secret).public_key.to_checksum_address())

    def enode(self, host: str, port: int) -> str:
        """Return the node's ``enode://`` URL at ``host:port``."""
        return f"enode://{self.public_key.hex()}@{host}:{port}"

    def write(self, path: Path) -> Path:
        """Write the key as hex (geth ``--nodekey``, Besu ``key``), readable by its owner only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.secret.hex())
        return path


def _addresses(addresses: Sequence[str]) -> list[bytes]:
    out = []
    for a in addresses:
        if not is_hex_address(a):
            raise ConfigError(f"not an address: {a!r} (wanted 0x and 40 hex digits)")
        out.append(bytes.fromhex(a.removeprefix("0x").lower()))
    if len(set(out)) != len(out):
        raise ConfigError("the same address is listed twice")
    if not out:
        raise ConfigError("a network needs at least one signer")
    return out


def clique_extradata(signers: Sequence[str]) -> bytes:
    """Return Clique genesis extraData: vanity, the signers in ascending order, an empty seal."""
    return _VANITY + b"".join(sorted(_addresses(signers))) + _SEAL


def decode_clique_extradata(extra: bytes) -> list[str]:
    """Return the signer addresses listed in Clique genesis extraData."""
    body = extra[32:-65]
    if len(extra) < 97 or len(body) % 20:
        raise ConfigError(f"not Clique genesis extraData ({len(extra)} bytes)")
    return [to_checksum_address(body[i : i + 20]) for i in range(0, len(body), 20)]


def qbft_extradata(validators: Sequence[str]) -> bytes:
    """Return Besu QBFT genesis extraData: RLP([vanity, validators, vote, round, seals])."""
    return bytes(rlp.encode([_VANITY, _addresses(validators), [], b"", []]))


def decode_qbft_extradata(extra: bytes) -> list[str]:
    """Return the validators in Besu QBFT extraData (checking the other fields are empty)."""
    try:
        items = rlp.decode(extra)
    except rlp.exceptions.DecodingError as exc:
        raise ConfigError(f"QBFT extraData is not RLP: {exc}") from None
    if not isinstance(items, list) or len(items) != 5:
        raise ConfigError("QBFT extraData is a list of 5: vanity, validators, vote, round, seals")
    vanity, validators, _vote, _round, _seals = items
    if len(vanity) != 32 or not all(len(v) == 20 for v in validators):
        raise ConfigError("QBFT extraData: 32-byte vanity and 20-byte validator addresses")
    return [to_checksum_address(v) for v in validators]


def _alloc(funded: Sequence[str], balance: int) -> dict[str, dict[str, str]]:
    return {a.lower().removeprefix("0x"): {"balance": hex(balance)} for a in funded}


def clique_genesis(
    chain_id: int,
    signers: Sequence[str],
    funded: Sequence[str] = (),
    *,
    period: int = 1,
    gas_limit: int = DEFAULT_GAS_LIMIT,
    balance: int = 10**24,
) -> dict[str, Any]:
    """Return a geth Clique genesis: London rules, ``signers`` sealing every ``period`` s."""
    if period < 1:
        raise ConfigError(f"--period must be at least 1 second, got {period}")
    config: dict[str, Any] = {"chainId": chain_id, **dict.fromkeys(_LONDON_FORKS, 0)}
    config["clique"] = {"period": period, "epoch": 30000}
    return {
        "config": config,
        "difficulty": "0x1",
        "gasLimit": hex(gas_limit),
        "extradata": "0x" + clique_extradata(signers).hex(),
        "alloc": _alloc(funded, balance),
    }


def qbft_genesis(
    chain_id: int,
    validators: Sequence[str],
    funded: Sequence[str] = (),
    *,
    period: int = 2,
    gas_limit: int = DEFAULT_GAS_LIMIT,
    balance: int = 10**24,
) -> dict[str, Any]:
    """Return a Besu QBFT genesis with block-header validator selection."""
    if period < 1:
        raise ConfigError(f"--period must be at least 1 second, got {period}")
    config: dict[str, Any] = {"chainId": chain_id, "berlinBlock": 0, "londonBlock": 0}
    config["qbft"] = {
        "blockperiodseconds": period,
        "epochlength": 30000,
        "requesttimeoutseconds": max(4, 2 * period),
    }
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": "0x0",
        "gasLimit": hex(gas_limit),
        "difficulty": "0x1",
        "mixHash": _BFT_MIX_HASH,
        "coinbase": "0x" + "00" * 20,
        "extraData": "0x" + qbft_extradata(validators).hex(),
        "alloc": _alloc(funded, balance),
    }


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


#: blocks a validator or indexer stays behind the head by default, per engine. anvil mines
#: one block per transaction and never forks; QBFT blocks are final once sealed. Clique is
#: worked out from its signers: see :func:`clique_confirmations`.
CONFIRMATIONS = {"anvil": 0, "besu-qbft": 0}
#: an engine we cannot name (or Clique whose signers the node does not tell): assume forks
UNKNOWN_CONFIRMATIONS = 2


def clique_confirmations(signers: int) -> int:
    """Return the confirmations after which no minority of ``signers`` can undo a block.

    A Clique signer may seal only one of any ``signers // 2 + 1`` consecutive blocks (every
    node checks it on import), so k signers acting apart from the rest, a node cut off or
    members colluding, seal at most k blocks in a row before their fork stalls: a minority
    (k <= signers // 2) can replace at most ``signers // 2`` blocks. A block with that many
    on top of it is beyond its reach (3 signers: 1; 4 or 5: 2; 7: 3). Deeper reorganizations
    need a majority of signers, which decides the chain anyway; they, and reorganizations
    in general, are handled by the reorganization checks, not by waiting.
    """
    return max(1, signers // 2)


def _ask(rpc_url: str, method: str, *params: Any) -> Any:
    """Return a JSON-RPC call's result, None when the node does not answer it."""
    import requests

    try:
        body = requests.post(
            rpc_url,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
            timeout=5,
        ).json()
    except (requests.RequestException, ValueError):
        return None
    return body.get("result") if isinstance(body, dict) else None


def detect_engine(rpc_url: str) -> str:
    """Name the engine behind ``rpc_url``: anvil, geth-clique, besu-qbft, or the client name."""

    def ask(method: str, *params: Any) -> Any:
        return _ask(rpc_url, method, *params)

    client = str(ask("web3_clientVersion") or "").lower()
    if client.startswith("anvil"):
        return "anvil"
    if client.startswith("geth") and ask("clique_getSigners", "latest") is not None:
        return "geth-clique"
    if client.startswith("besu") and ask("qbft_getValidatorsByBlockNumber", "latest") is not None:
        return "besu-qbft"
    return client.split("/")[0] or "unknown"


def default_confirmations(engine: str | None, rpc_url: str) -> int:
    """Return the default ``--confirmations`` for ``engine`` (asked from the node if None)."""
    name = engine or detect_engine(rpc_url)
    if name == "geth-clique":
        signers = _ask(rpc_url, "clique_getSigners", "latest")
        if isinstance(signers, list) and signers:
            return clique_confirmations(len(signers))
    return CONFIRMATIONS.get(name, UNKNOWN_CONFIRMATIONS)
