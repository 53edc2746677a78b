"""Transactions signed from local keys: nonces, fees, gas estimates, receipts, revert replay.

A local nonce counter per sender lets many transactions be in flight; :class:`PendingTx` is
one that was sent, and ``wait()`` returns its :class:`Receipt` or raises the custom error it
reverted with (replayed as a call on the block before).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from dpki.chain.abi import ContractAbi, Event, decode_revert, hex_bytes, revert_data
from dpki.chain.rpc import RpcClient, RpcFailure
from dpki.errors import ChainError, NonceConflict, RpcUnavailable

__all__ = ["NonceCounter", "PendingTx", "Receipt", "Transactions"]


#: how often a transaction is re-sent after another sender took its nonce
_NONCE_RETRIES = 8
#: what nodes (anvil, geth, Besu) answer when a nonce is already used or in the pool
_NONCE_MESSAGES = (
    "nonce too low",
    "nonce_too_low",
    "replacement transaction underpriced",
    "replacement_underpriced",
)
#: what nodes answer when they already hold these very bytes (another process of the same
#: member signed the same call with the same nonce and fees): the transaction is sent
_ALREADY_HELD = ("already known", "already imported", "known transaction", "alreadyknown")


@dataclass(frozen=True)
class Receipt:
    """A mined transaction."""

    tx_hash: bytes
    block_number: int
    gas_used: int
    events: list[Event] = field(default_factory=list)
    contract_address: str | None = None

    def event(self, name: str) -> Event:
        """Return the first event called ``name``."""
        for ev in self.events:
            if ev.name == name:
                return ev
        raise KeyError(f"no {name} event in transaction 0x{self.tx_hash.hex()}")


class PendingTx:
    """A transaction that was sent; ``wait()`` returns its receipt or raises its revert."""

    def __init__(
        self,
        sender: Transactions,
        tx_hash: bytes,
        call: dict[str, Any],
        *,
        nonce: int | None = None,
        raw: bytes = b"",
    ) -> None:
        self.tx_hash = tx_hash
        self.call = call
        self.nonce = nonce
        #: the signed transaction: sending it again can never execute it twice (its nonce)
        self.raw = raw
        #: how many times it was sent again because the node had lost it
        self.resent = 0
        self._sender = sender
        self._receipt: Receipt | None = None

    def wait(self, timeout: float = 120.0, poll: float = 0.05) -> Receipt:
        """Block until mined; raise the decoded custom error if it reverted."""
        if self._receipt is None:
            self._receipt = self._sender.wait(self, timeout=timeout, poll=poll)
        return self._receipt


class NonceCounter:
    """Local nonce per sender so transactions can be pipelined."""

    def __init__(self, rpc: RpcClient) -> None:
        self._rpc = rpc
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, address: str) -> int:
        """Return the next nonce of ``address`` (asked of the node the first time)."""
        with self._lock:
            if address not in self._next:
                count = self._rpc.request("eth_getTransactionCount", [address, "pending"])
                if "error" in count:
                    raise ChainError(f"eth_getTransactionCount failed: {count['error']}")
                self._next[address] = int(count["result"], 16)
            nonce = self._next[address]
            self._next[address] = nonce + 1
            return nonce

    def forget(self, address: str) -> None:
        """Ask the node again next time (after a transaction that never made it)."""
        with self._lock:
            self._next.pop(address, None)


class Transactions:
    """Sign, send and follow transactions through ``rpc``; reverts decode with ``abi``."""

    def __init__(self, rpc: RpcClient, abi: ContractAbi) -> None:
        self.rpc = rpc
        self.abi = abi
        self.nonces = NonceCounter(rpc)

    def send(self, account: LocalAccount, to: str | None, data: bytes) -> PendingTx:
        """Sign and send ``data`` to ``to`` (None: create a contract); return without waiting.

        The call is estimated first, so a call the contract would refuse raises its custom
        error here and never reaches the chain.
        """
        for attempt in range(_NONCE_RETRIES):
            tx = self._build(account.address, to, data)
            signed = account.sign_transaction(tx)
            call: dict[str, Any] = {"from": account.address, "data": data}
            if to is not None:
                call["to"] = to
            pending = PendingTx(
                self,
                bytes(signed.hash),
                call,
                nonce=tx["nonce"],
                raw=bytes(signed.raw_transaction),
            )
            try:
                self._send_raw(pending.raw)
            except RpcUnavailable:
                return pending  # the node may or may not have it: settle() sends it again
            except NonceConflict:
                # another process sends from this account (a member's validator and its
                # submission node): re-read the nonce and send again, re-estimated, so an
                # action that meanwhile became pointless is refused by its custom error
                self.nonces.forget(account.address)
                time.sleep(0.05 * (attempt + 1))
                continue
            except ChainError:
                self.nonces.forget(account.address)
                raise
            return pending
        raise NonceConflict(
            f"the nonce of {account.address} was taken {_NONCE_RETRIES} times in a row by "
            "other senders from the same account; give each role its own key"
        )

    def _build(self, sender: str, to: str | None, data: bytes) -> dict[str, Any]:
        call: dict[str, Any] = {"from": sender, "data": "0x" + data.hex()}
        if to is not None:
            call["to"] = to
        response = self.rpc.request("eth_estimateGas", [call])
        if "error" in response:
            raise decode_revert(revert_data(RpcFailure(response["error"])), self.abi)
        gas = int(response["result"], 16)
        tx: dict[str, Any] = {
            "from": sender,
            "data": data,
            "gas": gas + gas // 5 + 10_000,
            "nonce": self.nonces.take(sender),
            "chainId": self.rpc.chain_id,
            "value": 0,
        }
        if to is not None:
            tx["to"] = to
        tx.update(self._fees())
        return tx

    def _fees(self) -> dict[str, int]:
        base = self.rpc.block("latest").get("baseFeePerGas")
        if base is None:  # a pre-London or free-gas network
            price = int(self.rpc.request("eth_gasPrice", [])["result"], 16)
            return {"gasPrice": price}
        tip_response = self.rpc.request("eth_maxPriorityFeePerGas", [])
        tip = int(tip_response["result"], 16) if "result" in tip_response else 0
        return {"maxFeePerGas": 2 * int(base, 16) + tip, "maxPriorityFeePerGas": tip}

    def _send_raw(self, raw: bytes) -> bytes:
        response = self.rpc.request("eth_sendRawTransaction", ["0x" + bytes(raw).hex()])
        if "error" in response:
            error = response["error"]
            data = revert_data(RpcFailure(error))
            if data:
                raise decode_revert(data, self.abi)
            message = str(error.get("message", error))
            if any(m in message.lower() for m in _ALREADY_HELD):
                return keccak(raw)
            if any(m in message.lower() for m in _NONCE_MESSAGES):
                raise NonceConflict(f"the node refused the transaction: {message}")
            raise ChainError(f"the node refused the transaction: {message}")
        return bytes.fromhex(str(response["result"]).removeprefix("0x"))

    def wait(self, pending: PendingTx, timeout: float = 120.0, poll: float = 0.05) -> Receipt:
        """Wait for ``pending`` to be mined; raise its decoded revert when it failed."""
        deadline = time.monotonic() + timeout
        next_look = time.monotonic() + 2.0
        while True:
            response = self.rpc.request("eth_getTransactionReceipt", ["0x" + pending.tx_hash.hex()])
            raw = response.get("result")
            if raw:
                break
            if time.monotonic() > deadline:
                raise ChainError(
                    f"transaction 0x{pending.tx_hash.hex()} not mined after {timeout:.0f} s"
                )
            if time.monotonic() > next_look:  # replaced by another sender's same nonce?
                next_look = time.monotonic() + 2.0
                self._check_not_dropped(pending)
            time.sleep(poll)
        if int(raw["status"], 16) != 1:
            block = int(raw["blockNumber"], 16)
            call = dict(pending.call, data="0x" + pending.call["data"].hex())
            replay = self.rpc.request("eth_call", [call, hex(block - 1)])
            if "error" in replay:
                raise decode_revert(revert_data(RpcFailure(replay["error"])), self.abi)
            raise ChainError(f"transaction 0x{pending.tx_hash.hex()} reverted")
        return self.receipt(raw)

    def settle(
        self,
        pending: Sequence[PendingTx],
        *,
        confirmations: int = 0,
        timeout: float = 300.0,
        poll: float = 0.1,
        ride_out: bool = True,
    ) -> list[Receipt]:
        """Wait until every transaction is mined ``confirmations`` blocks deep; return receipts.

        Unlike :meth:`wait` this rides out a node that stops answering (back-off, then ask
        again) and sends again, byte for byte, any transaction the node no longer knows (a
        restarted node forgets its pool; a reorganization may drop a block). A signed
        transaction has one nonce, so sending it again never executes it twice. A
        transaction that reverted raises its decoded custom error. With ``ride_out`` False
        an unanswering node raises RpcUnavailable at once (for callers that retry anyway).
        """
        deadline = time.monotonic() + timeout
        receipts: dict[int, Receipt] = {}
        last_sent = dict.fromkeys(range(len(pending)), time.monotonic())
        backoff = poll
        while len(receipts) < len(pending):
            if time.monotonic() > deadline:
                raise ChainError(
                    f"{len(pending) - len(receipts)} transaction(s) not settled after "
                    f"{timeout:.0f} s at {self.rpc.url}"
                )
            try:
                head = self.rpc.block_number()
                waiting = [i for i in range(len(pending)) if i not in receipts]
                answers = self.rpc.batch(
                    [
                        ("eth_getTransactionReceipt", ["0x" + pending[i].tx_hash.hex()])
                        for i in waiting
                    ]
                )
                for i, raw in zip(waiting, answers, strict=True):
                    if raw is None:
                        if time.monotonic() - last_sent[i] > 2.0:
                            self._resend(pending[i])
                            last_sent[i] = time.monotonic()
                        continue
                    if head - int(raw["blockNumber"], 16) < confirmations:
                        continue
                    if int(raw["status"], 16) != 1:
                        pending[i].wait()  # replays the call and raises its revert
                    receipts[i] = self.receipt(raw)
                backoff = poll
            except RpcUnavailable:
                if not ride_out:
                    raise
                backoff = min(5.0, backoff * 2)
            time.sleep(backoff)
        return [receipts[i] for i in range(len(pending))]

    def _resend(self, pending: PendingTx) -> None:
        """Send a transaction again unless the node already holds it."""
        if not pending.raw:
            return
        known = self.rpc.request("eth_getTransactionByHash", ["0x" + pending.tx_hash.hex()])
        if known.get("result") is not None:
            return
        response = self.rpc.request("eth_sendRawTransaction", ["0x" + pending.raw.hex()])
        pending.resent += 1
        error = response.get("error")
        if error:  # "already known", or "nonce too low": mined meanwhile, or replaced
            message = str(error.get("message", error))
            if "nonce too low" in message.lower():
                self._check_not_dropped(pending)  # replaced by another sender: NonceConflict
            if not any(s in message.lower() for s in ("known", "nonce too low")):
                raise ChainError(f"the node refused a transaction sent again: {message}")

    def _check_not_dropped(self, pending: PendingTx) -> None:
        """Raise NonceConflict when the node no longer knows ``pending`` and its nonce is used.

        That happens when another process sent a different transaction with the same nonce
        and a higher fee: ours was replaced and will never be mined.
        """
        if pending.nonce is None:
            return
        known = self.rpc.request("eth_getTransactionByHash", ["0x" + pending.tx_hash.hex()])
        if known.get("result"):
            return
        sender = pending.call["from"]
        used = self.rpc.request("eth_getTransactionCount", [sender, "latest"]).get("result")
        if used is not None and int(used, 16) > pending.nonce:
            self.nonces.forget(sender)
            raise NonceConflict(
                f"transaction 0x{pending.tx_hash.hex()} was dropped: nonce {pending.nonce} of "
                f"{sender} was used by another transaction"
            )

    def receipt(self, raw: dict[str, Any]) -> Receipt:
        """Return a JSON-RPC receipt with the contract's events decoded."""
        events = [e for e in map(self.abi.decode_log, raw["logs"]) if e is not None]
        created = raw.get("contractAddress")
        return Receipt(
            tx_hash=hex_bytes(raw["transactionHash"]) or b"",
            block_number=int(raw["blockNumber"], 16),
            gas_used=int(raw["gasUsed"], 16),
            events=events,
            contract_address=to_checksum_address(created) if created else None,
        )
