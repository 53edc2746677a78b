"""Python client for the ``CertificateRegistry`` contract (web3.py).

Reads are plain ``eth_call``s with no web3 middleware (a relying party's hot path); writes are
signed locally from an ``eth_account`` key and sent raw, with a local nonce counter so that
many transactions can be in flight. A revert with one of the registry's custom errors is
raised as the matching subclass of :class:`dpki.errors.ContractError`.
"""

from __future__ import annotations

import enum
import functools
import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_abi_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3

from dpki.errors import (
    CONTRACT_ERRORS,
    ChainError,
    ConfigError,
    ContractError,
    RpcUnavailable,
)

__all__ = [
    "ARTIFACT_PATH",
    "PROPOSAL_LIFETIME",
    "ROLE_SUBMITTER",
    "ROLE_VALIDATOR",
    "CertificateStatus",
    "Event",
    "Member",
    "MemberSpec",
    "PendingTx",
    "Proposal",
    "ProposalKind",
    "Receipt",
    "Registry",
    "Status",
    "Submission",
    "as_cert_id",
    "connect",
    "decode_revert",
    "load_artifact",
]

ARTIFACT_PATH = Path(__file__).parent / "artifacts" / "CertificateRegistry.json"
ROLE_VALIDATOR = 1
ROLE_SUBMITTER = 2
NO_EXPIRY = 253402300799  # 9999-12-31T23:59:59Z, IEEE 802.1AR "no well-defined expiration"


class Status(enum.IntEnum):
    """Certificate status as the contract stores it."""

    NONE = 0
    PENDING = 1
    ACTIVE = 2
    SUSPENDED = 3
    REVOKED = 4
    SUPERSEDED = 5
    REJECTED = 6

    @property
    def label(self) -> str:
        """Return the lower-case name used in output (``unknown`` for NONE)."""
        return "unknown" if self is Status.NONE else self.name.lower()


#: seconds a proposal stays open (the contract's PROPOSAL_LIFETIME)
PROPOSAL_LIFETIME = 7 * 24 * 3600


class ProposalKind(enum.IntEnum):
    """What a governance proposal does."""

    ADD_MEMBER = 0
    REMOVE_MEMBER = 1
    SET_ROLES = 2
    SET_THRESHOLD = 3
    REVOKE = 4
    SUSPEND = 5
    RESUME = 6
    AUTHORIZE_ISSUER = 7
    DEAUTHORIZE_ISSUER = 8


@dataclass(frozen=True)
class Submission:
    """A certificate as submitted: the DER and the fields validators check against it."""

    der: bytes
    not_before: int
    not_after: int
    key_hash: bytes
    org_hash: bytes

    @property
    def cert_id(self) -> bytes:
        """Return sha256(DER), the id the contract will compute."""
        import hashlib

        return hashlib.sha256(self.der).digest()

    def as_tuple(self) -> tuple[bytes, int, int, bytes, bytes]:
        """Return the ABI tuple."""
        return (self.der, self.not_before, self.not_after, self.key_hash, self.org_hash)


@dataclass(frozen=True)
class CertificateStatus:
    """The ledger record of one certificate (``statusOf``)."""

    cert_id: bytes
    status: Status
    submitter: str | None
    not_before: int
    not_after: int
    updated_at: int
    endorsements: int
    rejections: int
    reason: int
    replaces: bytes | None

    def valid_at(self, when: int) -> bool:
        """Return True when Active and ``when`` (unix seconds) is inside the window."""
        return self.status is Status.ACTIVE and self.not_before <= when <= self.not_after


@dataclass(frozen=True)
class Member:
    """A current consortium member."""

    address: str
    organization: str
    roles: int
    index: int

    @property
    def is_validator(self) -> bool:
        """Return True when the member holds the VALIDATOR role."""
        return bool(self.roles & ROLE_VALIDATOR)

    @property
    def is_submitter(self) -> bool:
        """Return True when the member holds the SUBMITTER role."""
        return bool(self.roles & ROLE_SUBMITTER)


@dataclass(frozen=True)
class MemberSpec:
    """A genesis member for deployment."""

    address: str
    organization: str
    roles: int = ROLE_VALIDATOR | ROLE_SUBMITTER


@dataclass(frozen=True)
class Proposal:
    """A governance proposal."""

    proposal_id: int
    kind: ProposalKind
    proposer: str
    executed: bool
    cancelled: bool
    approvals: int
    account: str
    roles: int
    threshold: int
    cert_id: bytes
    reason: int
    organization: str
    deadline: int = 0


@dataclass(frozen=True)
class Event:
    """A decoded registry event."""

    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int


@dataclass(frozen=True)
class Receipt:
    """A mined transaction."""

    tx_hash: bytes
    block_number: int
    gas_used: int
    events: list[Event] = field(default_factory=list)

    def event(self, name: str) -> Event:
        """Return the first event called ``name``."""
        for ev in self.events:
            if ev.name == name:
                return ev
        raise KeyError(f"no {name} event in transaction 0x{self.tx_hash.hex()}")


