"""Signatures verified in bulk (dpki.pki.bulk and its C extension), and the issuer links the
index makes with them: the same answers as cryptography, one certificate at a time."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dpki.chain.abi import Event
from dpki.dev.devices import Device, make_ca, make_device
from dpki.inquiry import links as links_module
from dpki.inquiry.schema import BlockRef
from dpki.inquiry.store import Store
from dpki.pki import bulk
from dpki.pki.bulk import Verifier, ec_key_der, ecdsa_job, verify_jobs
from dpki.pki.der import read_layout
from dpki.pki.issuers import BULK_CANDIDATES, IssuerKeys
from dpki.pki.keys import verifies_under
from dpki.pki.x509 import load_certificate, ocsp_hashes

ZERO = bytes(32)


def _resigned(device: Device, by: Any, digest: Any) -> bytes:
    """Return ``device``'s certificate signed again by key ``by`` with ``digest``."""
    c = device.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(c.subject)
        .issuer_name(c.issuer)
        .public_key(c.public_key())
        .serial_number(c.serial_number)
        .not_valid_before(c.not_valid_before_utc)
        .not_valid_after(c.not_valid_after_utc)
    )
    return builder.sign(by, digest).public_bytes(serialization.Encoding.DER)


def _with_signature(der: bytes, signature: bytes) -> bytes:
    """Return ``der`` with its signature BIT STRING replaced (lengths fixed up)."""
    cert = load_certificate(der)
    tbs = cert.tbs_certificate_bytes
    algorithm = der[der.index(tbs) + len(tbs) :]
    algorithm = algorithm[: 2 + algorithm[1]]  # short form: ECDSA's AlgorithmIdentifier
    bits = b"\x00" + signature
    body = tbs + algorithm + b"\x03" + _length(len(bits)) + bits
    return b"\x30" + _length(len(body)) + body


