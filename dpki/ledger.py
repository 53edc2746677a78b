"""Read certificates back from the ledger: the bytes come from submission events."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from dpki.policy import IssuerCandidate, IssuerLookup
from dpki.registry import Registry, Status

__all__ = ["LedgerIssuers", "chain_lookups"]

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
