"""Many ECDSA certificate signatures verified at once, off the interpreter lock.

The indexer links each new certificate to the issuer key that signed it: a thousand P-256
verifications a range at ~43 us each. Through ``cryptography`` each is one Python call that
releases the lock and takes it back; between the index writer's thread and the catch-up's,
that ping-pong kept a second thread from ever helping. Here a whole list goes to OpenSSL in
one call (``dpki.pki._sigcheck``, C), verified by threads that never take the lock.

:func:`ecdsa_job` says what :func:`dpki.pki.keys.verifies_under_layout` would verify when it
comes down to an EC issuer key and ECDSA with SHA-2 over the TBSCertificate as encoded (None:
anything else). :func:`verify_jobs` answers True, False or None (undecided: an OpenSSL error,
or no extension) for each job; None goes back to ``verifies_under_layout``, which decides.
Without the extension (OpenSSL's headers were missing when the package was installed) every
answer is None: the same results, at ``cryptography``'s speed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dpki.pki.der import DECODE_ERRORS, Layout
from dpki.pki.keys import signature_algorithm_of

try:
    from dpki.pki import _sigcheck  # type: ignore[attr-defined]
except ImportError:  # built without OpenSSL's headers
    _sigcheck = None

__all__ = ["AVAILABLE", "THREADS", "Job", "Verifier", "ec_key_der", "ecdsa_job", "verify_jobs"]

#: the C extension is built: jobs are verified by OpenSSL, off the interpreter lock
AVAILABLE: Final = _sigcheck is not None

#: (issuer SubjectPublicKeyInfo DER, digest name, signed bytes, DER signature)
Job: TypeAlias = tuple[bytes, str, bytes, bytes]

#: the digests jobs may name: OpenSSL and cryptography agree on them whatever the system's
#: OpenSSL configuration says about older ones (SHA-1 goes through cryptography)
_DIGESTS: Final = frozenset({"sha224", "sha256", "sha384", "sha512"})

#: threads that verify a long list (the catch-up's own and the index writer's share them)
THREADS: Final = max(1, min(4, os.cpu_count() or 1))
#: fewer jobs than this are verified on one thread
_SPLIT_FROM: Final = 64


def ecdsa_job(
    certificate: x509.Certificate, layout: Layout, issuer_key: bytes | None, issuer_subject: bytes
) -> Job | None:
    """Return the job that decides ``verifies_under_layout(certificate, layout, issuer,
    issuer_subject)`` when that is an ECDSA signature with SHA-2 under an EC key and the
    names are equal byte for byte (None: another case, which ``verifies_under_layout``
    decides itself). ``issuer_key`` is :func:`ec_key_der` of the issuer."""
    if issuer_key is None or layout.issuer != issuer_subject:
        return None
    algorithm = signature_algorithm_of(certificate, layout.signature_algorithm)
    if algorithm is None:
        return None
    parameters = algorithm[2]
    if not isinstance(parameters, ec.ECDSA):
        return None
    digest = parameters.algorithm
    if not isinstance(digest, hashes.HashAlgorithm) or digest.name not in _DIGESTS:
        return None
    return issuer_key, digest.name, layout.tbs, certificate.signature


@lru_cache(maxsize=1024)
def ec_key_der(issuer: x509.Certificate) -> bytes | None:
    """Return ``issuer``'s EC key as cryptography encodes it (None: not an EC key, or not one
    cryptography loads)."""
    try:
        key = issuer.public_key()
    except (*DECODE_ERRORS, IndexError):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def verify_jobs(jobs: Sequence[Job]) -> list[bool | None]:
    """Return, for each job, whether its signature verifies (None: undecided).

    The interpreter lock is released while OpenSSL works, on up to :data:`THREADS` threads."""
    if _sigcheck is None:
        return [None] * len(jobs)
    answers: list[bool | None] = _sigcheck.verify_many(list(jobs), _threads(len(jobs)))
    return answers


class Verifier:
    """Jobs verified on other threads as they are submitted, off the interpreter lock, while
    the caller goes on (it may be parsing the next ones); :meth:`answers` verifies what is
    left on the calling thread too and waits for all of them. By default it leaves the
    caller a core of its own. Without the extension every answer is None. Close it (or
    leave its ``with`` block) to stop its threads."""

    def __init__(self, threads: int = max(1, THREADS - 1)) -> None:
        if not 1 <= threads <= 8:
            raise ValueError(f"threads must be 1 to 8, got {threads}")
        self._count = threads
        self._threads: Any = None  # started with the first jobs
        self._submitted = 0
        self._closed = False

    def submit(self, jobs: Sequence[Job]) -> None:
        """Have ``jobs`` verified after those submitted before."""
        if self._closed:
            raise ValueError("the verifier is closed")
        if not jobs:
            return
        if _sigcheck is not None:
            if self._threads is None:
                self._threads = _sigcheck.Verifier(self._count)
            self._threads.submit(list(jobs))
        self._submitted += len(jobs)

    def answers(self) -> list[bool | None]:
        """Return the answer to every job submitted, in order (verifies what nobody took
        yet, then waits for the rest)."""
        if self._closed:
            raise ValueError("the verifier is closed")
        if self._threads is None:
            return [None] * self._submitted
        answers: list[bool | None] = self._threads.answers()
        return answers

    def close(self) -> None:
        """Stop the threads (once the jobs they took are done)."""
        self._closed = True
        if self._threads is not None:
            self._threads.close()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _threads(jobs: int) -> int:
    return THREADS if jobs >= _SPLIT_FROM else 1