def _length(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else b"\x82" + n.to_bytes(2, "big")


@pytest.fixture(scope="module")
def ca() -> Device:
    return make_ca("Vendor A", "Bulk CA")


@pytest.fixture(scope="module")
def cases(ca: Device) -> list[tuple[str, bytes, Device]]:
    """(what, child DER, the issuer asked about) in many shapes: the answers vary."""
    device = make_device("Vendor A", "B1", issuer=ca)
    other = make_ca("Vendor A", "Bulk CA")  # a look-alike: same name, another key
    p384 = ec.generate_private_key(ec.SECP384R1())
    sig = device.certificate.signature
    out = [
        ("issued", device.der, ca),
        ("look-alike issuer", device.der, other),
        ("self-signed CA", ca.der, ca),
        ("sha384", _resigned(device, ca.key, hashes.SHA384()), ca),
        ("sha512", _resigned(device, ca.key, hashes.SHA512()), ca),
        ("signed by a P-384 key", _resigned(device, p384, hashes.SHA256()), ca),
        (
            "a flipped signature byte",
            _with_signature(device.der, sig[:-1] + bytes([sig[-1] ^ 1])),
            ca,
        ),
        ("a signature one byte short", _with_signature(device.der, sig[:-1]), ca),
        ("a byte after the signature", _with_signature(device.der, sig + b"\x00"), ca),
        ("no signature", _with_signature(device.der, b""), ca),
        ("r = s = 0", _with_signature(device.der, b"\x30\x06\x02\x01\x00\x02\x01\x00"), ca),
    ]
    return out


def test_the_extension_is_built() -> None:
    """`make` installs OpenSSL's headers, so the C extension is there (without it the index
    would still be right, at a third of the speed: this says the build went wrong)."""
    assert bulk.AVAILABLE


def test_bulk_answers_are_cryptographys(cases: list[tuple[str, bytes, Device]]) -> None:
    jobs = []
    want = []
    for what, der, issuer in cases:
        child = load_certificate(der)
        layout = read_layout(der)
        job = ecdsa_job(
            child, layout, ec_key_der(issuer.certificate), read_layout(issuer.der).subject
        )
        assert job is not None, what
        jobs.append(job)
        want.append(verifies_under(child, issuer.certificate))
    assert want.count(True) == 4  # issued, self-signed, sha384, sha512
    # OpenSSL's errors on signatures that are no DER at all are left undecided (None: the
    # caller asks cryptography, which says False); everything else is decided, the same way
    undecided = {
        "a signature one byte short",
        "a byte after the signature",
        "no signature",
    }
    got = verify_jobs(jobs)
    for (what, _, _), answer, expected in zip(cases, got, want, strict=True):
        assert answer == (None if what in undecided else expected), what
    assert [verify_jobs([j])[0] for j in jobs] == got  # one at a time, on one thread
    many = jobs * 40  # long enough to be shared out among threads
    assert verify_jobs(many) == got * 40
    for threads in (1, 3):
        with Verifier(threads) as verifier:
            for start in range(0, len(many), 37):
                verifier.submit(many[start : start + 37])
            assert verifier.answers() == got * 40


def test_what_the_bulk_check_leaves_to_cryptography(ca: Device) -> None:
    """Not an EC issuer key, not ECDSA, names that differ in encoding: no job."""
    device = make_device("Vendor A", "B2", issuer=ca)
    layout = read_layout(device.der)
    subject = read_layout(ca.der).subject
    rsa_ca = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_cert = (
        x509.CertificateBuilder()
        .subject_name(ca.certificate.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(rsa_ca.public_key())
        .serial_number(1)
        .not_valid_before(ca.certificate.not_valid_before_utc)
        .not_valid_after(ca.certificate.not_valid_after_utc)
        .sign(rsa_ca, hashes.SHA256())
    )
    assert ec_key_der(rsa_cert) is None
    assert ecdsa_job(device.certificate, layout, None, subject) is None
    key = ec_key_der(ca.certificate)
    assert ecdsa_job(device.certificate, layout, key, subject + b"\x00") is None
    by_rsa = load_certificate(_resigned(device, rsa_ca, hashes.SHA256()))
    assert (
        ecdsa_job(
            by_rsa, read_layout(by_rsa.public_bytes(serialization.Encoding.DER)), key, subject
        )
        is None
    )


def test_undecided_jobs_and_refused_calls(ca: Device) -> None:
    device = make_device("Vendor A", "B3", issuer=ca)
    key = ec_key_der(ca.certificate)
    assert key is not None
    tbs, sig = device.certificate.tbs_certificate_bytes, device.certificate.signature
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    rsa_der = rsa_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jobs = [
        (key, "sha256", tbs, sig),
        (key + b"\x00", "sha256", tbs, sig),  # a byte after the key
        (key[:-1], "sha256", tbs, sig),  # a key cut short
        (rsa_der, "sha256", tbs, sig),  # not an EC key
        (key, "no-such-digest", tbs, sig),
        (b"", "sha256", tbs, sig),
    ]
    assert verify_jobs(jobs) == [True, None, None, None, None, None]
    with pytest.raises(TypeError):
        verify_jobs([(key, b"sha256", tbs, sig)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        verify_jobs([(key, "sha256", tbs)])  # type: ignore[list-item]
    verifier = Verifier()
    with pytest.raises(TypeError):
        verifier.submit([("not bytes", "sha256", tbs, sig)])  # type: ignore[list-item]
    verifier.submit(jobs[:1])
    assert verifier.answers() == [True]  # a refused submission left nothing behind
    verifier.close()
    verifier.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        verifier.submit(jobs[:1])
    with pytest.raises(ValueError, match="threads"):
        Verifier(0)
    busy = Verifier(2)  # closed with work left: its threads drop it and stop
    busy.submit(jobs[:1] * 3000)
    busy.close()
    with pytest.raises(ValueError, match="closed"):
        busy.answers()


def _keys(*issuers: Device) -> IssuerKeys:
    keys = IssuerKeys()
    for n, issuer in enumerate(issuers):
        hashes_ = ocsp_hashes(issuer.certificate)
        keys.add(dict(hashes_, id=f"{n:064x}", der=issuer.der))
    return keys


def test_issuers_of_many_is_issuer_of_each(ca: Device, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bulk decision picks the candidate that signed, past look-alikes listed first,
    and finds none for a broken signature: as issuer_of, one by one, with or without C."""
    look_alike = make_ca("Vendor A", "Bulk CA")
    stranger = make_ca("Vendor B", "Other CA")
    devices = [make_device("Vendor A", f"M{i}", issuer=ca) for i in range(70)]
    broken = _with_signature(devices[0].der, b"\x30\x06\x02\x01\x01\x02\x01\x01")
    children: list[tuple[bytes | x509.Certificate, str, Any]] = []
    unknown = make_device("Vendor C", "U1", issuer=make_ca("Vendor C", "Unknown CA"))
    for der in [d.der for d in devices] + [broken, unknown.der]:
        cert = load_certificate(der)
        name = ocsp_hashes(cert)["issuer_name_sha1"]
        assert name is not None
        children.append((cert, name, read_layout(der)))
    children.append((devices[1].der, children[1][1], None))  # no layout: the reference path
    keys = _keys(look_alike, stranger, ca)
    one_by_one = [keys.issuer_of(*child) for child in children]
    ca_keys = (ocsp_hashes(ca.certificate)["key_sha1"], ocsp_hashes(ca.certificate)["key_sha256"])
    assert one_by_one == [ca_keys] * 70 + [None, None, ca_keys]
    assert keys.issuers_of(children) == one_by_one
    monkeypatch.setattr(bulk, "_sigcheck", None)
    assert _keys(look_alike, stranger, ca).issuers_of(children) == one_by_one


def _submitted(der: bytes, block: int, log: int) -> Event:
    return Event(
        "CertificateSubmitted",
        {
            "certId": hashlib.sha256(der).digest(),
            "submitter": "0x" + "11" * 20,
            "keyHash": b"\x01" * 32,
            "orgHash": b"\x02" * 32,
            "notBefore": 1,
            "notAfter": 2,
            "replaces": ZERO,
            "der": der,
        },
        block,
        block.to_bytes(32, "big"),
        (block * 100_000 + log).to_bytes(32, "big"),
        log,
    )


def _links(url: str, ranges: list[list[bytes]]) -> dict[str, tuple[str | None, str | None]]:
    """Index the DERs, one range per list; return each certificate's issuer key hashes."""
    store = Store(url)
    try:
        store.bind_registry(1, "0x" + "22" * 20, 1, genesis="00" * 32)
        block = 1
        for ders in ranges:
            events = [_submitted(der, block, n) for n, der in enumerate(ders)]
            ref = BlockRef(block, block.to_bytes(32, "big").hex(), 1_800_000_000 + block)
            store.commit_range(events, {block: ref}, ref)
            block += 1
        with store.engine.connect() as db:
            rows = db.exec_driver_sql(
                "SELECT id, issuer_key_sha1, issuer_key_sha256 FROM certificates"
            ).all()
        return {r[0]: (r[1], r[2]) for r in rows}
    finally:
        store.close()


def test_a_range_links_its_certificates_as_one_at_a_time_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Certificates before their issuer in the same range, a look-alike issuer first, an
    issuer indexed in an earlier range, a broken signature, bytes that are no certificate:
    one range links them as ranges of one certificate each do, with the C extension or
    without."""
    ca = make_ca("Vendor A", "Range CA")
    look_alike = make_ca("Vendor A", "Range CA")
    old_ca = make_ca("Vendor B", "Old CA")
    early = [make_device("Vendor A", f"E{i}", issuer=ca) for i in range(150)]
    late = [make_device("Vendor A", f"L{i}", issuer=ca) for i in range(150)]
    of_old = [make_device("Vendor B", f"O{i}", issuer=old_ca) for i in range(40)]
    broken = _with_signature(late[0].der, b"\x30\x06\x02\x01\x01\x02\x01\x01")
    first = [old_ca.der]
    second = [
        *[d.der for d in early],
        look_alike.der,
        ca.der,
        *[d.der for d in late],
        *[d.der for d in of_old],
        broken,
        # no certificates at all: rows with a parse error, and no harm to the rest
        b"",
        b"\x30",
        b"\x30\x03\x02\x01\x00",
        early[0].der[:200],
        b"\x30\x82\xff\xff" + bytes(64),
    ]
    verified_late: list[int] = []

    def late_verify(jobs: list[Any]) -> list[bool | None]:
        verified_late.append(len(jobs))
        return verify_jobs(jobs)

    monkeypatch.setattr(links_module, "verify_jobs", late_verify)
    together = _links(f"sqlite:///{tmp_path / 'together.sqlite'}", [first, second])
    assert verified_late == []  # every check was made while the range was parsed
    alone = _links(f"sqlite:///{tmp_path / 'alone.sqlite'}", [[der] for der in first + second])
    assert together == alone
    # nothing checked early (as for names only cryptography reads): the same links
    monkeypatch.setattr(links_module.IssuerLinks, "_send", lambda *_: None)
    assert _links(f"sqlite:///{tmp_path / 'late.sqlite'}", [first, second]) == together
    assert sum(verified_late) >= len(early) + len(late) + len(of_old)
    monkeypatch.undo()
    keys = ocsp_hashes(ca.certificate)
    for d in early + late:
        cid = hashlib.sha256(d.der).hexdigest()
        assert together[cid] == (keys["key_sha1"], keys["key_sha256"])
    old_keys = ocsp_hashes(old_ca.certificate)
    for d in of_old:
        assert together[hashlib.sha256(d.der).hexdigest()][0] == old_keys["key_sha1"]
    assert together[hashlib.sha256(broken).hexdigest()] == (None, None)
    monkeypatch.setattr(bulk, "_sigcheck", None)
    without = _links(f"sqlite:///{tmp_path / 'without.sqlite'}", [first, second])
    assert without == together


def test_look_alikes_after_the_issuer_cost_a_bounded_first_round(ca: Device) -> None:
    """A member floods the ledger with CAs named like another's. Listed after the real
    issuer, they cost each certificate no more than BULK_CANDIDATES bulk checks, all in the
    first round; listed before it, the issuer is still found, round by round, and nothing
    is checked for a certificate once its issuer is known."""
    look_alikes = [make_ca("Vendor A", "Bulk CA") for _ in range(20)]
    devices = [make_device("Vendor A", f"F{i}", issuer=ca) for i in range(5)]
    children: list[tuple[bytes | x509.Certificate, str, Any]] = []
    for d in devices:
        name = ocsp_hashes(d.certificate)["issuer_name_sha1"]
        assert name is not None
        children.append((d.certificate, name, read_layout(d.der)))
    want = (ocsp_hashes(ca.certificate)["key_sha1"], ocsp_hashes(ca.certificate)["key_sha256"])
    rounds: list[int] = []

    def counted(jobs: list[Any]) -> list[bool | None]:
        rounds.append(len(jobs))
        return verify_jobs(jobs)

    for issuers, most in (([ca, *look_alikes], BULK_CANDIDATES), ([*look_alikes, ca], 21)):
        rounds.clear()
        plan = _keys(*issuers).plan(children)
        assert plan.decide(counted) == [want] * len(devices)
        assert sum(rounds) == len(devices) * most
        assert rounds[0] == len(devices) * BULK_CANDIDATES
    keys = _keys(*look_alikes, ca)
    assert keys.issuers_of(children) == [keys.issuer_of(*child) for child in children]
