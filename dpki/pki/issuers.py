"""Issuer look-ups: certificates the consortium activated on the ledger (the bytes come from
submission events, the status from the events that change it), and candidate issuer keys by
subject name hash for the inquiry index.

Only certificates the consortium activated can vouch for others. A submission enters the
issuer index the first time the ledger says it is ACTIVE and stays there with its current
status (so a leaf of a revoked CA is told ``ISSUER_NOT_ACTIVE``, not ``UNKNOWN_ISSUER``);
pending and rejected submissions never enter it, whatever they claim to be. A look-up is
done in memory: candidates are matched by subject, then by key identifier (the leaf's
authorityKeyIdentifier against the issuer's subjectKeyIdentifier) and at most
:data:`MAX_CANDIDATES` are returned, so deciding one certificate costs no RPC and bounded
work however many look-alikes anyone submitted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from cryptography import x509

from dpki.chain.registry import Event, Registry, Status
from dpki.errors import DpkiError, ParseError
from dpki.pki.bulk import Job, ec_key_der, ecdsa_job, verify_jobs
from dpki.pki.der import Layout, Unsupported, read_layout
from dpki.pki.keys import verifies_under_layout
from dpki.pki.policy import IssuerCandidate, IssuerLookup, authority_key_identifier
from dpki.pki.x509 import load_certificate, parse_certificate, verifies_under

__all__ = [
    "BULK_CANDIDATES",
    "MAX_CANDIDATES",
    "Candidate",
    "IssuerKeys",
    "LedgerIssuers",
    "LinkPlan",
    "chain_lookups",
]

#: most issuer candidates one look-up returns (each costs a signature check)
MAX_CANDIDATES: Final = 8
#: candidates per certificate whose bulk checks the index makes up front (the rest, look-alikes
#: listed before a certificate's issuer, round by round only while it is still undecided)
BULK_CANDIDATES: Final = 8

_CHUNK: Final = 5_000


@dataclass
class _Entry:
    """A CA certificate from the ledger and its last known status."""

    cert_id: bytes
    certificate: x509.Certificate
    subject_key_identifier: bytes | None
    submitter: str
    status: Status


class LedgerIssuers:
    """An issuer look-up over the CA certificates the consortium activated.

    ``refresh`` follows the registry's events: ``CertificateSubmitted`` events whose bytes
    parse (through :func:`dpki.x509.parse_certificate`) as a CA certificate wait for their
    activation; events that change the status of a waiting or indexed certificate update
    it (from the event's ``status`` field, or by one batched ``statusOf`` read for events
    that carry none).
    """

    def __init__(self, registry: Registry, from_block: int) -> None:
        self.registry = registry
        self.next_block = from_block
        self._waiting: dict[bytes, _Entry] = {}
        self._known: dict[bytes, _Entry] = {}
        self._by_subject: dict[x509.Name, list[_Entry]] = {}

    def refresh(self, to_block: int | None = None) -> int:
        """Follow events up to ``to_block`` (default: head); return how many were read."""
        head = self.registry.block_number() if to_block is None else to_block
        read = 0
        while self.next_block <= head:
            end = min(head, self.next_block + _CHUNK - 1)
            events = self.registry.events(self.next_block, end)
            self.apply(events)
            read += len(events)
            self.next_block = end + 1
        return read

    def apply(self, events: Iterable[Event]) -> None:
        """Apply registry events in ledger order."""
        reread: set[bytes] = set()
        for event in events:
            raw_id = event.args.get("certId")
            if not isinstance(raw_id, bytes | bytearray):
                continue
            cert_id = bytes(raw_id)
            if event.name == "CertificateSubmitted":
                self._submitted(cert_id, bytes(event.args["der"]), str(event.args["submitter"]))
            elif cert_id in self._waiting or cert_id in self._known:
                status = event.args.get("status")
                if isinstance(status, int):
                    self._set_status(cert_id, Status(status))
                else:  # an event that does not say the status: ask the ledger, once
                    reread.add(cert_id)
        if reread:
            ids = sorted(reread)
            for cert_id, record in zip(ids, self.registry.statuses(ids), strict=True):
                self._set_status(cert_id, record.status)

    def _submitted(self, cert_id: bytes, der: bytes, submitter: str) -> None:
        if cert_id in self._known:
            return
        try:
            f = parse_certificate(der, name="0x" + cert_id.hex())
        except ParseError:
            return  # bytes that do not parse are never an issuer (validators reject them)
        if not f.ca:
            return
        self._waiting[cert_id] = _Entry(
            cert_id, f.certificate, f.subject_key_identifier, submitter, Status.PENDING
        )

    def _set_status(self, cert_id: bytes, status: Status) -> None:
        entry = self._known.get(cert_id)
        if entry is not None:
            entry.status = status
            return
        entry = self._waiting.get(cert_id)
        if entry is None or status is Status.PENDING:
            return
        del self._waiting[cert_id]
        if status is Status.ACTIVE:  # the consortium vouched for it: it may now issue
            entry.status = status
            self._known[cert_id] = entry
            self._by_subject.setdefault(entry.certificate.subject, []).append(entry)

    def __call__(self, certificate: x509.Certificate) -> list[IssuerCandidate]:
        """Return activated ledger CAs that may have issued ``certificate`` (no RPC).

        Candidates have ``certificate``'s issuer as subject; when ``certificate`` has an
        authorityKeyIdentifier only those whose subjectKeyIdentifier equals it count
        (then those without one). Active ones come first; at most MAX_CANDIDATES.
        """
        entries = self._by_subject.get(certificate.issuer)
        if not entries:
            return []
        aki = authority_key_identifier(certificate)
        if aki is not None:
            matched = [e for e in entries if e.subject_key_identifier == aki]
            entries = matched or [e for e in entries if e.subject_key_identifier is None]
        own = certificate.tbs_certificate_bytes
        ordered = sorted(
            (e for e in entries if e.certificate.tbs_certificate_bytes != own),
            key=lambda e: e.status is not Status.ACTIVE,
        )
        return [
            IssuerCandidate(
                e.certificate,
                active=e.status is Status.ACTIVE,
                cert_id=e.cert_id,
                owner=e.submitter,
            )
            for e in ordered[:MAX_CANDIDATES]
        ]


def chain_lookups(*lookups: IssuerLookup | None) -> IssuerLookup | None:
    """Return one look-up that asks each given one in turn (None when none is given)."""
    present = [lookup for lookup in lookups if lookup is not None]
    if len(present) < 2:
        return present[0] if present else None

    def both(certificate: x509.Certificate) -> list[IssuerCandidate]:
        return [candidate for lookup in present for candidate in lookup(certificate)]

    return both


class IssuerKeys:
    """Candidate issuers by subject name hash, parsed once, for signature checks.

    The inquiry index uses it to find which certificate's key signed another (OCSP CertIDs
    name the issuer by its key hash).
    """

    def __init__(self) -> None:
        self._by_name: dict[str, dict[str, tuple[Any, str, str]]] = {}

    def add(self, values: dict[str, Any]) -> None:
        """Add a certificate (a row's values) as a possible issuer."""
        if values.get("key_sha1") and values.get("subject_name_sha1"):
            self._by_name.setdefault(values["subject_name_sha1"], {})[values["id"]] = (
                values["der"],
                values["key_sha1"],
                values["key_sha256"],
            )

    def issuer_of(
        self, der: bytes | x509.Certificate, issuer_name_sha1: str, layout: Layout | None = None
    ) -> tuple[str, str] | None:
        """Return the key hashes (sha1, sha256) of the candidate whose key signed ``der``
        (the DER, or the certificate already parsed from it; ``layout``: where its parts are,
        when its names were read from its DER)."""
        return self.issuers_of([(der, issuer_name_sha1, layout)], bulk=False)[0]

    def issuers_of(
        self,
        children: Sequence[tuple[bytes | x509.Certificate, str, Layout | None]],
        *,
        bulk: bool = True,
    ) -> list[tuple[str, str] | None]:
        """Return :meth:`issuer_of` for each (certificate, issuer name hash, layout): the
        same answers. With ``bulk``, the ECDSA signatures among them are verified first, all
        at once off the interpreter lock (:mod:`dpki.pki.bulk`); the rest, and any left
        undecided, as :meth:`issuer_of` does, candidate by candidate in order."""
        return self.plan(children, bulk=bulk).decide(verify_jobs)

    def plan(
        self,
        children: Sequence[tuple[bytes | x509.Certificate, str, Layout | None]],
        *,
        bulk: bool = True,
    ) -> LinkPlan:
        """Return how :meth:`issuers_of` decides for ``children``: ``jobs`` are the bulk checks
        of each certificate's first :data:`BULK_CANDIDATES` candidates, which the caller may
        have verified while it does other work (``decide`` takes what verifies them)."""
        plan = LinkPlan()
        issuer_keys: dict[int, bytes | None] = {}  # id(candidate) -> ec_key_der
        for der, name, layout in children:
            options = self.candidates(name)
            if options:
                try:  # both parsed when indexed (rows with a parse error never get here)
                    child = der if isinstance(der, x509.Certificate) else load_certificate(der)
                except DpkiError:
                    options = []
            if not options:
                plan.children.append(None)
                continue
            jobs: list[Job | None] = []
            for issuer, subject, _, _ in options:
                job = None
                if bulk and layout is not None and subject is not None:
                    key = issuer_keys.get(id(issuer), b"")
                    if key == b"":
                        key = issuer_keys[id(issuer)] = ec_key_der(issuer)
                    job = ecdsa_job(child, layout, key, subject)
                jobs.append(job)
            plan.children.append((child, layout, options, jobs))
            plan.jobs += [job for job in jobs[:BULK_CANDIDATES] if job is not None]
        return plan

    def candidates(self, issuer_name_sha1: str) -> list[Candidate]:
        """Return the candidates named ``issuer_name_sha1``, each parsed once (those that do
        not parse are dropped)."""
        options = self._by_name.get(issuer_name_sha1)
        if not options:
            return []
        out: list[Candidate] = []
        for cid, (cand, key_sha1, key_sha256) in list(options.items()):
            if not isinstance(cand, tuple):
                try:
                    parsed = load_certificate(cand)
                except DpkiError:
                    del options[cid]
                    continue
                cand = (parsed, _subject_bytes(cand))
                options[cid] = (cand, key_sha1, key_sha256)
            out.append((cand[0], cand[1], key_sha1, key_sha256))
        return out


#: a candidate issuer: its certificate, its subject as encoded (None: not a layout the DER
#: reader knows) and its key hashes (sha1, sha256)
Candidate: TypeAlias = tuple[x509.Certificate, bytes | None, str, str]


@dataclass
class LinkPlan:
    """The signature checks :meth:`IssuerKeys.issuers_of` makes for some certificates: per
    certificate its candidates in order, each with its bulk check (None: checked through
    ``cryptography``), and the bulk checks asked first (``jobs``)."""

    jobs: list[Job] = field(default_factory=list)
    #: per certificate: (certificate, layout, candidates, their bulk checks), None when it
    #: has no candidate
    children: list[
        tuple[x509.Certificate, Layout | None, list[Candidate], list[Job | None]] | None
    ] = field(default_factory=list)

    def decide(
        self, verify: Callable[[list[Job]], list[bool | None]]
    ) -> list[tuple[str, str] | None]:
        """Return the key hashes of each certificate's issuer (None: none of its candidates
        signed it): the first candidate in order whose key verifies its signature.

        ``verify`` answers bulk checks (None: undecided, checked here through
        ``cryptography``): ``jobs`` first, then, round by round, the next candidate of each
        certificate still undecided. A certificate stops at the first candidate that signed
        it, so look-alikes listed after its issuer cost it at most the first round."""
        known = dict(zip(self.jobs, verify(self.jobs) if self.jobs else [], strict=True))
        found: list[tuple[str, str] | None] = [None] * len(self.children)
        at = [0] * len(self.children)  # the candidate each certificate is at
        waiting = [n for n, child in enumerate(self.children) if child is not None]
        while waiting:
            ask: list[Job] = []
            still = []
            for n in waiting:
                child = self.children[n]
                assert child is not None  # see waiting
                certificate, layout, options, jobs = child
                k = at[n]
                while k < len(options):
                    job = jobs[k]
                    if job is not None and job not in known:
                        ask.append(job)  # asked in the next round
                        still.append(n)
                        break
                    issuer, subject, key_sha1, key_sha256 = options[k]
                    signed = known[job] if job is not None else None
                    if signed is None:
                        if layout is not None and subject is not None:
                            signed = verifies_under_layout(certificate, layout, issuer, subject)
                        else:
                            signed = verifies_under(certificate, issuer)
                    if signed:
                        found[n] = key_sha1, key_sha256
                        break
                    k += 1
                at[n] = k
            if ask:
                known.update(zip(ask, verify(ask), strict=True))
            waiting = still
        return found


def _subject_bytes(der: bytes) -> bytes | None:
    """Return a certificate's subject as encoded (None: not a layout the DER reader knows)."""
    try:
        return read_layout(der).subject
    except (Unsupported, IndexError, ValueError):
        return None
