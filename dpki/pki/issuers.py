"""Issuer look-ups: certificates on the ledger by subject (the bytes come from submission
events), and candidate issuer keys by subject name hash for the inquiry index."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from dpki.chain.registry import Registry, Status
from dpki.pki.policy import IssuerCandidate, IssuerLookup
from dpki.pki.x509 import verifies_under

__all__ = ["IssuerKeys", "LedgerIssuers", "chain_lookups"]

_CHUNK = 5_000
_DER = Encoding.DER


class LedgerIssuers:
    """An issuer look-up over every certificate submitted to the registry.

    It follows ``CertificateSubmitted`` events (``refresh``) and indexes certificates by
    subject; a look-up returns the candidates with their current ledger status.
    """

    def __init__(self, registry: Registry, from_block: int) -> None:
        self.registry = registry
        self.next_block = from_block
        self._by_subject: dict[x509.Name, list[tuple[bytes, x509.Certificate]]] = {}

    def refresh(self, to_block: int | None = None) -> int:
        """Index submissions up to ``to_block`` (default: head); return how many were new."""
        head = self.registry.block_number() if to_block is None else to_block
        added = 0
        while self.next_block <= head:
            end = min(head, self.next_block + _CHUNK - 1)
            for event in self.registry.events(self.next_block, end, ["CertificateSubmitted"]):
                self.add(bytes(event.args["certId"]), bytes(event.args["der"]))
                added += 1
            self.next_block = end + 1
        return added

    def add(self, cert_id: bytes, der: bytes) -> None:
        """Index one certificate (bytes that do not parse are ignored: never an issuer)."""
        try:
            cert = x509.load_der_x509_certificate(der)
            subject = cert.subject
        except ValueError:
            return
        self._by_subject.setdefault(subject, []).append((cert_id, cert))

    def __call__(self, certificate: x509.Certificate) -> list[IssuerCandidate]:
        """Return ledger certificates whose subject is ``certificate``'s issuer."""
        found = []
        for cert_id, cert in self._by_subject.get(certificate.issuer, []):
            if cert.public_bytes(_DER) == certificate.public_bytes(_DER):
                continue
            record = self.registry.status_of(cert_id)
            found.append(
                IssuerCandidate(
                    cert,
                    active=record.status is Status.ACTIVE,
                    cert_id=cert_id,
                    owner=record.submitter,
                )
            )
        return found


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

    def issuer_of(self, der: bytes, issuer_name_sha1: str) -> tuple[str, str] | None:
        """Return the key hashes (sha1, sha256) of the candidate whose key signed ``der``."""
        options = self._by_name.get(issuer_name_sha1)
        if not options:
            return None
        child = x509.load_der_x509_certificate(der)
        for cid, (cand, key_sha1, key_sha256) in options.items():
            if not isinstance(cand, x509.Certificate):
                cand = x509.load_der_x509_certificate(cand)
                options[cid] = (cand, key_sha1, key_sha256)
            if verifies_under(child, cand):
                return key_sha1, key_sha256
        return None
