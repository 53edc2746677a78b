"""An RFC 6960 OCSP responder over the index, with RFC 5019 pre-produced responses.

Certificates are found by what OCSP clients send: the hash algorithm, the issuer name hash,
the issuer key hash and the serial number (for a self-signed certificate the issuer is the
certificate itself). Answers:

* active -> ``good``;
* suspended -> ``revoked`` with reason certificateHold;
* revoked -> ``revoked`` with the ledger's RFC 5280 reason and the block time of the change;
* superseded (renewed) -> ``revoked`` with reason superseded;
* rejected by the validators -> ``revoked`` (no reason: it was never accepted);
* pending, or not in the index -> ``unknown``.

A response to a request without a nonce is signed once and served from memory until the
certificate's status changes or half its validity has passed (RFC 6960 2.5, RFC 5019); a
request with a nonce gets a freshly signed response that echoes it. A request that does not
decode gets the malformedRequest response, never an HTTP error.

Responses are DER built from pre-encoded parts (:class:`_Encoder`): the responder id, the
signature algorithm and the certificate are encoded once; per answer only the CertID, the
status, the times and the nonce are, and the tbsResponseData bytes are signed directly.
Building them with ``OCSPResponseBuilder`` cost about as much again as the signature.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dpki.errors import ConfigError
from dpki.inquiry.store import Store
from dpki.pki.codes import CRL_REASONS, Status
from dpki.pki.x509 import spki_key_bits

__all__ = [
    "MALFORMED",
    "MALFORMED_ANSWER",
    "OCSP_LABELS",
    "CertState",
    "OcspAnswer",
    "OcspResponder",
    "ResponderIdentity",
    "StatusIndex",
    "cert_status_label",
    "load_or_create_identity",
]

log = logging.getLogger("dpki.inquiry.ocsp")

MALFORMED = ocsp.OCSPResponseBuilder.build_unsuccessful(
    ocsp.OCSPResponseStatus.MALFORMED_REQUEST
).public_bytes(serialization.Encoding.DER)
INTERNAL_ERROR = ocsp.OCSPResponseBuilder.build_unsuccessful(
    ocsp.OCSPResponseStatus.INTERNAL_ERROR
).public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class OcspAnswer:
    """A DER OCSP response and what HTTP caches need to know of it (RFC 5019 6.2)."""

    der: bytes
    #: unix seconds of thisUpdate and nextUpdate; None for an unsuccessful response
    this_update: int | None = None
    next_update: int | None = None
    #: the response echoes a nonce: it answers one request only
    nonce: bool = False

    @property
    def cacheable(self) -> bool:
        """Say whether an HTTP cache may keep this response (signed, no nonce)."""
        return self.this_update is not None and not self.nonce

    def cache_headers(self, now: float, fresh_for: int) -> list[tuple[bytes, bytes]]:
        """Return RFC 5019 6.2 caching headers: a pre-produced response stays fresh until the
        responder would sign it again (``fresh_for`` seconds after thisUpdate), never past
        nextUpdate; one that echoes a nonce or reports an error is not to be stored."""
        if not self.cacheable or self.this_update is None or self.next_update is None:
            return [(b"cache-control", b"no-store")]
        max_age = max(0, min(self.this_update + fresh_for, self.next_update) - int(now))
        control = b"max-age=%d, public, no-transform, must-revalidate" % max_age
        return [(b"cache-control", control), *self._validators]

    def headers(self, now: float, fresh_for: int) -> list[tuple[bytes, bytes]]:
        """Return the HTTP headers of this answer: content type and length, then the caching
        headers; for a cacheable answer, the same list all through one second."""
        if not self.cacheable:
            return [*self._entity, *self.cache_headers(now, fresh_for)]
        memo = self._memo
        second = int(now)
        if memo[0] != second:
            memo[:] = [second, [*self._entity, *self.cache_headers(now, fresh_for)]]
        headers: list[tuple[bytes, bytes]] = memo[1]
        return headers

    @functools.cached_property
    def _entity(self) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
        return ((b"content-type", _OCSP_RESPONSE), (b"content-length", b"%d" % len(self.der)))

    @functools.cached_property
    def _memo(self) -> list[Any]:
        """[second, the headers of that second]."""
        return [None, None]

    @functools.cached_property
    def _validators(self) -> list[tuple[bytes, bytes]]:
        """Last-Modified, Expires and ETag: worked out once per signed response."""
        assert self.this_update is not None and self.next_update is not None
        return [
            (b"last-modified", _http_date(self.this_update)),
            (b"expires", _http_date(self.next_update)),
            (b"etag", b'"%s"' % hashlib.sha256(self.der).hexdigest()[:32].encode()),
        ]


_OCSP_RESPONSE = b"application/ocsp-response"


def _http_date(ts: int) -> bytes:
    return email.utils.formatdate(ts, usegmt=True).encode()


MALFORMED_ANSWER = OcspAnswer(MALFORMED)
INTERNAL_ERROR_ANSWER = OcspAnswer(INTERNAL_ERROR)

_MAX_CACHE = 200_000
_MAX_BODIES = 20_000
_HOLD = 6  # RFC 5280 certificateHold: a suspension
_SUPERSEDED = 4  # RFC 5280 superseded: a renewal replaced it


def revocation_reason(status: int, reason: int) -> x509.ReasonFlags | None:
    """Return the OCSP revocationReason of a ledger status (None where there is none).

    The names come from :data:`dpki.pki.codes.CRL_REASONS`; ``unspecified`` is left out, as
    RFC 5280 section 5.3.1 advises.
    """
    number = _reason_number(status, reason)
    return None if number is None else x509.ReasonFlags(CRL_REASONS[number])


def _reason_number(status: int, reason: int) -> int | None:
    """Return the RFC 5280 CRLReason number of a ledger status (None: no reason to give)."""
    if status == Status.SUSPENDED:
        number = _HOLD
    elif status == Status.SUPERSEDED:
        number = _SUPERSEDED
    elif status == Status.REVOKED:
        number = reason
    else:
        return None
    name = CRL_REASONS.get(number)
    return None if name in (None, "unspecified") else number


SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class ResponderIdentity:
    """The responder's signing key and certificate."""

    key: SigningKey
    certificate: x509.Certificate
    key_path: Path
    cert_path: Path

    @property
    def pem(self) -> bytes:
        """Return the certificate as PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def load_or_create_identity(
    key_path: Path, cert_path: Path, *, organization: str | None = None, days: int = 825
) -> ResponderIdentity:
    """Load the responder key and certificate, or create both on first start (P-256)."""
    if key_path.exists() != cert_path.exists():
        raise ConfigError(
            f"got only one of {key_path} and {cert_path}; want both responder files or neither"
        )
    if not key_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, "DPKI OCSP responder")]
        if organization:
            attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        name = x509.Name(attrs)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False
            )
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        key_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        key_path.touch(mode=0o600)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        log.info("created OCSP responder key %s and certificate %s", key_path, cert_path)
    try:
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read the responder key/certificate: {exc}") from None
    if not isinstance(loaded, SigningKey):
        raise ConfigError(
            f"{key_path}: want an EC, RSA or Ed25519 private key, got {type(loaded).__name__}"
        )
    if _spki(loaded.public_key()) != _spki(cert.public_key()):
        raise ConfigError(f"{cert_path} does not hold the public key of {key_path}")
    _check_policy(cert, cert_path)
    return ResponderIdentity(loaded, cert, key_path, cert_path)


def _spki(public: Any) -> bytes:
    return bytes(
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _check_policy(cert: x509.Certificate, path: Path) -> None:
    """Refuse a responder certificate the consortium policy would not accept."""
    from dpki.pki.policy import evaluate

    verdict = evaluate(cert, organization=None, at=dt.datetime.now(dt.UTC))
    if not verdict.ok:
        found = "; ".join(f"{v.code}: {v.message}" for v in verdict.violations)
        raise ConfigError(f"{path}: the responder certificate breaks the policy ({found})")


@dataclass(frozen=True)
class CertState:
    """What the responder and the status endpoint need of one certificate."""

    cert_id: str
    serial: int | None
    status: int
    reason: int
    updated_at: int
    not_before: int
    not_after: int


class StatusIndex:
    """An in-memory map of the index's certificates, refreshed when the index changes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.by_id: dict[str, CertState] = {}
        self.by_hash: dict[tuple[str, bytes, int], list[tuple[bytes | None, CertState]]] = {}
        self._generation: str | None = None
        self._revision = 0
        self._lock = threading.Lock()
        self.refreshed_at = 0.0

    def refresh(self) -> set[str] | None:
        """Reload what changed; return changed ids (None: everything changed)."""
        generation = self.store.generation()
        if generation == self._generation:
            self.refreshed_at = time.time()
            return set()
        reorgs = generation.split(":")[1]
        full = self._generation is None or self._generation.split(":")[1] != reorgs
        rows = self.store.ocsp_rows(0 if full else self._revision)
        with self._lock:
            if full:
                self.by_id, self.by_hash = {}, {}
            for r in rows:
                self._put(r)
            self._revision = max([self._revision, *(r["revision"] for r in rows)])
            self._generation = generation
        self.refreshed_at = time.time()
        return None if full else {r["id"] for r in rows}

    def _put(self, r: dict[str, Any]) -> None:
        state = CertState(
            cert_id=r["id"],
            serial=int(r["serial"], 16) if r["serial"] else None,
            status=r["status"],
            reason=r["reason"],
            updated_at=r["updated_at"],
            not_before=r["not_before"],
            not_after=r["not_after"],
        )
        self.by_id[state.cert_id] = state
        if state.serial is None:
            return
        for alg, name_col, key_col in (
            ("sha1", "issuer_name_sha1", "issuer_key_sha1"),
            ("sha256", "issuer_name_sha256", "issuer_key_sha256"),
        ):
            key = (alg, bytes.fromhex(r[name_col]), state.serial)
            entries = [e for e in self.by_hash.get(key, []) if e[1].cert_id != state.cert_id]
            issuer_key = bytes.fromhex(r[key_col]) if r[key_col] else None
            entries.append((issuer_key, state))
            self.by_hash[key] = entries

    def find(self, alg: str, name_hash: bytes, key_hash: bytes, serial: int) -> CertState | None:
        """Return the certificate an OCSP CertID names, or None."""
        entries = self.by_hash.get((alg, name_hash, serial), [])
        # the issuer key must match: a certificate whose issuer is not in the index is unknown
        found = [s for k, s in entries if k == key_hash]
        if not found:
            return None
        # several submissions with the same issuer and serial: the latest change decides
        return max(found, key=lambda s: s.updated_at)


