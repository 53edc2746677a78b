"""No byte string on the ledger stops a node (issue 10, item 1).

A real chain with two validator processes, an indexer process and an inquiry node
(`dpki serve`): a submitter puts generated and mutated DERs on the ledger (hypothesis bytes,
bit flips and truncations of good certificates, the version-5 certificate that cryptography
refuses with ``InvalidVersion``, length fields claiming gigabytes). None of the processes
dies, every submission is decided, a good certificate submitted afterwards activates, and
the inquiry node answers (JSON, web page, OCSP where a client can build a request) for
every one of them; so do the commands that read issuers from the ledger (`dpki submit`,
`check`, `renew`, `status`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from e2e import ValidatorProcess, dpki_cmd, private_devnet, run_cli, wait_until
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inquiry_helpers import free_port, served

from dpki.chain.deployment import Deployment
from dpki.chain.keys import dev_account
from dpki.chain.registry import Registry, Status, Submission
from dpki.dev.devices import make_ca, make_device
from dpki.errors import ParseError
from dpki.pki.codes import REJECTION_REASONS
from dpki.pki.x509 import parse_certificate
from dpki.submission import submission_for

VENDOR, OPERATOR, CA_ORG = "Vendor A", "Operator B", "CA C"
MALFORMED = REJECTION_REASONS["MALFORMED"]
_START = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
#: the good certificates every mutation starts from: a device, a CA and a leaf it issued
_CA = make_ca(VENDOR, "Fuzz CA")
SEEDS = {
    "device": make_device(VENDOR, "fuzz-seed", not_before=_START).der,
    "ca": _CA.der,
    "leaf": make_device(VENDOR, "fuzz-leaf", not_before=_START, issuer=_CA).der,
}


# -- the hostile corpus ------------------------------------------------------------------


def der_headers(der: bytes) -> list[int]:
    """Return the offset of every DER header in ``der`` (descending into SEQUENCE/SET/[n])."""
    found: list[int] = []

    def walk(pos: int, end: int) -> None:
        while pos + 2 <= end:
            found.append(pos)
            tag, length, start = der[pos], der[pos + 1], pos + 2
            if length & 0x80:
                count = length & 0x7F
                length = int.from_bytes(der[start : start + count], "big")
                start += count
            if tag & 0x20:  # constructed: its content is more elements
                walk(start, min(end, start + length))
            pos = start + length

    walk(0, len(der))
    return found


def with_version(der: bytes, version: int) -> bytes:
    """Return ``der`` with the TBSCertificate version INTEGER set to ``version`` (0 = v1)."""
    at = der.index(bytes([0xA0, 0x03, 0x02, 0x01]))
    return der[: at + 4] + bytes([version]) + der[at + 5 :]


def with_length(der: bytes, header: int, length_bytes: bytes) -> bytes:
    """Return ``der`` with the length octets of the element at ``header`` replaced."""
    first = der[header + 1]
    end = header + 2 + (first & 0x7F if first & 0x80 else 0)
    return der[: header + 1] + length_bytes + der[end:]


def flip(der: bytes, bit: int) -> bytes:
    """Return ``der`` with one bit flipped."""
    data = bytearray(der)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


HUGE_LENGTHS = (b"\x84\xff\xff\xff\xff", b"\x88" + b"\xff" * 8, b"\x80", b"\x81\x00", b"\xff")


def corpus() -> list[tuple[str, bytes]]:
    """Return named hostile DERs, each a fixed mutation of a good certificate."""
    out = [("version-5", with_version(SEEDS["device"], 4))]
    out += [(f"version-{v + 1}", with_version(SEEDS["leaf"], v)) for v in (0, 3, 255)]
    for name, seed in SEEDS.items():
        headers = der_headers(seed)
        out += [
            (f"{name}-length-{h}-{n}", with_length(seed, h, huge))
            for h in headers[:: max(1, len(headers) // 6)]
            for n, huge in enumerate(HUGE_LENGTHS[:2])
        ]
        out += [(f"{name}-cut-{n}", seed[:n]) for n in (1, 2, 4, len(seed) // 2, len(seed) - 1)]
        out += [(f"{name}-flip-{b}", flip(seed, b)) for b in range(5, len(seed) * 8, 331)]
    out.append(("junk-20k", hashlib.sha256(b"junk").digest() * 640))
    out.append(("nested-40k", b"\x30\x84\x00\x00\x9c\x40" + b"\x30\x80" * 20_000))
    return list({der: (name, der) for name, der in out if der}.values())


@st.composite
def hostile_der(draw: st.DrawFn) -> bytes:
    """Draw bytes a hostile submitter might put on the ledger."""
    seed = SEEDS[draw(st.sampled_from(sorted(SEEDS)))]
    kind = draw(st.sampled_from(["bytes", "flip", "cut", "length", "version", "splice"]))
    if kind == "bytes":
        return draw(st.binary(min_size=1, max_size=600))
    if kind == "flip":
        bits = draw(st.lists(st.integers(0, len(seed) * 8 - 1), min_size=1, max_size=4))
        for bit in bits:
            seed = flip(seed, bit)
        return seed
    if kind == "cut":
        return seed[: draw(st.integers(1, len(seed) - 1))]
    if kind == "length":
        header = draw(st.sampled_from(der_headers(seed)))
        length = draw(st.sampled_from(HUGE_LENGTHS) | st.binary(min_size=1, max_size=5))
        return with_length(seed, header, length)
    if kind == "version":
        return with_version(seed, draw(st.integers(0, 255)))
    at = draw(st.integers(0, len(seed)))
    return seed[:at] + draw(st.binary(min_size=1, max_size=64)) + seed[at:]


def submission(der: bytes) -> Submission:
    """Return what a submitter declares for ``der``: derived when it parses, filler when not."""
    try:
        declared = submission_for(parse_certificate(der))
    except ParseError:
        declared = None
    if declared is None or not (0 <= declared.not_before < declared.not_after < 2**40):
        declared = Submission(der, 0, 2**39, bytes(32), bytes(32))
    return declared


# -- the network ---------------------------------------------------------------------------


@dataclass
class Net:
    """A devnet with two validators, an indexer and an inquiry node, all subprocesses."""

    deployment: Deployment
    registry: Registry
    submitter: LocalAccount
    validators: list[ValidatorProcess]
    indexer: subprocess.Popen[bytes]
    url: str
    dir: Path

    def alive(self) -> None:
        """Fail unless every node process still runs."""
        for v in self.validators:
            assert v.proc is not None and v.proc.poll() is None, v.log_text()[-3000:]
        assert self.indexer.poll() is None, (self.dir / "indexer.log").read_text()[-3000:]

    def put(self, ders: list[bytes]) -> list[bytes]:
        """Submit ``ders`` not on the ledger yet (in batches); return every id."""
        ids = [hashlib.sha256(d).digest() for d in ders]
        fresh = [
            submission(d)
            for d, record in zip(ders, self.registry.statuses(ids), strict=True)
            if record.status is Status.NONE
        ]
        for start in range(0, len(fresh), 25):
            self.registry.submit_batch(self.submitter, fresh[start : start + 25]).wait()
        return ids

    def decided(self, ids: list[bytes], timeout: float = 120.0) -> list[Status]:
        """Wait until no id is pending; return the statuses."""

        def done() -> bool:
            self.alive()
            return all(r.status is not Status.PENDING for r in self.registry.statuses(ids))

        wait_until(done, timeout, "every submission decided")
        return [r.status for r in self.registry.statuses(ids)]

    def answers(self, cert_id: bytes, status: Status) -> None:
        """Fail unless the inquiry node shows ``cert_id`` with ``status`` (JSON and page)."""
        cid = cert_id.hex()

        def shown() -> bool:
            self.alive()
            answer = requests.get(f"{self.url}/status/{cid}", timeout=10)
            return answer.ok and answer.json()["status"] == status.label

        wait_until(shown, 60, f"the inquiry node to show {cid} {status.label}")
        record = requests.get(f"{self.url}/certificates/{cid}", timeout=10)
        assert record.ok and record.json()["id"] == cid
        page = requests.get(f"{self.url}/ui/certificates/{cid}", timeout=10)
        assert page.ok and cid in page.text


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    tmp = tmp_path_factory.mktemp("hostile")
    with private_devnet(tmp) as deployment:
        validators = [ValidatorProcess(deployment, org, tmp).start() for org in (OPERATOR, CA_ORG)]
        db = f"sqlite:///{tmp / 'index.sqlite'}"
        log = (tmp / "indexer.log").open("wb")
        indexer = subprocess.Popen(
            dpki_cmd("indexer", "run", "--db", db, "--poll", "0.1",
                     "--deployment", str(deployment.path)),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with served(
                ["--db", db, "--deployment", str(deployment.path)], free_port(), tmp
            ) as url:
                yield Net(
                    deployment,
                    deployment.registry_client(),
                    dev_account(0),  # Vendor A: a member acting alone
                    validators,
                    indexer,
                    url,
                    tmp,
                )
        finally:
            indexer.terminate()
            indexer.wait(20)
            log.close()
            for v in validators:
                v.stop()
    for v in validators:
        assert "Traceback" not in v.log_text(), v.log_text()[-3000:]
    assert "Traceback" not in (tmp / "indexer.log").read_text()


# -- the tests -----------------------------------------------------------------------------


def test_parse_boundary_turns_every_corpus_entry_into_facts_or_parse_error() -> None:
    for name, der in corpus():
        try:
            parse_certificate(der, name=name)
        except ParseError as exc:
            assert name in str(exc)


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
@settings(max_examples=300, deadline=None)
@given(der=hostile_der())
def test_parse_boundary_raises_nothing_but_parse_error(der: bytes) -> None:
    with contextlib.suppress(ParseError):  # anything else fails the test
        parse_certificate(der)


def test_hostile_corpus_is_decided_and_nodes_go_on(net: Net, tmp_path: Path) -> None:
    named = corpus()
    ids = net.put([der for _, der in named])
    statuses = net.decided(ids)
    by_name = {name: status for (name, _), status in zip(named, statuses, strict=True)}
    assert by_name["version-5"] is Status.REJECTED
    assert net.registry.status_of(ids[0]).reason == MALFORMED
    assert set(statuses) <= {Status.REJECTED, Status.ACTIVE}

    # a validator started afresh re-reads everything from the deployment block and goes on
    fresh = ValidatorProcess(net.deployment, VENDOR, tmp_path).start()
    try:
        good = make_device(VENDOR, "after-the-junk", not_before=_START)
        (tmp_path / "good.pem").write_bytes(good.pem)
        sent = run_cli("submit", str(tmp_path / "good.pem"), "--as", VENDOR, "--wait",
                       "--timeout", "120", "--json", deployment=net.deployment)  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        good_id = hashlib.sha256(good.der).digest()
        assert net.registry.status_of(good_id).status is Status.ACTIVE
        head = net.registry.block_number()
        wait_until(
            lambda: (
                fresh.state.exists() and json.loads(fresh.state.read_text())["checkpoint"] >= head
            ),
            120,
            "the fresh validator to read the whole ledger",
        )
        assert fresh.proc is not None and fresh.proc.poll() is None, fresh.log_text()
    finally:
        assert fresh.stop() == 0, fresh.log_text()[-3000:]
    assert "Traceback" not in fresh.log_text()
    net.alive()

    # the inquiry node answers for every entry, good or not, and OCSP for the good one
    for cert_id, status in zip(ids, statuses, strict=True):
        net.answers(cert_id, status)
    net.answers(good_id, Status.ACTIVE)
    assert _ocsp(net.url, good.certificate) == ocsp.OCSPCertStatus.GOOD
    asked = 0
    for _, der in named:  # OCSP for every entry a client can still build a request for
        try:
            certificate = x509.load_der_x509_certificate(der)
            request = _ocsp_request(certificate)
        except Exception:  # the client cannot ask about these; nothing to send
            continue
        answer = requests.post(f"{net.url}/ocsp", data=request, timeout=10)
        assert answer.status_code == 200
        ocsp.load_der_ocsp_response(answer.content)  # a well-formed OCSP response
        asked += 1
    assert asked >= 10
    net.alive()


def test_commands_that_read_ledger_issuers_still_work(net: Net, tmp_path: Path) -> None:
    net.put([der for _, der in corpus()[:12]])
    ca = _CA
    leaf = make_device(VENDOR, "cli-leaf", not_before=_START, issuer=ca)
    old = make_device(VENDOR, "cli-old", not_before=_START)
    new = make_device(VENDOR, "cli-new", not_before=_START)
    for name, device in (("ca", ca), ("leaf", leaf), ("old", old), ("new", new)):
        (tmp_path / f"{name}.pem").write_bytes(device.pem)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = run_cli(*args, deployment=net.deployment)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    checked = cli("check", str(tmp_path / "leaf.pem"), "--org", VENDOR, "--json")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    codes = [v["code"] for v in json.loads(checked.stdout)["certificates"][0]["violations"]]
    assert codes == ["UNKNOWN_ISSUER"]
    sent = cli("submit", str(tmp_path / "old.pem"), "--as", VENDOR, "--wait", "--json")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    renewed = cli("renew", str(tmp_path / "old.pem"), str(tmp_path / "new.pem"), "--as", VENDOR)
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    version5 = hashlib.sha256(with_version(SEEDS["device"], 4)).hexdigest()
    shown = cli("status", version5, "--json")
    assert shown.returncode == 1, shown.stderr  # not valid: rejected
    assert json.loads(shown.stdout)["status"] == "rejected"
    net.alive()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(der=hostile_der())
def test_generated_bytes_are_decided_and_shown(net: Net, der: bytes) -> None:
    [cert_id] = net.put([der])
    [status] = net.decided([cert_id])
    assert status in (Status.REJECTED, Status.ACTIVE)
    net.answers(cert_id, status)


def _ocsp_request(certificate: x509.Certificate) -> bytes:
    """Return a DER OCSP request for a self-issued ``certificate``."""
    return (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certificate, certificate, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )


def _ocsp(url: str, certificate: x509.Certificate) -> ocsp.OCSPCertStatus:
    request = _ocsp_request(certificate)
    answer = requests.post(
        f"{url}/ocsp",
        data=request,
        headers={"Content-Type": "application/ocsp-request"},
        timeout=10,
    )
    return ocsp.load_der_ocsp_response(answer.content).certificate_status
