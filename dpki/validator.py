"""Validator node: re-verify every submission from the ledger's bytes and vote on-chain.

For each ``CertificateSubmitted`` event it takes the DER from the event data (never from the
submitter), checks that the submitter-supplied fields (validity window, SPKI hash,
organization hash) agree with the DER, runs the policy with issuer look-ups against the
ledger and the submitting member's organization, then endorses or rejects with a reason code.
Votes go out in batches, pipelined: the votes on one range of blocks are sent and the node
goes on to the next range without waiting for them to be mined (on a chain with a block
period each wait costs a block or two). The checkpoint (last block fully decided) moves to
a range only when every vote on it and on the ranges before it is mined, so a restart
re-reads at most the ranges in flight and ``hasVoted`` prevents a second vote; while votes
are in flight the node does not decide those certificates again, and an id registered again
meanwhile waits until they are mined. A vote refused or lost sends the node back to its
checkpoint. Each range is read with one ``eth_getLogs`` (submissions, the issuer index's
events and revocations for key compromise alike).

The checkpoint keeps the hashes of the last blocks it reached. When the block at the
checkpoint is no longer the chain's (a reorganization: Clique's out-of-turn blocks, a healed
partition) the validator goes back to the newest of them still on the chain and decides the
range again; what it already voted on is skipped by ``hasVoted``, what a dropped block took
with it is decided anew.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from dpki.chain.gas import endorse_batch_gas
from dpki.chain.registry import Anchor, Event, Member, PendingTx, Receipt, Registry, Status
from dpki.errors import (
    ChainError,
    ConfigError,
    ContractError,
    DpkiError,
    ParseError,
    RpcUnavailable,
    StaleAnchor,
)
from dpki.metrics import ValidatorMetrics
from dpki.pki.codes import REJECTION_REASONS
from dpki.pki.issuers import LedgerIssuers
from dpki.pki.policy import DEFAULT, IssuerCandidate, Policy, evaluate
from dpki.pki.x509 import (
    CertificateFacts,
    normalize_organization,
    organization_hash,
    parse_certificate,
    validity_seconds,
    verifies_under,
)

__all__ = ["SUBMISSION_MISMATCH", "Validator", "Vote"]

#: reason code for a submission whose declared fields disagree with its DER
SUBMISSION_MISMATCH = REJECTION_REASONS["SUBMISSION_MISMATCH"]
_MALFORMED = REJECTION_REASONS["MALFORMED"]
_KEY_COMPROMISE = 1  # RFC 5280 CRLReason keyCompromise

log = logging.getLogger("dpki.validator")


@dataclass(frozen=True)
class Vote:
    """A validator's vote on one submission: endorse, or reject with codes."""

    cert_id: bytes
    endorse: bool
    codes: tuple[str, ...] = ()
    reason_code: int = 0

    @property
    def label(self) -> str:
        """Return ``endorse`` or ``reject CODE,...``."""
        return "endorse" if self.endorse else "reject " + ",".join(self.codes)


#: checkpoints whose block hashes are kept to find the fork point after a reorganization
_KEEP_HASHES = 64
#: ranges whose votes may be in flight at once
_MAX_IN_FLIGHT = 8


@dataclass
class _State:
    checkpoint: int
    #: (block number, block hash) of recent checkpoints, oldest first
    recent: list[tuple[int, str]] = field(default_factory=list)
    reorgs: int = 0
    decided: int = 0
    endorsed: int = 0
    rejected: int = 0
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class _InFlight:
    """A decided range of blocks whose votes were sent and are not all mined yet."""

    end: int
    block_hash: str
    votes: list[tuple[list[Vote], PendingTx]]


#: the first registry version with anchored votes (endorseBatchAt, rejectBatchAt)
ANCHORED_VOTES = (2, 1)


def _require_anchored_votes(registry: Registry) -> None:
    """Refuse a registry older than anchored votes (they would revert without a reason)."""
    version = registry.version()
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        major_minor = (0, 0)
    if major_minor < ANCHORED_VOTES:
        raise ConfigError(
            f"the registry at {registry.address} is version {version}; this validator votes "
            f"with endorseBatchAt, which registries have since "
            f"{'.'.join(map(str, ANCHORED_VOTES))}.0: deploy a current registry, or run the "
            f"dpki release of the registry's version"
        )