#: what an answer can say: a certificate status, or the error it reports
OCSP_LABELS = ("good", "revoked", "unknown", "malformed", "internal_error")


def _ignore(_label: str) -> None:
    pass


def cert_status_label(state: CertState | None) -> str:
    """Return the OCSP certificate status an answer gives: good, revoked or unknown."""
    if state is None or state.status in (Status.PENDING, Status.NONE):
        return "unknown"
    return "good" if state.status == Status.ACTIVE else "revoked"


class OcspResponder:
    """Answer DER OCSP requests from a :class:`StatusIndex`, signing with ``identity``."""

    def __init__(
        self, index: StatusIndex, identity: ResponderIdentity, *, validity: int = 600
    ) -> None:
        self.index = index
        self.identity = identity
        self.validity = validity
        self._encoder = _Encoder(identity, validity)
        # request DER -> (answer, certificate id or None, re-sign after, status label)
        self._cache: dict[bytes, tuple[OcspAnswer, str | None, float, str]] = {}
        # (hash algorithm, issuer name hash, issuer key hash, serial) -> (the certificate's
        # state, its CertID and certStatus DER, the status label): what a nonce does not change
        self._singles: dict[tuple[str, bytes, bytes, int], tuple[CertState | None, bytes, str]] = {}
        #: told what each answer said: good, revoked, unknown, malformed or internal_error
        self.answered: Callable[[str], None] = _ignore

    def refresh(self) -> None:
        """Pick up index changes and forget the cached responses they make stale."""
        changed = self.index.refresh()
        if changed is None or changed:  # an unknown certificate may be known now
            self._singles = {}
        if changed is None:
            self._cache = {}
        elif changed:
            self._cache = {
                k: v for k, v in self._cache.items() if v[1] is not None and v[1] not in changed
            }

    def respond(self, request_der: bytes) -> bytes:
        """Return the DER OCSP response for a DER request (never raises)."""
        return self.answer(request_der).der

    def answer(self, request_der: bytes) -> OcspAnswer:
        """Return the OCSP answer for a DER request, with its times (never raises)."""
        cached = self._cache.get(request_der)
        if cached is not None and cached[2] > time.time():
            # a status change empties the cache entry: the status it says is the index's
            self.answered(cached[3])
            return cached[0]
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            key = (
                request.hash_algorithm.name,
                request.issuer_name_hash,
                request.issuer_key_hash,
                request.serial_number,
            )
            nonce = None
            for ext in request.extensions:
                value = ext.value
                if type(value) is x509.OCSPNonce:  # what cryptography makes of the nonce
                    nonce = value.nonce
        except Exception:  # whatever does not decode as RFC 6960 says
            self.answered("malformed")
            return MALFORMED_ANSWER
        if key[0] not in _CERT_ID_ALGORITHMS:
            self.answered("malformed")
            return MALFORMED_ANSWER
        try:
            found = self._singles.get(key)
            if found is None:
                if len(self._singles) >= _MAX_CACHE:
                    self._singles.clear()
                state = self.index.find(*key)
                part = _single_part(*key, state)
                found = self._singles[key] = (state, part, cert_status_label(state))
            state = found[0]
            now = int(time.time())
            der = self._encoder.response(found[1], nonce, now)
        except Exception:
            log.exception("cannot build an OCSP response")
            self.answered("internal_error")
            return INTERNAL_ERROR_ANSWER
        self.answered(found[2])
        answer = OcspAnswer(der, now, now + self.validity, nonce is not None)
        if nonce is None:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            self._cache[request_der] = (
                answer,
                state.cert_id if state else None,
                now + self.validity / 2,
                found[2],
            )
        return answer

    def max_age(self) -> int:
        """Return how long a cached (nonce-less) response stays fresh for HTTP caches."""
        return self.validity // 2

    def _sign(
        self,
        algorithm: hashes.HashAlgorithm,
        name_hash: bytes,
        key_hash: bytes,
        serial: int,
        state: CertState | None,
        nonce: bytes | None,
        now: float,
    ) -> bytes:
        """Return a DER OCSPResponse for one CertID in ``state``, signed now."""
        part = _single_part(algorithm.name, name_hash, key_hash, serial, state)
        return self._encoder.response(part, nonce, int(now))


