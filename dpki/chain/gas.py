"""Upper bounds of the gas of the registry's batch calls, so that they need no estimate.

``eth_estimateGas`` executes a call several times on the node; for a batch of 100
submissions that is most of the node's work of sending it, and the submission node and every
validator send such batches all day. Their cost is linear in what they carry: per item a
fixed part (storage slots, an event) and, for submissions, a part per byte of DER (calldata,
hashing, event data). The constants below are the execution measured on the Paris-target
registry (``bench/gas-snapshot.json``: 68,929 gas per submission in a batch of 100, 9,285
per endorsement) plus a margin for the dearer paths a measurement may not take (an
organization that is another member's, a key that had a certificate before, a renewal
superseding the old certificate); calldata is charged as if no byte were zero.
``tests/test_gas_bounds.py`` checks each bound against real transactions.

A bound that falls short is not lost work: the transaction runs out of gas, changes
nothing, ``wait()`` raises :class:`dpki.errors.OutOfGas`, the sender estimates from then on,
and its caller sends the items again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from dpki.chain.types import Submission

__all__ = ["endorse_batch_gas", "submit_batch_gas"]

#: intrinsic gas of a transaction, and of a calldata byte that is not zero
_TX: Final = 21_000
_CALLDATA_BYTE: Final = 16
#: EIP-7623's floor (Prague rules, e.g. anvil's default): a transaction whose limit is below
#: 21,000 + 40 a non-zero calldata byte is refused, or dropped from the pool unmined
_FLOOR_BYTE: Final = 40
#: selector, then the array's offset and length
_CALL_HEAD: Final = 4 + 32 + 32

#: execution of submitBatch: the call, and per submission (measured ~53,500 plus 8.5-12 a
#: DER byte; the paths a measurement may miss add a few cold reads)
_SUBMIT_BASE: Final = 30_000
_SUBMIT_ITEM: Final = 62_000
_SUBMIT_DER_BYTE: Final = 13
#: ABI words of one submission besides its DER: its offset, five head words, the DER length
_SUBMIT_WORDS: Final = 7

#: execution of endorseBatch: the call, per endorsement (measured ~8,600), and per renewal
#: it activates (the old certificate superseded: a status write, a pointer, an event)
_ENDORSE_BASE: Final = 15_000
_ENDORSE_ITEM: Final = 12_000
_RENEWAL: Final = 45_000
#: checking a vote's anchor: BLOCKHASH and a comparison, with room
_ANCHOR: Final = 1_000


def submit_batch_gas(submissions: Sequence[Submission]) -> int:
    """Return an upper bound of the gas of ``submitBatch(submissions)``."""
    calldata = _CALL_HEAD + sum(32 * _SUBMIT_WORDS + _padded(len(s.der)) for s in submissions)
    execution = _SUBMIT_BASE + sum(
        _SUBMIT_ITEM + _SUBMIT_DER_BYTE * len(s.der) for s in submissions
    )
    return _limit(calldata, execution)


def endorse_batch_gas(count: int, renewals: int = 0, *, anchored: bool = False) -> int:
    """Return an upper bound of the gas of ``endorseBatch`` of ``count`` certificates, of
    which ``renewals`` renew another (activating one supersedes the old); ``anchored``:
    of ``endorseBatchAt`` (two more words, a block hash looked up)."""
    calldata = _CALL_HEAD + 32 * count + (64 if anchored else 0)
    execution = (
        _ENDORSE_BASE + _ENDORSE_ITEM * count + _RENEWAL * renewals + (_ANCHOR if anchored else 0)
    )
    return _limit(calldata, execution)


def _limit(calldata: int, execution: int) -> int:
    return _TX + max(_CALLDATA_BYTE * calldata + execution, _FLOOR_BYTE * calldata)


def _padded(size: int) -> int:
    return -(-size // 32) * 32
