"""Transactions signed from local keys: nonces, fees, gas estimates, receipts, revert replay.

A local nonce counter per sender lets many transactions be in flight; :class:`PendingTx` is
one that was sent, and ``wait()`` returns its :class:`Receipt` or raises the custom error it
reverted with (replayed as a call on the block before).

A caller that can compute an upper bound of a call's gas (a batch whose cost is linear in
its items) passes it as ``gas`` and saves the node's ``eth_estimateGas``, which executes the
call several times. Such a transaction is not checked before it is sent: if the contract
refuses it, it is mined as a revert and ``wait()`` raises the custom error all the same; if
the bound was short, ``wait()`` raises :class:`~dpki.errors.OutOfGas` and from then on this
sender estimates every transaction again.
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
from dpki.errors import ChainError, NonceConflict, OutOfGas, RpcUnavailable

__all__ = ["NonceCounter", "PendingTx", "Receipt", "Transactions"]


#: how often a transaction is re-sent after another sender took its nonce
_NONCE_RETRIES = 8
#: seconds the fee fields are reused before the node is asked again
_FEES_FOR = 1.0
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
        gas: int | None = None,
        bounded: bool = False,
    ) -> None:
        self.tx_hash = tx_hash
        self.call = call
        self.nonce = nonce
        #: the transaction's gas limit, and whether it was computed by the caller (no estimate)
        self.gas = gas
        self.bounded = bounded
        #: the signed transaction: sending it again can never execute it twice (its nonce)
        self.raw = raw
        #: how many times it was sent again because the node had lost it
        self.resent = 0
        #: when it was last handed to the node (sent again after two seconds unknown)
        self.sent_at = time.monotonic()
        #: its receipt once seen mined, and how deep it was then
        self.receipt: Receipt | None = None
        self.depth = 0
        self._sender = sender

    def wait(self, timeout: float = 120.0, poll: float = 0.05) -> Receipt:
        """Block until mined; raise the decoded custom error if it reverted."""
        if self.receipt is None:
            self.receipt = self._sender.wait(self, timeout=timeout, poll=poll)
        return self.receipt


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
        #: set after a computed gas limit fell short: estimate everything from then on
        self.estimate_always = False
        self._fee_cache: tuple[float, dict[str, int]] | None = None

    def send(
        self, account: LocalAccount, to: str | None, data: bytes, *, gas: int | None = None
    ) -> PendingTx:
        """Sign and send ``data`` to ``to`` (None: create a contract); return without waiting.

        Without ``gas`` the call is estimated first, so a call the contract would refuse
        raises its custom error here and never reaches the chain. With ``gas`` (an upper
        bound the caller computed) it is sent unestimated: a refusal is raised by ``wait()``
        from the mined revert, and a bound that fell short by :class:`OutOfGas`.
        """
        bounded = gas is not None and not self.estimate_always
        for attempt in range(_NONCE_RETRIES):
            tx = self._build(account.address, to, data, gas if bounded else None)
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
                gas=tx["gas"],
                bounded=bounded,
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

    def _build(
        self, sender: str, to: str | None, data: bytes, gas: int | None = None
    ) -> dict[str, Any]:
        if gas is None:
            call: dict[str, Any] = {"from": sender, "data": "0x" + data.hex()}
            if to is not None:
                call["to"] = to
            response = self.rpc.request("eth_estimateGas", [call])
            if "error" in response:
                raise decode_revert(revert_data(RpcFailure(response["error"])), self.abi)
            estimate = int(response["result"], 16)
            gas = estimate + estimate // 5 + 10_000
        fees = self._fees()  # before the nonce is taken: a node that fails here leaves no gap
        tx: dict[str, Any] = {
            "from": sender,
            "data": data,
            "gas": gas,
            "nonce": self.nonces.take(sender),
            "chainId": self.rpc.chain_id,
            "value": 0,
            **fees,
        }
        if to is not None:
            tx["to"] = to
        return tx

    def _fees(self) -> dict[str, int]:
        """Return the fee fields, asked of the node at most once a second.

        ``maxFeePerGas`` is twice the base fee (plus the tip): the base fee rises by at most
        12.5 % a block, so fees a second old still pay for several blocks.
        """
        now = time.monotonic()
        if self._fee_cache is not None and now - self._fee_cache[0] < _FEES_FOR:
            return dict(self._fee_cache[1])
        base = self.rpc.block("latest").get("baseFeePerGas")
        if base is None:  # a pre-London or free-gas network
            price = int(self.rpc.request("eth_gasPrice", [])["result"], 16)
            fees = {"gasPrice": price}
        else:
            tip_response = self.rpc.request("eth_maxPriorityFeePerGas", [])
            tip = int(tip_response["result"], 16) if "result" in tip_response else 0
            fees = {"maxFeePerGas": 2 * int(base, 16) + tip, "maxPriorityFeePerGas": tip}
        self._fee_cache = (now, fees)
        return dict(fees)

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
            self._raise_revert(pending, raw)
        return self.receipt(raw)

    def _raise_revert(self, pending: PendingTx, raw: dict[str, Any]) -> None:
        """Raise why a mined transaction failed: its custom error, or OutOfGas."""
        if pending.gas is not None and int(raw["gasUsed"], 16) >= pending.gas:
            # all its gas used: out of gas (a revert returns what is left)
            if pending.bounded:
                self.estimate_always = True
            raise OutOfGas(
                f"transaction 0x{pending.tx_hash.hex()} ran out of its {pending.gas:,} gas"
                + (" (a computed bound: estimating from now on)" if pending.bounded else "")
            )
        block = int(raw["blockNumber"], 16)
        call = dict(pending.call, data="0x" + pending.call["data"].hex())
        # on the state before its block; when that says nothing (a node without that state,
        # or a transaction earlier in the same block that made it fail: a vote sent twice),
        # on the state after it
        for at in (block - 1, block):
            replay = self.rpc.request("eth_call", [call, hex(at)])
            data = revert_data(RpcFailure(replay["error"])) if "error" in replay else None
            if data:
                raise decode_revert(data, self.abi)
        raise ChainError(f"transaction 0x{pending.tx_hash.hex()} reverted")

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
        backoff = poll
        while True:
            try:
                found = self.settled(pending, confirmations=confirmations)
                if all(r is not None for r in found):
                    return [r for r in found if r is not None]
                backoff = poll
            except RpcUnavailable:
                if not ride_out:
                    raise
                backoff = min(5.0, backoff * 2)
            if time.monotonic() > deadline:
                left = sum(1 for p in pending if p.receipt is None)
                raise ChainError(
                    f"{left} transaction(s) not settled after {timeout:.0f} s at {self.rpc.url}"
                )
            time.sleep(backoff)

    def settled(
        self, pending: Sequence[PendingTx], *, confirmations: int = 0
    ) -> list[Receipt | None]:
        """Look once: return each transaction's receipt when mined ``confirmations`` deep.

        None for one not there yet; one the node has not known for two seconds is sent again
        (see :meth:`settle`); one that reverted raises its decoded custom error. One round
        trip for all of them (and one for the head), so a caller with work in flight can
        look between other work instead of blocking.
        """
        waiting = [p for p in pending if p.receipt is None or p.depth < confirmations]
        if waiting:
            head = self.rpc.block_number()
            answers = self.rpc.batch(
                [("eth_getTransactionReceipt", ["0x" + p.tx_hash.hex()]) for p in waiting]
            )
            now = time.monotonic()
            for p, raw in zip(waiting, answers, strict=True):
                if raw is None:
                    p.receipt = None  # dropped with a block: it may come back, or be resent
                    if now - p.sent_at > 2.0:
                        self._resend(p)
                        p.sent_at = time.monotonic()
                    continue
                if int(raw["status"], 16) != 1:
                    self._raise_revert(p, raw)
                p.receipt = self.receipt(raw)
                p.depth = max(0, head - p.receipt.block_number)  # head read just before
        return [
            p.receipt if p.receipt is not None and p.depth >= confirmations else None
            for p in pending
        ]

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
        if error:
            message = str(error.get("message", error)).lower()
            if any(m in message for m in _ALREADY_HELD):
                return
            if "nonce too low" in message or "nonce_too_low" in message:
                self._check_not_dropped(pending)  # mined meanwhile, or replaced: NonceConflict
                return
            if "underpriced" in message:
                # the node's pool holds another transaction with this nonce (a node that lost
                # its pool gave the nonce out again): this one will never be mined
                raise NonceConflict(
                    f"nonce {pending.nonce} of {pending.call['from']} was given to another "
                    "transaction while the node was away"
                )
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