def _single_part(
    algorithm: str, name_hash: bytes, key_hash: bytes, serial: int, state: CertState | None
) -> bytes:
    """Return the start of a SingleResponse: the CertID and the certificate status."""
    if state is None or state.status in (Status.PENDING, Status.NONE):
        cert_status = _UNKNOWN
    elif state.status == Status.ACTIVE:
        cert_status = _GOOD
    else:
        revoked = _generalized_time(state.updated_at)
        number = _reason_number(state.status, state.reason)
        if number is not None:  # [0] EXPLICIT CRLReason (an ENUMERATED)
            revoked += b"\xa0\x03\x0a\x01" + bytes((number,))
        cert_status = _tlv(0xA1, revoked)  # [1] IMPLICIT RevokedInfo
    cert_id = _tlv(
        0x30,
        _CERT_ID_ALGORITHMS[algorithm]
        + _tlv(0x04, name_hash)
        + _tlv(0x04, key_hash)
        + _integer(serial),
    )
    return cert_id + cert_status


# -- DER, pre-encoded where it can be ---------------------------------------------------

_GOOD = b"\x80\x00"  # [0] IMPLICIT NULL
_UNKNOWN = b"\x82\x00"  # [2] IMPLICIT UnknownInfo (NULL)
_CERT_ID_ALGORITHMS = {  # AlgorithmIdentifier with NULL parameters, as cryptography writes
    "sha1": bytes.fromhex("300906052b0e03021a0500"),
    "sha256": bytes.fromhex("300d06096086480165030402010500"),
}
_NONCE_OID = bytes.fromhex("06092b0601050507300102")  # id-pkix-ocsp-nonce
_BASIC_OID = bytes.fromhex("06092b0601050507300101")  # id-pkix-ocsp-basic
_SUCCESSFUL = b"\x0a\x01\x00"  # OCSPResponseStatus successful (ENUMERATED 0)
_SIGNATURE_ALGORITHMS = {  # AlgorithmIdentifier of what _Encoder signs with
    "ec": bytes.fromhex("300a06082a8648ce3d040302"),  # ecdsa-with-SHA256
    "rsa": bytes.fromhex("300d06092a864886f70d01010b0500"),  # sha256WithRSAEncryption
    "ed25519": bytes.fromhex("300506032b6570"),  # id-Ed25519 (RFC 8419)
}