class Validator:
    """One member's validator node."""

    def __init__(
        self,
        registry: Registry,
        account: LocalAccount,
        *,
        deploy_block: int,
        state_path: Path,
        confirmations: int = 0,
        batch_size: int = 100,
        log_range: int = 2_000,
        policy: Policy = DEFAULT,
        clock: Callable[[], datetime] | None = None,
        metrics: ValidatorMetrics | None = None,
    ) -> None:
        self.registry = registry
        self.account = account
        _require_anchored_votes(registry)
        self.deploy_block = deploy_block
        self.state_path = state_path
        self.confirmations = confirmations
        self.batch_size = batch_size
        self.log_range = log_range
        self.policy = policy
        self.clock = clock
        self.issuers = LedgerIssuers(registry, deploy_block)
        #: the chain this node follows: chain id, genesis hash, registry, deployment block
        self.chain = (
            f"{registry.chain_id}:0x{registry.genesis_hash()}:{registry.address.lower()}"
            f":{deploy_block}"
        )
        self.state = self._load_state()
        self.metrics = metrics or ValidatorMetrics()
        self.metrics.last_block.set(self.state.checkpoint)
        # ledger facts cached for one step only: membership changes between steps
        self._members: dict[str, Member | None] = {}
        self._by_org: dict[str, str | None] = {}
        self._compromised: dict[bytes, bool] = {}
        self._parsed: dict[bytes, CertificateFacts | ParseError] = {}
        #: decided ranges whose votes are not all mined (oldest first), and their ids
        self._in_flight: list[_InFlight] = []
        self._voting: set[bytes] = set()

    @property
    def votes_in_flight(self) -> int:
        """Return how many certificates' votes were sent and are not known to be mined."""
        return len(self._voting)

    # ------------------------------------------------------------------ state

    def _load_state(self) -> _State:
        """Read the checkpoint; start over when it belongs to another chain or registry.

        A checkpoint names the chain it was made on (genesis hash, registry, deployment
        block). One of another chain (a devnet started again in the same folder) or without
        that name is dropped: the node reads from the deployment block again, which is safe
        because ``hasVoted`` keeps it from voting twice.
        """
        fresh = _State(checkpoint=self.deploy_block - 1)
        try:
            data = json.loads(self.state_path.read_text())
            checkpoint = int(data["checkpoint"])
            recent = [(int(n), str(h)) for n, h in data.get("recent", [])]
        except FileNotFoundError:
            return fresh
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DpkiError(f"damaged validator state {self.state_path}: {exc}") from None
        if data.get("chain") != self.chain:
            log.warning(
                "checkpoint %s (block %d) belongs to another chain %s; this one is %s: "
                "starting again from block %d",
                self.state_path,
                checkpoint,
                data.get("chain", "(not recorded)"),
                self.chain,
                self.deploy_block,
            )
            return fresh
        return _State(checkpoint=checkpoint, recent=recent)

    def _save_state(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "checkpoint": self.state.checkpoint,
                    "recent": self.state.recent,
                    "chain": self.chain,
                }
            )
        )
        tmp.replace(self.state_path)

    # ------------------------------------------------------------------ decisions

    def _member(self, account: str) -> Member | None:
        if account not in self._members:
            member = self.registry.member_of(account)
            self._members[account] = member
            if member is not None:  # its organization names it: no look-up needed for that
                self._by_org.setdefault(member.organization, member.address)
        return self._members[account]

    def prefetch(self, events: list[Event]) -> None:
        """Read what deciding these submissions needs from the ledger in batches: whether
        their keys are compromised, and their submitters (so that ``decide`` asks nothing
        more for a certificate naming its submitter's organization)."""
        keys = [bytes(e.args["keyHash"]) for e in events]
        self._compromised.update(zip(keys, self.registry.compromised_keys(keys), strict=True))
        for event in events:
            self._member(str(event.args["submitter"]))

    def _member_named(self, organization: str) -> str | None:
        if organization not in self._by_org:
            self._by_org[organization] = self.registry.member_by_organization(organization)
        return self._by_org[organization]

    def _key_compromised(self, key_hash: bytes) -> bool:
        if key_hash not in self._compromised:
            self._compromised[key_hash] = self.registry.compromised_key(key_hash) is not None
        return self._compromised[key_hash]

    def _forget_ledger_facts(self) -> None:
        self._members.clear()
        self._by_org.clear()
        self._compromised.clear()
        self._parsed.clear()

    def _parse(self, cert_id: bytes, der: bytes) -> CertificateFacts:
        """Parse a submission's DER once a step (the issuer index and the decision share it);
        ``cert_id`` must be its SHA-256."""
        found = self._parsed.get(cert_id)
        if found is None:
            try:
                found = parse_certificate(der, name="0x" + cert_id.hex())
            except ParseError as exc:
                found = exc
            self._parsed[cert_id] = found
        if isinstance(found, ParseError):
            raise found
        return found

    def _index_issuers(self, events: list[Event], submitted: dict[bytes, Event]) -> None:
        """Apply the range's events to the issuer index; submissions that parse as anything
        but a CA certificate never enter it, so they are left out (parsed once, here)."""
        not_ca = set()
        for cert_id, event in submitted.items():
            der = bytes(event.args["der"])
            if hashlib.sha256(der).digest() != cert_id:
                continue
            try:
                if not self._parse(cert_id, der).ca:
                    not_ca.add(cert_id)
            except ParseError:
                not_ca.add(cert_id)
        self.issuers.apply(
            e
            for e in events
            if e.name != "CertificateSubmitted" or bytes(e.args["certId"]) not in not_ca
        )

    @staticmethod
    def _reject(cert_id: bytes, code: str) -> Vote:
        return Vote(cert_id, False, (code,), REJECTION_REASONS[code])

    def _vouching(self, f: CertificateFacts, submitter: str) -> str | None:
        """Return a rejection code when the active ledger CA that issued ``f`` may not vouch
        for it or the submitter is not entitled to it; None when it may.

        By default a CA vouches only for its owner's organization: a certificate naming
        another member's organization needs that member's (or a quorum's) authorisation of
        the CA on the ledger. It is registered by the CA's owner or by the member it names.
        """
        if f.self_issued:
            return None
        issuer = self._signing_issuer(f)
        if issuer is None or issuer.owner is None or issuer.cert_id is None:
            return None  # the policy already judged an issuer that is not on the ledger
        named = normalize_organization(f.subject_organization)
        member = self._member_named(named) if named else None
        if member is not None and member != issuer.owner:
            if not self.registry.is_issuer_authorized(issuer.cert_id, organization_hash(named)):
                return "ISSUER_NOT_AUTHORIZED"
            if submitter in (member, issuer.owner):
                return None
            return "NOT_ENTITLED"
        return None if submitter == issuer.owner else "NOT_ENTITLED"

    def _signing_issuer(self, f: CertificateFacts) -> IssuerCandidate | None:
        for candidate in self.issuers(f.certificate):
            if candidate.active and verifies_under(f.certificate, candidate.certificate):
                return candidate
        return None

    def decide(self, event: Event, at: datetime) -> Vote:
        """Return the vote on one ``CertificateSubmitted`` event."""
        args = event.args
        cert_id = bytes(args["certId"])
        der = bytes(args["der"])
        if hashlib.sha256(der).digest() != cert_id:  # the contract computes it: never expected
            return Vote(cert_id, False, ("SUBMISSION_MISMATCH",), SUBMISSION_MISMATCH)
        try:
            f = self._parse(cert_id, der)
        except ParseError as exc:
            log.info("%s", exc)
            return Vote(cert_id, False, ("MALFORMED",), _MALFORMED)
        mismatches = []
        if (args["notBefore"], args["notAfter"]) != validity_seconds(f):
            mismatches.append("window")
        if bytes(args["keyHash"]) != f.spki_sha256:
            mismatches.append("keyHash")
        if bytes(args["orgHash"]) != organization_hash(f.subject_organization):
            mismatches.append("orgHash")
        if mismatches:
            log.info("0x%s: declared %s disagree with the DER", cert_id.hex(), "+".join(mismatches))
            return Vote(cert_id, False, ("SUBMISSION_MISMATCH",), SUBMISSION_MISMATCH)
        submitter = str(args["submitter"])
        member = self._member(submitter)
        if member is None or not member.is_submitter:
            # its submission can never activate (the contract refuses): say so on the ledger
            return self._reject(cert_id, "SUBMITTER_NOT_ACTIVE")
        if self._key_compromised(f.spki_sha256):
            return self._reject(cert_id, "KEY_COMPROMISED")
        try:
            verdict = evaluate(
                f,
                organization=member.organization,
                at=at,
                issuers=self.issuers,
                policy=self.policy,
            )
            vouching = self._vouching(f, member.address) if verdict.ok else None
        except ParseError:
            return Vote(cert_id, False, ("MALFORMED",), _MALFORMED)
        if vouching is not None:
            return self._reject(cert_id, vouching)
        if verdict.ok:
            return Vote(cert_id, True)
        codes = verdict.codes
        return Vote(cert_id, False, codes, REJECTION_REASONS[codes[0]])

    def _decide_one(self, event: Event, at: datetime) -> Vote:
        """Decide one submission; an unexpected error in deciding it rejects it as MALFORMED.

        Ledger errors propagate (the step is retried); anything else is a fault of this
        one item (bytes nobody foresaw): it is logged with its traceback and rejected, and
        the node goes on with the others.
        """
        try:
            return self.decide(event, at)
        except ChainError:
            raise
        except Exception:
            cert_id = bytes(event.args["certId"])
            log.exception("0x%s: deciding failed; rejecting it as MALFORMED", cert_id.hex())
            return Vote(cert_id, False, ("MALFORMED",), _MALFORMED)

    # ------------------------------------------------------------------ loop

    def _headers(self, numbers: list[int]) -> list[dict[str, Any] | None]:
        return list(
            self.registry.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        )

    def _rewind_if_reorganized(self) -> None:
        """Go back to the newest kept checkpoint still on the chain when the chain moved."""
        recent = self.state.recent
        if not recent or recent[-1][0] != self.state.checkpoint:
            return
        headers = self._headers([n for n, _ in recent])
        still = [
            (n, h)
            for (n, h), header in zip(recent, headers, strict=True)
            if header is not None and header["hash"] == h
        ]
        if len(still) == len(recent):
            return
        # each hash commits to its ancestors: the ones still there are a prefix, and the
        # newest of them is the fork point
        keep = still[-1] if still else None
        back_to = keep[0] if keep else self.deploy_block - 1
        log.warning(
            "chain reorganized below block %d: deciding again from block %d",
            self.state.checkpoint,
            back_to + 1,
        )
        self.state.recent = recent[: len(still)] if keep else []
        self.state.checkpoint = back_to
        self.state.reorgs += 1
        self.drop_in_flight()
        self._save_state()

    def drop_in_flight(self) -> None:
        """Forget the votes in flight and go back to the checkpoint (after a reorganization, a
        vote refused or a fault): what they decided is read and decided again, and what of
        it was mined meanwhile is skipped by ``hasVoted``."""
        self._in_flight.clear()
        self._voting.clear()
        self.issuers.next_block = min(self.issuers.next_block, self.state.checkpoint + 1)

    def step(self) -> int:
        """Decide every submission in confirmed blocks after those already decided and send
        the votes without waiting for them; return how many were decided.

        The votes of earlier steps that are mined by now move the checkpoint first.
        """
        self._rewind_if_reorganized()
        self._collect()
        head = self.registry.block_number()
        safe = head - self.confirmations
        self.metrics.backlog_blocks.set(max(0, safe - self.state.checkpoint))
        tail = self._in_flight[-1] if self._in_flight else None
        last = tail.end if tail else self.state.checkpoint
        if safe <= last or len(self._in_flight) >= _MAX_IN_FLIGHT:
            return 0
        end = min(safe, last + self.log_range)
        start = last + 1
        self._forget_ledger_facts()
        if self.issuers.next_block < start:
            self.issuers.refresh(start - 1)
        before = self._headers([end, *([tail.end] if tail else [])])
        # every event of the range in one read: submissions, the issuer index, revocations
        events = self.registry.events(start, end)
        after = self._headers([end])[0]
        if before[0] is None or after is None or before[0]["hash"] != after["hash"]:
            return 0  # the chain moved while the range was read: read it again
        if tail and (before[1] is None or before[1]["hash"] != tail.block_hash):
            log.warning("chain reorganized under votes in flight: back to block %d", last)
            self.drop_in_flight()
            return 0
        submitted = {
            bytes(e.args["certId"]): e for e in events if e.name == "CertificateSubmitted"
        }  # an id registered again (after a rejection) in the same range: its last one
        if self._voting & submitted.keys():
            return 0  # registered again while our vote on it is in flight: after that vote
        self._index_issuers(events, submitted)
        self.issuers.next_block = end + 1
        self._report_compromised_keys(events)
        at = (
            self.clock()
            if self.clock is not None
            else datetime.fromtimestamp(int(after["timestamp"], 16), UTC)
        )
        records = dict(zip(submitted, self.registry.statuses(list(submitted)), strict=True))
        pending = [c for c, r in records.items() if r.status is Status.PENDING]
        # hasVoted is asked only where someone voted (no vote at all: not ours either)
        asked = [c for c in pending if records[c].endorsements + records[c].rejections]
        voted = {
            c
            for c, done in zip(
                asked, self.registry.have_voted(asked, self.account.address), strict=True
            )
            if done
        }
        undecided = [submitted[c] for c in pending if c not in voted]
        self.prefetch(undecided)
        decisions = [self._decide_one(event, at) for event in undecided]
        self.metrics.backlog.set(len(self._voting) + len(decisions))
        renewals = {
            cert_id for cert_id, e in submitted.items() if bytes(e.args["replaces"]) != bytes(32)
        }
        # the votes name the block the range was read up to: they count only on this chain
        anchor = (end, bytes.fromhex(str(after["hash"])[2:]))
        votes = self._send_votes(decisions, renewals, anchor)
        self._in_flight.append(_InFlight(end, str(after["hash"]), votes))
        self._voting.update(d.cert_id for d in decisions)
        self._collect()  # a chain that mines at once (anvil): checkpoint in the same step
        return len(decisions)

    def _collect(self) -> None:
        """Move the checkpoint over the oldest ranges whose votes are all mined (one look,
        no waiting); a vote that reverted raises its custom error."""
        while self._in_flight:
            oldest = self._in_flight[0]
            receipts = self.registry.settled([tx for _, tx in oldest.votes])
            if any(r is None for r in receipts):
                return
            self._record(oldest.votes, [r for r in receipts if r is not None])
            self._in_flight.pop(0)
            for chunk, _tx in oldest.votes:
                self._voting.difference_update(d.cert_id for d in chunk)
            self.state.checkpoint = oldest.end
            self.state.recent = [*self.state.recent, (oldest.end, oldest.block_hash)][
                -_KEEP_HASHES:
            ]
            self._save_state()
            self.metrics.backlog.set(len(self._voting))
            self.metrics.last_block.set(oldest.end)

    def flush(self, timeout: float = 60.0, poll: float = 0.05) -> bool:
        """Wait until the votes in flight are mined and the checkpoint moved over them;
        return False when some are still in flight after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self._in_flight:
            self._collect()
            if not self._in_flight:
                break
            if time.monotonic() > deadline:
                return False
            time.sleep(poll)
        return True

    def _report_compromised_keys(self, events: list[Event]) -> None:
        """List on the ledger the keys of certificates revoked for keyCompromise in the range
        (anyone may; every validator does, so that the list never depends on one member)."""
        for event in events:
            args = event.args
            if event.name != "CertificateStatusChanged":
                continue
            if args["status"] != Status.REVOKED or args["reason"] != _KEY_COMPROMISE:
                continue
            cert_id = bytes(args["certId"])
            der = self.registry.submitted_der(cert_id, self.deploy_block)
            if der is None:
                continue
            try:
                self.registry.report_key_compromise(self.account, der).wait()
                log.info("listed the key of 0x%s as compromised", cert_id.hex())
            except ContractError as exc:  # e.g. bytes that do not parse that far
                log.warning("could not list the key of 0x%s: %s", cert_id.hex(), exc)

    def _send_votes(
        self, decisions: list[Vote], renewals: set[bytes], anchor: Anchor
    ) -> list[tuple[list[Vote], PendingTx]]:
        """Send the votes in batches without waiting for them, anchored to the newest block
        the decisions read; return them with their transactions. Endorsements carry a
        computed gas bound (no estimate, see :mod:`dpki.chain.gas`); rejections, rarer, are
        estimated."""
        pending = []
        endorse = [d for d in decisions if d.endorse]
        reject = [d for d in decisions if not d.endorse]
        for i in range(0, len(endorse), self.batch_size):
            chunk = endorse[i : i + self.batch_size]
            renewing = sum(d.cert_id in renewals for d in chunk)
            tx = self.registry.endorse_batch(
                self.account,
                [d.cert_id for d in chunk],
                gas=endorse_batch_gas(len(chunk), renewing, anchored=True),
                anchor=anchor,
            )
            pending.append((chunk, tx))
        for i in range(0, len(reject), self.batch_size):
            chunk = reject[i : i + self.batch_size]
            tx = self.registry.reject_batch(
                self.account,
                [d.cert_id for d in chunk],
                [d.reason_code for d in chunk],
                anchor=anchor,
            )
            pending.append((chunk, tx))
        return pending

    def _record(self, votes: list[tuple[list[Vote], PendingTx]], receipts: list[Receipt]) -> None:
        for (chunk, _tx), receipt in zip(votes, receipts, strict=True):
            for d in chunk:
                log.info(
                    "decided 0x%s %s tx 0x%s block %d",
                    d.cert_id.hex(),
                    d.label,
                    receipt.tx_hash.hex(),
                    receipt.block_number,
                )
                self.state.decided += 1
                code = d.codes[0] if d.codes else ("OK" if d.endorse else "UNSPECIFIED")
                self.metrics.decisions.labels("endorse" if d.endorse else "reject", code).inc()
                if d.endorse:
                    self.state.endorsed += 1
                else:
                    self.state.rejected += 1

    def run(self, stop: threading.Event, poll: float = 0.25, max_backoff: float = 30.0) -> None:
        """Follow the ledger until ``stop`` is set; retry with back-off on RPC outages."""
        backoff = poll
        log.info(
            "validator %s following %s from block %d",
            self.account.address,
            self.registry.address,
            self.state.checkpoint + 1,
        )
        while not stop.is_set():
            try:
                done = self.step()
                backoff = poll
            except RpcUnavailable as exc:
                log.warning("ledger unreachable (%s); retrying in %.1f s", exc, backoff)
                self.metrics.errors.labels("ledger_unreachable").inc()
                self.metrics.retries.inc()
                stop.wait(backoff)
                backoff = min(max_backoff, backoff * 2)
                continue
            except StaleAnchor as exc:
                # the block our votes were decided on was reorganized away: nothing is wrong,
                # what it held is read and decided again on the chain as it is now
                log.info("votes decided on a replaced block (%s); deciding again", exc)
                self.metrics.errors.labels("stale_anchor").inc()
                self.drop_in_flight()
                continue
            except ChainError as exc:
                # a vote refused (e.g. a race with another validator): re-read and retry
                log.warning("vote failed (%s); re-reading in %.1f s", exc, backoff)
                self.metrics.errors.labels("vote_failed").inc()
                self.metrics.retries.inc()
                self.drop_in_flight()
                self.registry.resync_nonce(self.account.address)
                stop.wait(backoff)
                backoff = min(max_backoff, backoff * 2)
                continue
            except Exception:
                # a fault of ours, not of one item (those are decided in step): log it and
                # keep the node up, retrying with back-off, rather than die
                log.exception("step failed; retrying in %.1f s", backoff)
                self.metrics.errors.labels("step_failed").inc()
                self.metrics.retries.inc()
                self.drop_in_flight()
                self.registry.resync_nonce(self.account.address)
                stop.wait(backoff)
                backoff = min(max_backoff, backoff * 2)
                continue
            if done == 0:
                stop.wait(poll)
        try:  # let the checkpoint move over the votes already sent
            self.flush(timeout=10.0)
        except DpkiError as exc:
            log.warning("votes in flight at stop: %s", exc)
        log.info(
            "validator stopped at block %d after %d decisions",
            self.state.checkpoint,
            self.state.decided,
        )
