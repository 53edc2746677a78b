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

from collections.abc import Iterable, Sequence
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
    "MAX_CANDIDATES",
    "Candidate",
    "IssuerKeys",
    "LedgerIssuers",
    "LinkPlan",
    "chain_lookups",
]

#: most issuer candidates one look-up returns (each costs a signature check)
MAX_CANDIDATES: Final = 8

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
        plan = self.plan(children, bulk=bulk)
        return plan.decide(verify_jobs(plan.jobs) if plan.jobs else [])

    def plan(
        self,
        children: Sequence[tuple[bytes | x509.Certificate, str, Layout | None]],
        *,
        bulk: bool = True,
    ) -> LinkPlan:
        """Return what :meth:`issuers_of` verifies in bulk for ``children`` (its ``jobs``) and
        how it then decides: the caller may have the jobs verified while it does other work,
        then call ``decide`` with the answers."""
        plan = LinkPlan()
        issuer_keys: dict[int, bytes | None] = {}  # id(candidate) -> ec_key_der
        for n, (der, name, layout) in enumerate(children):
            options = self.candidates(name)
            if options:
                try:  # both parsed when indexed (rows with a parse error never get here)
                    child = der if isinstance(der, x509.Certificate) else load_certificate(der)
                except DpkiError:
                    options = []
            if not options:
                plan.children.append(None)
                continue
            plan.children.append((child, layout, options))
            if bulk and layout is not None:
                for k, (issuer, subject, _, _) in enumerate(options):
                    key = issuer_keys.get(id(issuer), b"")
                    if key == b"":
                        key = issuer_keys[id(issuer)] = ec_key_der(issuer)
                    job = ecdsa_job(child, layout, key, subject) if subject else None
                    if job is not None:
                        plan.slots[n, k] = len(plan.jobs)
                        plan.jobs.append(job)
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
    """The signature checks :meth:`IssuerKeys.issuers_of` makes for some certificates: the
    ones verified in bulk (``jobs``) and, per certificate, its candidates in order."""

    jobs: list[Job] = field(default_factory=list)
    #: per certificate: (certificate, layout, candidates), None when it has no candidate
    children: list[tuple[x509.Certificate, Layout | None, list[Candidate]] | None] = field(
        default_factory=list
    )
    #: (certificate, candidate) -> its job
    slots: dict[tuple[int, int], int] = field(default_factory=dict)

    def decide(self, answers: Sequence[bool | None]) -> list[tuple[str, str] | None]:
        """Return the key hashes of each certificate's issuer (None: none of its candidates
        signed it), given the answer to each job (None: undecided, verified here)."""
        found: list[tuple[str, str] | None] = []
        for n, child in enumerate(self.children):
            found.append(None)
            if child is None:
                continue
            certificate, layout, options = child
            for k, (issuer, subject, key_sha1, key_sha256) in enumerate(options):
                slot = self.slots.get((n, k))
                signed = answers[slot] if slot is not None else None
                if signed is None:
                    if layout is not None and subject is not None:
                        signed = verifies_under_layout(certificate, layout, issuer, subject)
                    else:
                        signed = verifies_under(certificate, issuer)
                if signed:
                    found[n] = key_sha1, key_sha256
                    break
        return found


def _subject_bytes(der: bytes) -> bytes | None:
    """Return a certificate's subject as encoded (None: not a layout the DER reader knows)."""
    try:
        return read_layout(der).subject
    except (Unsupported, IndexError, ValueError):
        return None