def _tlv(tag: int, content: bytes) -> bytes:
    """Return one DER element: tag, definite length, content."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    octets = (size.bit_length() + 7) // 8
    return bytes((tag, 0x80 | octets)) + size.to_bytes(octets, "big") + content


def _integer(value: int) -> bytes:
    """Return a DER INTEGER (two's complement, minimal octets)."""
    octets = (value if value >= 0 else ~value).bit_length() // 8 + 1
    return _tlv(0x02, value.to_bytes(octets, "big", signed=True))


def _generalized_time(seconds: int) -> bytes:
    """Return a DER GeneralizedTime (UTC, whole seconds)."""
    return _tlv(0x18, time.strftime("%Y%m%d%H%M%SZ", time.gmtime(seconds)).encode())


class _Encoder:
    """Build signed BasicOCSPResponses for one identity from pre-encoded parts."""

    def __init__(self, identity: ResponderIdentity, validity: int) -> None:
        cert = identity.certificate
        key = identity.key
        self.validity = validity
        key_bits = spki_key_bits(_spki(cert.public_key()))
        # [2] EXPLICIT KeyHash: SHA-1 of the responder's subjectPublicKey bits
        self.responder_id = _tlv(0xA2, _tlv(0x04, hashlib.sha1(key_bits).digest()))
        self.certs = _tlv(0xA0, _tlv(0x30, cert.public_bytes(serialization.Encoding.DER)))
        self.sign: Callable[[bytes], bytes]
        if isinstance(key, ec.EllipticCurvePrivateKey):
            ecdsa = ec.ECDSA(hashes.SHA256())
            self.algorithm = _SIGNATURE_ALGORITHMS["ec"]
            self.sign = lambda data: key.sign(data, ecdsa)
        elif isinstance(key, rsa.RSAPrivateKey):
            pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
            self.algorithm = _SIGNATURE_ALGORITHMS["rsa"]
            self.sign = lambda data: key.sign(data, pkcs1, sha256)
        else:
            self.algorithm = _SIGNATURE_ALGORITHMS["ed25519"]
            self.sign = key.sign
        self._second = -1
        self._times = (b"", b"")
        #: content size of the BasicOCSPResponse -> the DER that comes before it
        self._heads: dict[int, bytes] = {}
        #: CertID and status DER -> tbsResponseData content but the extensions, this second
        self._bodies: dict[bytes, bytes] = {}

    def times(self, second: int) -> tuple[bytes, bytes]:
        """Return (producedAt = thisUpdate, [0] EXPLICIT nextUpdate), encoded once a second."""
        if second != self._second:
            self._times = (
                _generalized_time(second),
                _tlv(0xA0, _generalized_time(second + self.validity)),
            )
            self._second = second
            self._bodies = {}
        return self._times

    def response(self, single_part: bytes, nonce: bytes | None, second: int) -> bytes:
        """Return the DER OCSPResponse of one SingleResponse (CertID and status), signed now."""
        produced, next_update = self.times(second)
        # tbsResponseData up to its extensions: the same for every answer on one certificate
        # within a second
        body = self._bodies.get(single_part)
        if body is None:
            if len(self._bodies) >= _MAX_BODIES:
                self._bodies = {}
            single = _tlv(0x30, single_part + produced + next_update)
            body = self._bodies[single_part] = self.responder_id + produced + _tlv(0x30, single)
        if nonce is None:
            tbs = _tlv(0x30, body)
        else:
            extensions = _nonce_extensions(nonce)
            tbs = _head(0x30, len(body) + len(extensions)) + body + extensions
        signature = _tlv(0x03, b"\x00" + self.sign(tbs))
        size = len(tbs) + len(self.algorithm) + len(signature) + len(self.certs)
        head = self._heads.get(size)
        if head is None:
            head = self._heads[size] = _response_head(size)
        return b"".join((head, tbs, self.algorithm, signature, self.certs))


def _head(tag: int, size: int) -> bytes:
    """Return the tag and definite length of a DER element of ``size`` content octets."""
    if size < 0x80:
        return bytes((tag, size))
    octets = (size.bit_length() + 7) // 8
    return bytes((tag, 0x80 | octets)) + size.to_bytes(octets, "big")


def _response_head(size: int) -> bytes:
    """Return what comes before a BasicOCSPResponse's content of ``size`` octets: the
    OCSPResponse and its status, the [0] EXPLICIT responseBytes, its responseType and the
    OCTET STRING holding the basic response, and the basic response's own tag and length."""
    basic = _head(0x30, size)
    octets = _head(0x04, len(basic) + size) + basic
    response_bytes_size = len(_BASIC_OID) + len(octets) + size
    response_bytes = _head(0x30, response_bytes_size) + _BASIC_OID + octets
    tagged_size = len(response_bytes) + size
    tagged = _head(0xA0, tagged_size)
    outer_size = len(_SUCCESSFUL) + len(tagged) + tagged_size
    return _head(0x30, outer_size) + _SUCCESSFUL + tagged + response_bytes


def _nonce_extensions(nonce: bytes) -> bytes:
    """Return [1] EXPLICIT Extensions holding the nonce (an OCTET STRING in the extnValue)."""
    size = len(nonce)
    if size <= 100:  # every length fits one octet
        return (
            bytes((0xA1, size + 19, 0x30, size + 17, 0x30, size + 15))
            + _NONCE_OID
            + bytes((0x04, size + 2, 0x04, size))
            + nonce
        )
    nonce_ext = _tlv(0x30, _NONCE_OID + _tlv(0x04, _tlv(0x04, nonce)))
    return _tlv(0xA1, _tlv(0x30, nonce_ext))
