"""Validator node: re-verify every submission from the ledger's bytes and vote on-chain.

For each ``CertificateSubmitted`` event it takes the DER from the event data (never from the
submitter), checks that the submitter-supplied fields (validity window, SPKI hash,
organization hash) agree with the DER, runs the policy with issuer look-ups against the
ledger and the submitting member's organization, then endorses or rejects with a reason code.
Votes go out in batches. The checkpoint (last block fully decided) is saved after the votes
are mined, so a restart re-reads at most one range and ``hasVoted`` prevents a second vote.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from dpki.chain.registry import Event, Member, Registry, Status
from dpki.errors import ChainError, ContractError, DpkiError, ParseError, RpcUnavailable
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
            f = parse_certificate(der, name="0x" + cert_id.hex())
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
        self.issuers.next_block = min(self.issuers.next_block, back_to + 1)
        self._save_state()

    def step(self) -> int:
        """Decide every submission in confirmed blocks after the checkpoint; return how many."""
        self._rewind_if_reorganized()
        head = self.registry.block_number()
        safe = head - self.confirmations
        self.metrics.backlog_blocks.set(max(0, safe - self.state.checkpoint))
        if safe <= self.state.checkpoint:
            return 0
        end = min(safe, self.state.checkpoint + self.log_range)
        start = self.state.checkpoint + 1
        self._forget_ledger_facts()
        self._report_compromised_keys(start, end)
        before = self._headers([end])[0]
        self.issuers.refresh(end)
        # an id registered again (after a rejection) in the same range: its last submission
        events = list(
            {
                bytes(e.args["certId"]): e
                for e in self.registry.events(start, end, ["CertificateSubmitted"])
            }.values()
        )
        after = self._headers([end])[0]
        if before is None or after is None or before["hash"] != after["hash"]:
            return 0  # the chain moved while the range was read: read it again
        at = (
            self.clock()
            if self.clock is not None
            else datetime.fromtimestamp(int(after["timestamp"], 16), UTC)
        )
        ids = [bytes(e.args["certId"]) for e in events]
        statuses = self.registry.statuses(ids)
        voted = self.registry.have_voted(ids, self.account.address)
        self.prefetch(events)
        decisions = [
            self._decide_one(event, at)
            for event, record, done in zip(events, statuses, voted, strict=True)
            if record.status is Status.PENDING and not done
        ]
        self.metrics.backlog.set(len(decisions))
        self._vote(decisions)
        self.state.checkpoint = end
        self.state.recent = [*self.state.recent, (end, str(after["hash"]))][-_KEEP_HASHES:]
        self._save_state()
        self.metrics.backlog.set(0)
        self.metrics.last_block.set(end)
        self.metrics.backlog_blocks.set(max(0, safe - end))
        return len(decisions)

    def _report_compromised_keys(self, start: int, end: int) -> None:
        """List on the ledger the keys of certificates revoked for keyCompromise in the range
        (anyone may; every validator does, so that the list never depends on one member)."""
        for event in self.registry.events(start, end, ["CertificateStatusChanged"]):
            args = event.args
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

    def _vote(self, decisions: list[Vote]) -> None:
        pending = []
        endorse = [d for d in decisions if d.endorse]
        reject = [d for d in decisions if not d.endorse]
        for i in range(0, len(endorse), self.batch_size):
            chunk = endorse[i : i + self.batch_size]
            tx = self.registry.endorse_batch(self.account, [d.cert_id for d in chunk])
            pending.append((chunk, tx))
        for i in range(0, len(reject), self.batch_size):
            chunk = reject[i : i + self.batch_size]
            tx = self.registry.reject_batch(
                self.account, [d.cert_id for d in chunk], [d.reason_code for d in chunk]
            )
            pending.append((chunk, tx))
        # a vote lost with a dropped block is cast again: the checkpoint moves only after
        # the votes are mined, and a reorganization below it sends the validator back
        receipts = self.registry.wait_settled([tx for _, tx in pending], ride_out=False)
        for (chunk, _tx), receipt in zip(pending, receipts, strict=True):
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
                self.metrics.backlog.dec()
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
            except ChainError as exc:
                # a vote refused (e.g. a race with another validator): re-read and retry
                log.warning("vote failed (%s); re-reading in %.1f s", exc, backoff)
                self.metrics.errors.labels("vote_failed").inc()
                self.metrics.retries.inc()
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
                self.registry.resync_nonce(self.account.address)
                stop.wait(backoff)
                backoff = min(max_backoff, backoff * 2)
                continue
            if done == 0:
                stop.wait(poll)
        log.info(
            "validator stopped at block %d after %d decisions",
            self.state.checkpoint,
            self.state.decided,
        )
