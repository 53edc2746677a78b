"""Follow the registry's events into the index: batched, checkpointed, resumable, reorg-safe.

Each step reads one block range ``[checkpoint + 1, min(head - confirmations, ...)]`` with
``eth_getLogs`` (in up to :data:`READ_PARTS` parts read at once), fetches the headers of the
blocks those events are in (JSON-RPC batches), and commits the rows and the new checkpoint
in one database transaction. A crash loses at most the range in flight, which the next run
reads again: nothing is lost or doubled.

Before each step the checkpoint's block hash is compared with the chain's. A block hash
commits to all its ancestors, so a reorganization below the checkpoint always shows up
there; the indexer then walks back through the hashes it kept to the newest block still on
the chain, drops every row from later blocks, rebuilds the touched certificates from their
surviving events and reads forward again.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from dpki.chain.registry import Event, Registry
from dpki.errors import ChainError, RpcUnavailable
from dpki.inquiry.store import KEEP_BLOCKS, UNAVAILABLE, BlockRef, Store
from dpki.metrics import IndexerMetrics

__all__ = ["Indexer", "StepResult"]

log = logging.getLogger("dpki.indexer")

#: how many parts a block range is read in (concurrently, see Indexer._fetch)
READ_PARTS = 2

#: failures the running indexer waits out: the ledger or the database is unreachable
RETRIABLE: tuple[type[Exception], ...] = (RpcUnavailable, *UNAVAILABLE)


@dataclass(frozen=True)
class StepResult:
    """What one step did: the range read, the events applied, a rollback if any."""

    from_block: int
    to_block: int
    events: int
    head: int
    rolled_back_to: int | None = None

    @property
    def idle(self) -> bool:
        """Say whether there was nothing to read."""
        return self.to_block < self.from_block and self.rolled_back_to is None


class _Inconsistent(Exception):
    """The chain changed while a range was being read; read it again."""


class Indexer:
    """Mirror ``registry`` into ``store`` from ``deploy_block`` on."""

    def __init__(
        self,
        registry: Registry,
        store: Store,
        deploy_block: int,
        *,
        confirmations: int = 0,
        batch_blocks: int = 5_000,
        metrics: IndexerMetrics | None = None,
    ) -> None:
        if confirmations < 0:
            raise ValueError(f"confirmations must be >= 0, got {confirmations}")
        self.registry = registry
        self.store = store
        self.deploy_block = deploy_block
        self.confirmations = confirmations
        self.batch_blocks = batch_blocks
        self.metrics = metrics or IndexerMetrics()
        store.bind_registry(
            registry.chain_id, registry.address, deploy_block, genesis=registry.genesis_hash()
        )

    # ------------------------------------------------------------------ chain reads

    def headers(self, numbers: Iterable[int]) -> dict[int, BlockRef | None]:
        """Return the chain's current header (hash, time) for each block number (None: none)."""
        wanted = sorted(set(numbers))
        out: dict[int, BlockRef | None] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            calls = [("eth_getBlockByNumber", [hex(n), False]) for n in part]
            results = self.registry.batch(calls)
            for n, block in zip(part, results, strict=True):
                out[n] = (
                    None
                    if block is None
                    else BlockRef(n, block["hash"][2:].lower(), int(block["timestamp"], 16))
                )
        return out

    # ------------------------------------------------------------------ one step

    def step(self) -> StepResult:
        """Check for a reorganization, then index the next block range (may be empty)."""
        with _no_gc_pauses():
            result = self._step()
        m = self.metrics
        m.events.inc(result.events)
        if result.rolled_back_to is not None:
            m.reorgs.inc()
        reached = result.rolled_back_to if result.rolled_back_to is not None else result.to_block
        if result.idle:
            reached = result.from_block - 1
        m.last_block.set(reached)
        m.lag_blocks.set(max(0, result.head - reached))
        return result

    def _step(self) -> StepResult:
        checkpoint = self.store.checkpoint()
        if checkpoint is None:
            head = self.registry.block_number()
        else:  # the head and the checkpoint's block as the chain has it now: one round trip
            number, block = self.registry.batch(
                [("eth_blockNumber", []), ("eth_getBlockByNumber", [hex(checkpoint.number), False])]
            )
            head = int(number, 16)
            if block is None or block["hash"][2:].lower() != checkpoint.hash:
                ancestor = self._fork_point()
                dropped = self.store.rollback_to(ancestor, self.deploy_block)
                back_to = ancestor.number if ancestor else self.deploy_block - 1
                log.warning(
                    "chain reorganized below block %d: dropped %d events after block %d",
                    checkpoint.number,
                    dropped,
                    back_to,
                )
                return StepResult(back_to + 1, back_to, 0, head, rolled_back_to=back_to)
        start = checkpoint.number + 1 if checkpoint else self.deploy_block
        end = min(head - self.confirmations, start + self.batch_blocks - 1)
        if end < start:
            return StepResult(start, end, 0, head)
        for _attempt in range(5):
            try:
                count = self._read_range(start, end)
                return StepResult(start, end, count, head)
            except _Inconsistent:
                time.sleep(0.05)
        raise ChainError(f"the chain kept changing while blocks {start}..{end} were read")

    def _read_range(self, start: int, end: int) -> int:
        events, blocks = self._fetch(start, end)
        for e in events:  # the logs and the headers must come from the same chain
            block = blocks.get(e.block_number)
            if block is None or block.hash != e.block_hash.hex():
                raise _Inconsistent
        last = blocks[end]
        if last is None:
            raise _Inconsistent
        known = {n: b for n, b in blocks.items() if b is not None}
        return self.store.commit_range(events, known, last)

    def _fetch(self, start: int, end: int) -> tuple[list[Event], dict[int, BlockRef | None]]:
        """Return the range's events and the headers of their blocks and of ``end``.

        A range of several blocks is read in up to :data:`READ_PARTS` parts by two threads,
        so that one decodes a part while the node is still answering for the next (the
        node's work and ours overlap; each part is one ``eth_getLogs`` and one batch of
        headers). The parts are joined in order: the same events as one read."""
        parts = _split(start, end, READ_PARTS)
        if len(parts) == 1:
            return self._fetch_part(start, end, end)
        events: list[Event] = []
        blocks: dict[int, BlockRef | None] = {}
        with ThreadPoolExecutor(2, thread_name_prefix="dpki-indexer-read") as pool:
            for part_events, part_blocks in pool.map(
                lambda part: self._fetch_part(part[0], part[1], end), parts
            ):
                events += part_events
                blocks.update(part_blocks)
        return events, blocks

    def _fetch_part(
        self, start: int, end: int, last: int
    ) -> tuple[list[Event], dict[int, BlockRef | None]]:
        events = self._events(start, end)
        numbers = {e.block_number for e in events}
        if end == last:
            numbers.add(last)
        return events, self.headers(numbers)

    def _events(self, start: int, end: int) -> list[Event]:
        """Read events, halving the range when the node refuses one that is too large."""
        try:
            return self.registry.events(start, end)
        except RpcUnavailable:
            raise
        except ChainError:
            if end == start:
                raise
            middle = (start + end) // 2
            return self._events(start, middle) + self._events(middle + 1, end)

    def _fork_point(self) -> BlockRef | None:
        """Return the newest indexed block that is still on the chain (None: none is)."""
        recent = self.store.recent_blocks(KEEP_BLOCKS)
        current = self.headers(b.number for b in recent)
        for block in recent:  # newest first
            now = current.get(block.number)
            if now is not None and now.hash == block.hash:
                return block
        return None

    # ------------------------------------------------------------------ loops

    def catch_up(self, progress: Callable[[StepResult], None] | None = None) -> int:
        """Index until the checkpoint reaches head - confirmations (the head a step read);
        return events applied."""
        total = 0
        while True:
            result = self.step()
            total += result.events
            if progress:
                progress(result)
            reached = result.rolled_back_to is None and (
                result.to_block >= result.head - self.confirmations
            )
            if result.idle or reached:
                return total

    def run(
        self,
        *,
        poll: float = 1.0,
        stop: threading.Event | None = None,
        progress: Callable[[StepResult], None] | None = None,
    ) -> None:
        """Follow the chain until ``stop`` is set, retrying with back-off while the ledger or
        the database is unreachable (each range commits whole, so a retry loses nothing)."""
        stop = stop or threading.Event()
        delay = poll
        while not stop.is_set():
            try:
                result = self.step()
            except RETRIABLE as exc:
                what = str(exc) if isinstance(exc, RpcUnavailable) else _db_error(exc)
                log.warning("%s; retrying in %.1f s", what, delay)
                self.metrics.errors.inc()
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = poll
            if progress:
                progress(result)
            if result.idle:
                stop.wait(poll)


def _split(start: int, end: int, parts: int) -> list[tuple[int, int]]:
    """Split the block range ``[start, end]`` into at most ``parts`` consecutive ranges."""
    size = max(1, -(-(end - start + 1) // parts))
    return [(a, min(end, a + size - 1)) for a in range(start, end + 1, size)]


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Hold off the cyclic garbage collector for one step.

    A step of a catch-up allocates hundreds of thousands of short-lived objects, which makes
    the collector walk the whole heap several times (a 60-120 ms pause each, in a process
    holding many objects); what the step creates is freed by reference counting when it
    ends, and memory stays bounded by ``batch_blocks``. Collection resumes after the step.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _db_error(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)  # the driver's own message, without SQLAlchemy's story
    reason = str(orig).strip().splitlines()[0] if orig else type(exc).__name__
    return f"the index database is unavailable: {reason}"