def load_artifact(path: Path = ARTIFACT_PATH) -> dict[str, Any]:
    """Load the compiled contract artifact shipped with the package."""
    try:
        artifact: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no contract artifact at {path}: run `dpki build`") from None
    return artifact


def as_cert_id(value: str | bytes) -> bytes:
    """Return a 32-byte certificate id from bytes or a 64-digit hex string (0x optional)."""
    if isinstance(value, bytes | bytearray):
        if len(value) != 32:
            raise ConfigError(f"a certificate id is 32 bytes, got {len(value)}")
        return bytes(value)
    text = value.strip().lower().removeprefix("0x")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ConfigError(f"a certificate id is 64 hex digits (sha256 of the DER), got {value!r}")
    return bytes.fromhex(text)


def connect(rpc_url: str, timeout: float = 30.0) -> Web3:
    """Return a Web3 on ``rpc_url`` with no middleware (we sign locally, validate ourselves)."""
    return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}), middleware=[])


class _Abi:
    """Selectors, error and event decoders derived from the artifact's ABI."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.abi = abi
        self.errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        self.events: dict[bytes, dict[str, Any]] = {}
        self.functions: dict[str, dict[str, Any]] = {}
        for item in abi:
            if item["type"] == "error":
                types = [_abi_type(i) for i in item["inputs"]]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                self.errors[selector] = (item["name"], [i["name"] for i in item["inputs"]], types)
            elif item["type"] == "event":
                types = [_abi_type(i) for i in item["inputs"]]
                self.events[keccak(text=f"{item['name']}({','.join(types)})")] = item
            elif item["type"] == "function":
                self.functions[item["name"]] = item

    def selector(self, name: str) -> bytes:
        return bytes(function_abi_to_4byte_selector(self.functions[name]))  # type: ignore[arg-type]

    def encode_call(self, name: str, args: Sequence[Any]) -> bytes:
        fn = self.functions[name]
        types = [_abi_type(i) for i in fn["inputs"]]
        return self.selector(name) + abi_encode(types, list(args))

    def decode_output(self, name: str, data: bytes) -> Any:
        fn = self.functions[name]
        types = [_abi_type(o) for o in fn["outputs"]]
        values = abi_decode(types, data)
        return values[0] if len(values) == 1 else values

    def decode_event(self, log: dict[str, Any]) -> Event | None:
        topics = [bytes(t) for t in log["topics"]]
        if not topics or topics[0] not in self.events:
            return None
        item = self.events[topics[0]]
        data = bytes(log["data"])
        args = _fast_event_args(item, topics, data)
        if args is None:  # a layout the fast path does not cover
            args = _event_args(item, topics, data)
        return Event(
            name=item["name"],
            args=args,
            block_number=int(log["blockNumber"]),
            block_hash=bytes(log["blockHash"]),
            tx_hash=bytes(log["transactionHash"]),
            log_index=int(log["logIndex"]),
        )


@functools.lru_cache(maxsize=4096)
def _checksum(address: str) -> str:
    """Checksum an address (members are few; keccak per event would dominate indexing)."""
    return to_checksum_address(address)


def _event_args(item: dict[str, Any], topics: list[bytes], data: bytes) -> dict[str, Any]:
    """Decode an event's arguments with the general ABI decoder."""
    indexed = [i for i in item["inputs"] if i["indexed"]]
    plain = [i for i in item["inputs"] if not i["indexed"]]
    args: dict[str, Any] = {}
    for inp, topic in zip(indexed, topics[1:], strict=True):
        args[inp["name"]] = abi_decode([_abi_type(inp)], topic)[0]
    for inp, value in zip(plain, abi_decode([_abi_type(i) for i in plain], data), strict=True):
        args[inp["name"]] = value
    for inp in item["inputs"]:  # checksummed, as in decode_revert and the views
        if inp["type"] == "address":
            args[inp["name"]] = _checksum(args[inp["name"]])
    return args


def _word(kind: str, word: bytes) -> Any:
    """Decode one 32-byte ABI word of a static type, or raise ValueError."""
    if kind == "bytes32":
        return word
    if kind == "address":
        if any(word[:12]):
            raise ValueError("dirty address padding")
        return _checksum("0x" + word[12:].hex())
    if kind == "bool":
        value = int.from_bytes(word, "big")
        if value > 1:
            raise ValueError("bad bool")
        return value == 1
    if kind.startswith("uint"):
        value = int.from_bytes(word, "big")
        if value >> int(kind[4:] or 256):
            raise ValueError("uint out of range")
        return value
    raise ValueError(kind)


