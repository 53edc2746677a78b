"""A client of one deployed contract: calls, batched calls, logs and signed transactions.

:class:`ContractClient` knows the contract only through its ABI; the typed API of the
registry (:class:`dpki.chain.registry.Registry`) is built on it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3

from dpki.chain.abi import (
    ContractAbi,
    Event,
    decode_revert,
    default_abi,
    load_artifact,
    revert_data,
)
from dpki.chain.rpc import RpcClient, RpcFailure, block_param, transient
from dpki.chain.transactions import PendingTx, Receipt, Transactions
from dpki.errors import ChainError

__all__ = ["ContractClient"]


class ContractClient:
    """The contract at ``address`` on the chain behind ``w3`` (ABI from ``artifact``)."""

    def __init__(self, w3: Web3, address: str, artifact: dict[str, Any] | None = None) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.artifact = artifact or load_artifact()
        self.abi: ContractAbi = ContractAbi(self.artifact["abi"]) if artifact else default_abi()
        self.rpc = RpcClient(w3)
        self.transactions = Transactions(self.rpc, self.abi)

    # ------------------------------------------------------------------ the node

    @property
    def rpc_url(self) -> str:
        """Return the endpoint URL (for messages)."""
        return self.rpc.url

    @property
    def chain_id(self) -> int:
        """Return the chain id (asked once)."""
        return self.rpc.chain_id

    def block_number(self) -> int:
        """Return the chain head's number."""
        return self.rpc.block_number()

    def block_timestamp(self, block: int | str = "latest") -> int:
        """Return a block's timestamp (unix seconds)."""
        return int(self.rpc.block(block)["timestamp"], 16)

    def genesis_hash(self) -> str:
        """Return the hash of block 0 (hex, no 0x): it tells apart chains with one chain id."""
        genesis = self.rpc.block(0)
        if not genesis or not genesis.get("hash"):
            raise ChainError(f"the node at {self.rpc_url} does not serve block 0 (genesis)")
        return str(genesis["hash"]).lower().removeprefix("0x")

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Send JSON-RPC ``(method, params)`` calls in one round trip (see RpcClient.batch)."""
        return self.rpc.batch(calls)

    def resync_nonce(self, address: str) -> None:
        """Ask the node for ``address``'s nonce again (after a transaction that failed)."""
        self.transactions.nonces.forget(address)

    # ------------------------------------------------------------------ calls

    def call(self, name: str, *args: Any, block: int | str = "latest") -> Any:
        """Call view function ``name`` and return its decoded output."""
        data = self.abi.encode_call(name, args)
        return self.abi.decode_output(name, self._eth_call(data, block))

    def _eth_call(self, data: bytes, block: int | str = "latest") -> bytes:
        params = [{"to": self.address, "data": "0x" + data.hex()}, block_param(block)]
        return self._call_result(self.rpc.request_retrying("eth_call", params))

    def _call_result(self, response: dict[str, Any]) -> bytes:
        """Return an eth_call's bytes, or raise its decoded revert or the node's error."""
        if "error" in response:
            revert = revert_data(RpcFailure(response["error"]))
            if revert is None:
                message = response["error"].get("message", response["error"])
                raise ChainError(f"eth_call failed at {self.rpc_url}: {message}")
            raise decode_revert(revert, self.abi)
        return bytes.fromhex(str(response["result"]).removeprefix("0x"))

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
            answers = self.rpc.post_batch(payload)
            if answers is not None and any(transient(a) for a in answers):
                time.sleep(0.02)
                answers = self.rpc.post_batch(payload)
            if answers is None or any(transient(a) for a in answers):
                results.extend(self.call(name, *a) for a in part)
                continue
            for answer in sorted(answers, key=lambda r: int(r["id"])):
                results.append(self.abi.decode_output(name, self._call_result(answer)))
        return results

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
        params: dict[str, Any] = {
            "address": self.address,
            "fromBlock": block_param(from_block),
            "toBlock": block_param(to_block),
        }
        if names is not None:
            params["topics"] = [self.abi.event_topics(set(names))]
        if cert_id is not None:
            params["topics"] = [params.get("topics", [None])[0], "0x" + cert_id.hex()]
        response = self.rpc.request_large("eth_getLogs", [params])
        if "error" in response:
            raise ChainError(f"eth_getLogs failed: {response['error'].get('message')}")
        return [e for e in map(self.abi.decode_log, response["result"]) if e is not None]

    # ------------------------------------------------------------------ transactions

    def transact(
        self, account: LocalAccount, name: str, *args: Any, gas: int | None = None
    ) -> PendingTx:
        """Sign and send ``name(*args)`` from ``account``; return without waiting.

        The low-level write that the typed methods below use (and tests that go through
        every function by name). A call the registry would refuse raises its custom error
        here and never reaches the chain; with ``gas`` (a bound the caller computed, see
        :meth:`Transactions.send`) it is not estimated and ``wait()`` raises the refusal.
        """
        data = self.abi.encode_call(name, args)
        return self.transactions.send(account, self.address, data, gas=gas)

    def wait_settled(
        self,
        pending: Sequence[PendingTx],
        *,
        confirmations: int = 0,
        timeout: float = 300.0,
        ride_out: bool = True,
    ) -> list[Receipt]:
        """Wait until every transaction is ``confirmations`` deep (see Transactions.settle)."""
        return self.transactions.settle(
            pending, confirmations=confirmations, timeout=timeout, ride_out=ride_out
        )

    def settled(
        self, pending: Sequence[PendingTx], *, confirmations: int = 0
    ) -> list[Receipt | None]:
        """Look once which transactions are mined (see Transactions.settled); no waiting."""
        return self.transactions.settled(pending, confirmations=confirmations)
