"""Issuer candidates: certificates that may have signed the one being checked.

An :data:`IssuerLookup` gives them for a certificate (:class:`StaticIssuers` from a fixed
set, such as ``--issuer`` files; :class:`dpki.pki.issuers.LedgerIssuers` from the ledger).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, TypeAlias

from cryptography import x509

__all__ = [
    "IssuerCandidate",
    "IssuerLookup",
    "StaticIssuers",
    "authority_key_identifier",
    "is_ca_issuer",
]


@dataclass(frozen=True, slots=True)
class IssuerCandidate:
    """A certificate that may have issued the one being checked.

    ``active`` is the ledger status: ``True`` active, ``False`` on the ledger but not
    active, ``None`` not from the ledger (a file given by the user, trusted as given).
    """

    certificate: x509.Certificate
    active: bool | None = None
    #: ledger id and owning member (submitter) of a candidate from the ledger
    cert_id: bytes | None = None
    owner: str | None = None


#: given the certificate being checked, return the candidate issuers (maybe none)
IssuerLookup: TypeAlias = Callable[[x509.Certificate], Sequence[IssuerCandidate]]


class StaticIssuers:
    """Look issuers up in a fixed set of certificates (for example ``--issuer`` files).

    A candidate's subject DN must equal the child's issuer DN; when the child has an
    authorityKeyIdentifier, candidates whose subjectKeyIdentifier equals it come first.
    """

    def __init__(
        self,
        issuers: Iterable[x509.Certificate | IssuerCandidate],
        *,
        active: bool | None = None,
    ) -> None:
        self._by_subject: dict[x509.Name, list[tuple[IssuerCandidate, bytes | None]]] = {}
        for item in issuers:
            candidate = item if isinstance(item, IssuerCandidate) else IssuerCandidate(item, active)
            ski = _subject_key_identifier(candidate.certificate)
            self._by_subject.setdefault(candidate.certificate.subject, []).append((candidate, ski))

    def __call__(self, certificate: x509.Certificate) -> list[IssuerCandidate]:
        """Return the candidates whose subject is ``certificate``'s issuer."""
        found = self._by_subject.get(certificate.issuer, [])
        if len(found) < 2:
            return [c for c, _ in found]
        aki = authority_key_identifier(certificate)
        return [c for c, ski in sorted(found, key=lambda e: aki is None or e[1] != aki)]


_EXTENSION_ERRORS: Final = (
    x509.ExtensionNotFound,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    ValueError,
    TypeError,
)


@lru_cache(maxsize=1024)
def is_ca_issuer(certificate: x509.Certificate) -> bool:
    """Say whether ``certificate`` has basicConstraints cA=TRUE and keyUsage keyCertSign."""
    try:
        extensions = certificate.extensions
        bc = extensions.get_extension_for_class(x509.BasicConstraints).value
        ku = extensions.get_extension_for_class(x509.KeyUsage).value
    except _EXTENSION_ERRORS:
        return False
    return bc.ca and ku.key_cert_sign


def _subject_key_identifier(certificate: x509.Certificate) -> bytes | None:
    try:
        extensions = certificate.extensions
        return extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except _EXTENSION_ERRORS:
        return None


def authority_key_identifier(certificate: x509.Certificate) -> bytes | None:
    """Return the keyIdentifier of ``certificate``'s authorityKeyIdentifier (None: none)."""
    try:
        extensions = certificate.extensions
        aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except _EXTENSION_ERRORS:
        return None
    return aki.key_identifier