def _fast_event_args(
    item: dict[str, Any], topics: list[bytes], data: bytes
) -> dict[str, Any] | None:
    """Decode an event's arguments word by word (static types, top-level bytes and string);
    None when the layout needs the general decoder or the data is not what the ABI says.

    eth_abi takes ~100 us an event; indexing thousands of events a second needs less."""
    args: dict[str, Any] = {}
    position = 0
    topic = 1
    try:
        for inp in item["inputs"]:
            kind = inp["type"]
            if inp["indexed"]:
                args[inp["name"]] = _word(kind, topics[topic])
                topic += 1
                continue
            word = data[position : position + 32]
            position += 32
            if len(word) != 32:
                return None
            if kind in ("bytes", "string"):
                offset = int.from_bytes(word, "big")
                if offset + 32 > len(data):
                    return None
                length = int.from_bytes(data[offset : offset + 32], "big")
                raw = data[offset + 32 : offset + 32 + length]
                if len(raw) != length:
                    return None
                args[inp["name"]] = raw if kind == "bytes" else raw.decode("utf-8")
            else:
                args[inp["name"]] = _word(kind, word)
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    if topic != len(topics):
        return None
    return args


def _abi_type(item: dict[str, Any]) -> str:
    """Return the canonical ABI type string, expanding tuples."""
    t: str = item["type"]
    if t.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){t[5:]}"
    return t


def decode_revert(data: bytes | str | None, abi: _Abi | None = None) -> ChainError:
    """Turn revert data into the typed exception for the registry's custom error."""
    raw = _hex_bytes(data)
    decoder = abi or _default_abi()
    if raw is None or len(raw) < 4:
        return ChainError("the transaction reverted without a reason")
    known = decoder.errors.get(raw[:4])
    if known is None:
        return ChainError(f"the transaction reverted with unknown data 0x{raw.hex()}")
    name, names, types = known
    values = abi_decode(types, raw[4:])
    args = dict(zip(names, values, strict=True))
    for key, value in args.items():
        if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
            args[key] = to_checksum_address(value)
    if name == "InvalidStatus":
        args["status"] = Status(args["status"])
    return CONTRACT_ERRORS.get(name, ContractError)(args)


def _hex_bytes(data: bytes | str | None) -> bytes | None:
    if data is None:
        return None
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    try:
        return bytes.fromhex(data.removeprefix("0x"))
    except ValueError:
        return None


_ABI_CACHE: list[_Abi] = []


def _default_abi() -> _Abi:
    if not _ABI_CACHE:
        _ABI_CACHE.append(_Abi(load_artifact()["abi"]))
    return _ABI_CACHE[0]


def _revert_data(exc: BaseException) -> bytes | str | None:
    """Dig the revert data out of whatever web3 or the node raised."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str | bytes):
        return data
    message = getattr(exc, "message", None) or (exc.args[0] if exc.args else None)
    if isinstance(message, dict):
        inner = message.get("data")
        if isinstance(inner, dict):
            inner = inner.get("data")
        if isinstance(inner, str):
            return inner
    return None


class PendingTx:
    """A transaction that was sent; ``wait()`` returns its receipt or raises its revert."""

    def __init__(self, registry: Registry, tx_hash: bytes, call: dict[str, Any]) -> None:
        self.registry = registry
        self.tx_hash = tx_hash
        self._call = call

    def wait(self, timeout: float = 120.0, poll: float = 0.05) -> Receipt:
        """Block until mined; raise the decoded custom error if it reverted."""
        return self.registry.wait(self, timeout=timeout, poll=poll)


class _NonceCounter:
    """Local nonce per sender so transactions can be pipelined."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, w3: Web3, address: str) -> int:
        with self._lock:
            if address not in self._next:
                self._next[address] = w3.eth.get_transaction_count(address, "pending")  # type: ignore[arg-type]
            nonce = self._next[address]
            self._next[address] = nonce + 1
            return nonce

    def forget(self, address: str) -> None:
        with self._lock:
            self._next.pop(address, None)


class Registry:
    """A deployed ``CertificateRegistry`` at ``address`` on the chain behind ``w3``."""

    def __init__(self, w3: Web3, address: str, artifact: dict[str, Any] | None = None) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.artifact = artifact or load_artifact()
        self.abi = _Abi(self.artifact["abi"]) if artifact else _default_abi()
        self._nonces = _NonceCounter()

    # ------------------------------------------------------------------ construction

    @classmethod
    def at(cls, rpc_url: str, address: str) -> Registry:
        """Return a client for the registry at ``address`` behind ``rpc_url``."""
        return cls(connect(rpc_url), address)

    @classmethod
    def deploy(
        cls,
        w3: Web3,
        deployer: LocalAccount,
        members: Sequence[MemberSpec],
        threshold: int,
    ) -> tuple[Registry, Receipt]:
        """Deploy a registry with genesis ``members`` and ``threshold``; return it, receipt."""
        artifact = load_artifact()
        ctor = next(i for i in artifact["abi"] if i["type"] == "constructor")
        types = [_abi_type(i) for i in ctor["inputs"]]
        args = abi_encode(
            types,
            [
                [to_checksum_address(m.address) for m in members],
                [m.organization for m in members],
                [m.roles for m in members],
                threshold,
            ],
        )
        data = bytes.fromhex(artifact["bytecode"].removeprefix("0x")) + args
        probe = cls(w3, "0x" + "00" * 20, artifact)
        tx = probe._build_tx(deployer.address, None, data)
        raw = deployer.sign_transaction(tx).raw_transaction
        tx_hash = probe._send_raw(raw)
        receipt = w3.eth.wait_for_transaction_receipt(HexBytes(tx_hash), timeout=120)
        if receipt["status"] != 1:
            try:
                w3.eth.call({"from": deployer.address, "data": data})
            except Exception as exc:
                raise decode_revert(_revert_data(exc), probe.abi) from None
            raise ChainError("deployment reverted")
        registry = cls(w3, str(receipt["contractAddress"]), artifact)
        return registry, registry._receipt(receipt)

    # ------------------------------------------------------------------ low-level calls

    def call(self, name: str, *args: Any, block: int | str = "latest") -> Any:
        """Call view function ``name`` and return its decoded output."""
        data = self.abi.encode_call(name, args)
        return self.abi.decode_output(name, self._eth_call(data, block))

    def _eth_call(self, data: bytes, block: int | str = "latest") -> bytes:
        params = [{"to": self.address, "data": "0x" + data.hex()}, _block_param(block)]
        response = self._request("eth_call", params)
        for _ in range(_TRANSIENT_RETRIES):
            if not _transient(response):
                break
            time.sleep(0.02)
            response = self._request("eth_call", params)
        return self._call_result(response)

    def _call_result(self, response: dict[str, Any]) -> bytes:
        """Return an eth_call's bytes, or raise its decoded revert or the node's error."""
        if "error" in response:
            revert = _revert_data(_RpcFailure(response["error"]))
            if revert is None:
                message = response["error"].get("message", response["error"])
                raise ChainError(f"eth_call failed at {self.rpc_url}: {message}")
            raise decode_revert(revert, self.abi)
        return bytes.fromhex(str(response["result"]).removeprefix("0x"))

    def _request(self, method: str, params: list[Any]) -> dict[str, Any]:
        try:
            response: dict[str, Any] = dict(self.w3.provider.make_request(method, params))  # type: ignore[arg-type]
        except (OSError, ConnectionError) as exc:
            raise RpcUnavailable(f"the ledger at {self.rpc_url} did not answer: {exc}") from None
        except Exception as exc:
            if _is_connection_error(exc):
                raise RpcUnavailable(
                    f"the ledger at {self.rpc_url} did not answer: {exc}"
                ) from None
            raise
        return response

    def call_many(
        self, name: str, arg_lists: Sequence[Sequence[Any]], chunk: int = 500
    ) -> list[Any]:
        """Call view ``name`` once per argument list, in JSON-RPC batches (one round trip each).

        A node that refuses batches (or a smaller batch limit) is handled by falling back to
        single calls.
        """
        results: list[Any] = []
        for start in range(0, len(arg_lists), chunk):
            part = arg_lists[start : start + chunk]
            payload = [
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "eth_call",
                    "params": [
                        {"to": self.address, "data": "0x" + self.abi.encode_call(name, a).hex()},
                        "latest",
                    ],
                }
                for i, a in enumerate(part)
            ]
            answers = self._post_batch(payload)
            if answers is not None and any(_transient(a) for a in answers):
                time.sleep(0.02)
                answers = self._post_batch(payload)
            if answers is None or any(_transient(a) for a in answers):
                results.extend(self.call(name, *a) for a in part)
                continue
            for answer in sorted(answers, key=lambda r: int(r["id"])):
                results.append(self.abi.decode_output(name, self._call_result(answer)))
        return results

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Send JSON-RPC ``(method, params)`` calls in one round trip; return their results in
        order (one by one when the node refuses batches). An error answer raises ChainError."""
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        answers = self._post_batch(payload) if payload else []
        if answers is None:
            answers = [dict(self._request(m, p), id=i) for i, (m, p) in enumerate(calls)]
        by_id = {int(a["id"]): a for a in answers}
        results = []
        for i, (method, _params) in enumerate(calls):
            answer = by_id[i]
            if "error" in answer:
                raise ChainError(f"{method} failed: {answer['error'].get('message')}")
            results.append(answer.get("result"))
        return results

    def _post_batch(self, payload: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        import requests

        try:
            # connect within 5 s; a half-open connection gives up reading after 60 s
            response = self._session.post(self.rpc_url, json=payload, timeout=(5, 60))
        except requests.RequestException as exc:
            raise RpcUnavailable(f"the ledger at {self.rpc_url} did not answer: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            return None
        if not isinstance(body, list) or len(body) != len(payload):
            return None
        return body

    @cached_property
    def _session(self) -> Any:
        import requests

        return requests.Session()

    def statuses(self, cert_ids: Sequence[str | bytes]) -> list[CertificateStatus]:
        """Return ``status_of`` for many certificates in batched round trips."""
        ids = [as_cert_id(c) for c in cert_ids]
        raw = self.call_many("statusOf", [(c,) for c in ids])
        return [self._status(c, s) for c, s in zip(ids, raw, strict=True)]

    def have_voted(self, cert_ids: Sequence[bytes], validator: str) -> list[bool]:
        """Return ``has_voted`` for many certificates in batched round trips."""
        who = to_checksum_address(validator)
        return [bool(v) for v in self.call_many("hasVoted", [(c, who) for c in cert_ids])]

    @property
    def rpc_url(self) -> str:
        """Return the endpoint URL (for messages)."""
        return str(getattr(self.w3.provider, "endpoint_uri", "?"))

    def transact(self, account: LocalAccount, name: str, *args: Any) -> PendingTx:
        """Sign and send ``name(*args)`` from ``account``; return without waiting.

        The call is estimated first, so a call the registry would refuse raises its custom
        error here and never reaches the chain.
        """
        data = self.abi.encode_call(name, args)
        tx = self._build_tx(account.address, self.address, data)
        raw = account.sign_transaction(tx).raw_transaction
        try:
            tx_hash = self._send_raw(raw)
        except ChainError:
            self._nonces.forget(account.address)
            raise
        return PendingTx(self, tx_hash, {"from": account.address, "data": data})

    def send(self, account: LocalAccount, name: str, *args: Any) -> Receipt:
        """Sign, send and wait for ``name(*args)``."""
        return self.transact(account, name, *args).wait()

    def _build_tx(self, sender: str, to: str | None, data: bytes) -> dict[str, Any]:
        call: dict[str, Any] = {"from": sender, "data": "0x" + data.hex()}
        if to is not None:
            call["to"] = to
        response = self._request("eth_estimateGas", [call])
        if "error" in response:
            raise decode_revert(_revert_data(_RpcFailure(response["error"])), self.abi)
        gas = int(response["result"], 16)
        tx: dict[str, Any] = {
            "from": sender,
            "data": data,
            "gas": gas + gas // 5 + 10_000,
            "nonce": self._nonces.take(self.w3, sender),
            "chainId": self.chain_id,
            "value": 0,
        }
        if to is not None:
            tx["to"] = to
        tx.update(self._fees())
        return tx

    @cached_property
    def chain_id(self) -> int:
        """Return the chain id (asked once)."""
        response = self._request("eth_chainId", [])
        return int(response["result"], 16)

    def _fees(self) -> dict[str, int]:
        block = self._request("eth_getBlockByNumber", ["latest", False])["result"]
        base = block.get("baseFeePerGas")
        if base is None:  # a pre-London or free-gas network
            price = int(self._request("eth_gasPrice", [])["result"], 16)
            return {"gasPrice": price}
        tip_response = self._request("eth_maxPriorityFeePerGas", [])
        tip = int(tip_response["result"], 16) if "result" in tip_response else 0
        return {"maxFeePerGas": 2 * int(base, 16) + tip, "maxPriorityFeePerGas": tip}

    def _send_raw(self, raw: bytes) -> bytes:
        response = self._request("eth_sendRawTransaction", ["0x" + bytes(raw).hex()])
        if "error" in response:
            error = response["error"]
            data = _revert_data(_RpcFailure(error))
            if data:
                raise decode_revert(data, self.abi)
            raise ChainError(f"the node refused the transaction: {error.get('message', error)}")
        return bytes.fromhex(str(response["result"]).removeprefix("0x"))

    def wait(self, pending: PendingTx, timeout: float = 120.0, poll: float = 0.05) -> Receipt:
        """Wait for ``pending`` to be mined; raise its decoded revert when it failed."""
        deadline = time.monotonic() + timeout
        while True:
            response = self._request("eth_getTransactionReceipt", ["0x" + pending.tx_hash.hex()])
            raw = response.get("result")
            if raw:
                break
            if time.monotonic() > deadline:
                raise ChainError(
                    f"transaction 0x{pending.tx_hash.hex()} not mined after {timeout:.0f} s"
                )
            time.sleep(poll)
        if int(raw["status"], 16) != 1:
            block = int(raw["blockNumber"], 16)
            call = dict(pending._call, to=self.address, data="0x" + pending._call["data"].hex())
            replay = self._request("eth_call", [call, hex(block - 1)])
            if "error" in replay:
                raise decode_revert(_revert_data(_RpcFailure(replay["error"])), self.abi)
            raise ChainError(f"transaction 0x{pending.tx_hash.hex()} reverted")
        return self._receipt(raw)

    def _receipt(self, raw: Any) -> Receipt:
        def num(v: Any) -> int:
            return int(v, 16) if isinstance(v, str) else int(v)

        events = []
        for log in raw["logs"]:
            normalised = {
                "topics": [
                    _hex_bytes(t) if isinstance(t, str) else bytes(t) for t in log["topics"]
                ],
                "data": _hex_bytes(log["data"]) if isinstance(log["data"], str) else log["data"],
                "blockNumber": num(log["blockNumber"]),
                "blockHash": _hex_bytes(log["blockHash"])
                if isinstance(log["blockHash"], str)
                else log["blockHash"],
                "transactionHash": _hex_bytes(log["transactionHash"])
                if isinstance(log["transactionHash"], str)
                else log["transactionHash"],
                "logIndex": num(log["logIndex"]),
            }
            event = self.abi.decode_event(normalised)
            if event is not None:
                events.append(event)
        tx_hash = raw["transactionHash"]
        return Receipt(
            tx_hash=_hex_bytes(tx_hash) if isinstance(tx_hash, str) else bytes(tx_hash),  # type: ignore[arg-type]
            block_number=num(raw["blockNumber"]),
            gas_used=num(raw["gasUsed"]),
            events=events,
        )

    # ------------------------------------------------------------------ events

    def events(
        self,
        from_block: int,
        to_block: int | str = "latest",
        names: Iterable[str] | None = None,
        cert_id: bytes | None = None,
    ) -> list[Event]:
        """Return decoded registry events in ``[from_block, to_block]`` (one eth_getLogs);
        ``cert_id`` keeps those whose first indexed argument is that certificate."""
        topics: list[Any] = []
        if names is not None:
            wanted = [
                "0x" + sig.hex()
                for sig, item in self.abi.events.items()
                if item["name"] in set(names)
            ]
            topics = [wanted]
        if cert_id is not None:
            topics = [topics[0] if topics else None, "0x" + cert_id.hex()]
        params: dict[str, Any] = {
            "address": self.address,
            "fromBlock": _block_param(from_block),
            "toBlock": _block_param(to_block),
        }
        if topics:
            params["topics"] = topics
        response = self._request("eth_getLogs", [params])
        if "error" in response:
            raise ChainError(f"eth_getLogs failed: {response['error'].get('message')}")
        out = []
        for log in response["result"]:
            event = self.abi.decode_event(
                {
                    "topics": [bytes.fromhex(t[2:]) for t in log["topics"]],
                    "data": bytes.fromhex(log["data"][2:]),
                    "blockNumber": int(log["blockNumber"], 16),
                    "blockHash": bytes.fromhex(log["blockHash"][2:]),
                    "transactionHash": bytes.fromhex(log["transactionHash"][2:]),
                    "logIndex": int(log["logIndex"], 16),
                }
            )
            if event is not None:
                out.append(event)
        return out

    def block_number(self) -> int:
        """Return the chain head's number."""
        return int(self._request("eth_blockNumber", [])["result"], 16)

    def block_timestamp(self, block: int | str = "latest") -> int:
        """Return a block's timestamp (unix seconds)."""
        result = self._request("eth_getBlockByNumber", [_block_param(block), False])["result"]
        return int(result["timestamp"], 16)

    # ------------------------------------------------------------------ views

    @cached_property
    def _is_valid_selector(self) -> bytes:
        return self.abi.selector("isValid")

    def is_valid(self, cert_id: str | bytes) -> bool:
        """Return True when the ledger says the certificate is Active and in its window."""
        data = self._is_valid_selector + as_cert_id(cert_id)
        return self._eth_call(data)[-1] == 1

    def status_of(self, cert_id: str | bytes, block: int | str = "latest") -> CertificateStatus:
        """Return the full record of a certificate (status NONE when unknown)."""
        cid = as_cert_id(cert_id)
        return self._status(cid, self.call("statusOf", cid, block=block))

    def status_at_head(self, cert_id: str | bytes) -> tuple[CertificateStatus, int]:
        """Return the record of a certificate and the head block's time in one round trip."""
        cid = as_cert_id(cert_id)
        data = "0x" + self.abi.encode_call("statusOf", [cid]).hex()
        try:
            head, raw = self.batch(
                [
                    ("eth_getBlockByNumber", ["latest", False]),
                    ("eth_call", [{"to": self.address, "data": data}, "latest"]),
                ]
            )
        except ChainError:  # a transient node error: the single calls retry it
            return self.status_of(cid), self.block_timestamp()
        record = self.abi.decode_output("statusOf", bytes.fromhex(str(raw).removeprefix("0x")))
        return self._status(cid, record), int(head["timestamp"], 16)

    @staticmethod
    def _status(cid: bytes, s: Any) -> CertificateStatus:
        status = Status(s[0])
        zero = b"\x00" * 32
        return CertificateStatus(
            cert_id=cid,
            status=status,
            submitter=to_checksum_address(s[1]) if status is not Status.NONE else None,
            not_before=s[2],
            not_after=s[3],
            updated_at=s[4],
            endorsements=s[5],
            rejections=s[6],
            reason=s[7],
            replaces=None if s[8] == zero else bytes(s[8]),
        )

    def endorsers_of(self, cert_id: str | bytes) -> list[str]:
        """Return the validators that endorsed a certificate."""
        return [to_checksum_address(a) for a in self.call("endorsersOf", as_cert_id(cert_id))]

    def rejecters_of(self, cert_id: str | bytes) -> list[str]:
        """Return the validators that rejected a certificate."""
        return [to_checksum_address(a) for a in self.call("rejectersOf", as_cert_id(cert_id))]

    def has_voted(self, cert_id: str | bytes, validator: str) -> bool:
        """Return True when ``validator`` endorsed or rejected the certificate."""
        return bool(self.call("hasVoted", as_cert_id(cert_id), to_checksum_address(validator)))

    def latest_for_key(self, key_hash: bytes) -> bytes | None:
        """Return the latest certificate submitted for an SPKI hash, or None."""
        value = bytes(self.call("latestForKey", key_hash))
        return None if value == b"\x00" * 32 else value

    def submitted_der(self, cert_id: bytes, from_block: int) -> bytes | None:
        """Return the DER of a certificate from its latest submission event, or None."""
        found = self.events(from_block, "latest", ["CertificateSubmitted"], cert_id=cert_id)
        return bytes(found[-1].args["der"]) if found else None

    def compromised_key(self, key_hash: bytes) -> bytes | None:
        """Return the certificate that put ``key_hash`` on the compromised list, or None."""
        value = bytes(self.call("compromisedKey", key_hash))
        return None if value == bytes(32) else value

    def compromised_keys(self, key_hashes: Sequence[bytes]) -> list[bool]:
        """Return, per key hash, whether it is on the compromised list (one batch)."""
        found = self.call_many("compromisedKey", [(k,) for k in key_hashes])
        return [bytes(v) != bytes(32) for v in found]

    def is_issuer_authorized(self, ca_cert_id: str | bytes, org_hash: bytes) -> bool:
        """Return whether ``ca_cert_id`` may vouch for the organization ``org_hash``."""
        return bool(self.call("isIssuerAuthorized", as_cert_id(ca_cert_id), org_hash))

    def held_by_quorum(self, cert_id: str | bytes) -> bool:
        """Return whether a quorum holds the certificate suspended."""
        return bool(self.call("heldByQuorum", as_cert_id(cert_id)))

    def replaced_by(self, cert_id: str | bytes) -> bytes | None:
        """Return the certificate that renewed ``cert_id``, or None."""
        value = bytes(self.call("replacedBy", as_cert_id(cert_id)))
        return None if value == b"\x00" * 32 else value

    def members(self) -> list[Member]:
        """Return the current members."""
        return [Member(to_checksum_address(m[0]), m[1], m[2], m[3]) for m in self.call("members")]

    def member_of(self, address: str) -> Member | None:
        """Return the member at ``address``, or None."""
        m = self.call("memberOf", to_checksum_address(address))
        return None if m[2] == 0 else Member(to_checksum_address(m[0]), m[1], m[2], m[3])

    def member_by_organization(self, organization: str) -> str | None:
        """Return the address of the member named ``organization``, or None."""
        address = self.call("memberByOrganization", organization)
        return None if int(address, 16) == 0 else to_checksum_address(address)

    def threshold(self) -> int:
        """Return the endorsement threshold (also the governance quorum)."""
        return int(self.call("threshold"))

    def validator_count(self) -> int:
        """Return the number of current validators."""
        return int(self.call("validatorCount"))

    def proposal_count(self) -> int:
        """Return how many proposals were ever made."""
        return int(self.call("proposalCount"))

    def proposal(self, proposal_id: int) -> Proposal:
        """Return one proposal."""
        p = self.call("proposal", proposal_id)
        return Proposal(
            proposal_id=proposal_id,
            kind=ProposalKind(p[0]),
            proposer=to_checksum_address(p[1]),
            executed=p[2],
            cancelled=p[3],
            approvals=p[4],
            account=to_checksum_address(p[5]),
            roles=p[6],
            threshold=p[7],
            cert_id=bytes(p[8]),
            reason=p[9],
            organization=p[10],
            deadline=p[11],
        )

    def has_approved(self, proposal_id: int, validator: str) -> bool:
        """Return True when ``validator`` approved ``proposal_id``."""
        return bool(self.call("hasApproved", proposal_id, to_checksum_address(validator)))

    def version(self) -> str:
        """Return the contract's semantic version."""
        return str(self.call("version"))

    # ------------------------------------------------------------------ transactions

    def submit(self, account: LocalAccount, submission: Submission) -> Receipt:
        """Submit one certificate."""
        return self.send(account, "submit", submission.as_tuple())

    def submit_batch(self, account: LocalAccount, submissions: Sequence[Submission]) -> Receipt:
        """Submit many certificates in one transaction."""
        return self.send(account, "submitBatch", [s.as_tuple() for s in submissions])

    def renew(self, account: LocalAccount, old: str | bytes, submission: Submission) -> Receipt:
        """Submit ``submission`` as the renewal of ``old``."""
        return self.send(account, "renew", as_cert_id(old), submission.as_tuple())

    def endorse(self, account: LocalAccount, cert_id: str | bytes) -> Receipt:
        """Endorse a pending certificate."""
        return self.send(account, "endorse", as_cert_id(cert_id))

    def endorse_batch(self, account: LocalAccount, cert_ids: Sequence[str | bytes]) -> Receipt:
        """Endorse many pending certificates."""
        return self.send(account, "endorseBatch", [as_cert_id(c) for c in cert_ids])

    def reject(self, account: LocalAccount, cert_id: str | bytes, reason_code: int) -> Receipt:
        """Reject a pending certificate with a policy reason code."""
        return self.send(account, "reject", as_cert_id(cert_id), reason_code)

    def reject_batch(
        self, account: LocalAccount, cert_ids: Sequence[str | bytes], reason_codes: Sequence[int]
    ) -> Receipt:
        """Reject many pending certificates."""
        return self.send(
            account, "rejectBatch", [as_cert_id(c) for c in cert_ids], list(reason_codes)
        )

    def revoke(self, account: LocalAccount, cert_id: str | bytes, reason: int) -> Receipt:
        """Revoke a certificate the account's organization submitted."""
        return self.send(account, "revoke", as_cert_id(cert_id), reason)

    def suspend(self, account: LocalAccount, cert_id: str | bytes) -> Receipt:
        """Suspend an active certificate the account's organization submitted."""
        return self.send(account, "suspend", as_cert_id(cert_id))

    def resume(self, account: LocalAccount, cert_id: str | bytes) -> Receipt:
        """Resume a suspended certificate the account's organization submitted."""
        return self.send(account, "resume", as_cert_id(cert_id))

    def withdraw(self, account: LocalAccount, cert_id: str | bytes) -> Receipt:
        """Withdraw one's own pending certificate (its id can be registered again)."""
        return self.send(account, "withdraw", as_cert_id(cert_id))

    def settle(self, account: LocalAccount, cert_id: str | bytes) -> Receipt:
        """Decide a pending certificate from the current validators' votes."""
        return self.send(account, "settle", as_cert_id(cert_id))

    def report_key_compromise(self, account: LocalAccount, der: bytes) -> Receipt:
        """List the key of a certificate revoked for keyCompromise as compromised."""
        return self.send(account, "reportKeyCompromise", der)

    def authorize_issuer(self, account: LocalAccount, ca_cert_id: str | bytes) -> Receipt:
        """Let another member's CA vouch for certificates naming the account's organization."""
        return self.send(account, "authorizeIssuer", as_cert_id(ca_cert_id))

    def deauthorize_issuer(self, account: LocalAccount, ca_cert_id: str | bytes) -> Receipt:
        """Withdraw the account's authorisation of a CA."""
        return self.send(account, "deauthorizeIssuer", as_cert_id(ca_cert_id))

    def rotate_key(self, account: LocalAccount, new_address: str) -> Receipt:
        """Move the account's membership to a new key."""
        return self.send(account, "rotateKey", to_checksum_address(new_address))

    def propose(self, account: LocalAccount, kind: ProposalKind, *args: Any) -> int:
        """Open a governance proposal; return its id."""
        names = {
            ProposalKind.ADD_MEMBER: "proposeAddMember",
            ProposalKind.REMOVE_MEMBER: "proposeRemoveMember",
            ProposalKind.SET_ROLES: "proposeSetRoles",
            ProposalKind.SET_THRESHOLD: "proposeThreshold",
            ProposalKind.REVOKE: "proposeRevoke",
            ProposalKind.SUSPEND: "proposeSuspend",
            ProposalKind.RESUME: "proposeResume",
            ProposalKind.AUTHORIZE_ISSUER: "proposeAuthorizeIssuer",
            ProposalKind.DEAUTHORIZE_ISSUER: "proposeDeauthorizeIssuer",
        }
        receipt = self.send(account, names[kind], *args)
        return int(receipt.event("ProposalCreated").args["proposalId"])

    def approve(self, account: LocalAccount, proposal_id: int) -> Receipt:
        """Approve a proposal (executes it when the quorum is reached)."""
        return self.send(account, "approve", proposal_id)

    def execute(self, account: LocalAccount, proposal_id: int) -> Receipt:
        """Execute a proposal that already has the quorum (after the threshold was lowered)."""
        return self.send(account, "execute", proposal_id)

    def cancel(self, account: LocalAccount, proposal_id: int) -> Receipt:
        """Withdraw one's own proposal."""
        return self.send(account, "cancel", proposal_id)


class _RpcFailure(Exception):
    """An error object from a JSON-RPC response, shaped like web3's exceptions."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.data = error.get("data")


_TRANSIENT_RETRIES = 5


def _transient(response: dict[str, Any]) -> bool:
    """Say whether an eth_call failed for a passing reason (a node racing its own head).

    anvil answers ``BlockOutOfRangeError`` when a call on "latest" lands while a block is
    being sealed; a revert always carries data and is never retried.
    """
    error = response.get("error")
    if not isinstance(error, dict) or error.get("data"):
        return False
    return "out of range" in str(error.get("message", "")).lower() or "BlockOutOfRange" in str(
        error.get("message", "")
    )


def _block_param(block: int | str) -> str:
    return hex(block) if isinstance(block, int) else block


def _is_connection_error(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout)
