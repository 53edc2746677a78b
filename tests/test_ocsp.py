"""The OCSP responder under `dpki serve`, asked by the real `openssl ocsp` client and by hand."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.x509 import ocsp
from inquiry_helpers import Node, b64_path, ocsp_request, put_on_ledger

from dpki.dev.devices import make_ca, make_device

OPENSSL = "/usr/bin/openssl"
OCSPTOOL = "/usr/bin/ocsptool"  # Debian's gnutls-bin (`make ocsptool` installs it)


def _responder_pem(node: Node) -> Path:
    path = node.dir / "responder.pem"
    if not path.exists():
        response = requests.get(node.url + "/ocsp/responder.pem", timeout=5)
        assert response.status_code == 200
        path.write_text(response.text)
    return path


def openssl_ocsp(node: Node, name: str, *extra: str, issuer: str | None = None) -> tuple[str, str]:
    """Ask with `openssl ocsp` as an operator would; return (stdout, stderr).

    The issuer is the certificate itself unless ``issuer`` names another file in the node."""
    pem = str(node.pem(name))
    issuer_pem = str(node.pem(issuer)) if issuer else pem
    done = subprocess.run(
        [
            OPENSSL,
            "ocsp",
            "-url",
            node.url + "/ocsp",
            *extra,
            "-issuer",
            issuer_pem,
            "-cert",
            pem,
            "-VAfile",
            str(_responder_pem(node)),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


@pytest.mark.parametrize(
    ("name", "answer", "reason"),
    [
        ("good", "good", None),
        ("revoked", "revoked", "keyCompromise"),
        ("suspended", "revoked", "certificateHold"),
        ("superseded", "revoked", "superseded"),
        ("rejected", "revoked", None),
        ("pending", "unknown", None),
        ("unknown", "unknown", None),
    ],
)
def test_openssl_client_gets_signed_answers(
    node: Node, name: str, answer: str, reason: str | None
) -> None:
    out, err = openssl_ocsp(node, name)
    assert "Response verify OK" in err
    assert f"{node.pem(name)}: {answer}" in out
    if reason:
        assert f"Reason: {reason}" in out
    if answer == "revoked":
        assert "Revocation Time:" in out


def test_sha256_cert_ids_and_no_nonce_work(node: Node) -> None:
    out, err = openssl_ocsp(node, "good", "-sha256", "-no_nonce")
    assert "Response verify OK" in err
    assert ": good" in out
    out, _ = openssl_ocsp(node, "revoked", "-sha256")
    assert ": revoked" in out


def test_get_form_serves_pre_produced_responses_and_nonces_fresh(node: Node) -> None:
    der = ocsp_request(node, "good")
    first = requests.get(f"{node.url}/ocsp/{b64_path(der)}", timeout=5)
    second = requests.get(f"{node.url}/ocsp/{b64_path(der)}", timeout=5)
    assert first.headers["content-type"] == "application/ocsp-response"
    assert "max-age=" in first.headers["cache-control"]
    assert first.content == second.content  # signed once, served again
    parsed = ocsp.load_der_ocsp_response(first.content)
    assert parsed.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert parsed.next_update_utc is not None
    answers = []
    for nonce in (os.urandom(16), os.urandom(16)):
        body = requests.post(
            node.url + "/ocsp",
            data=ocsp_request(node, "good", nonce=nonce),
            timeout=5,
            headers={"content-type": "application/ocsp-request"},
        ).content
        response = ocsp.load_der_ocsp_response(body)
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        assert echoed == nonce
        answers.append(body)
    assert answers[0] != answers[1]


def _http_time(value: str) -> dt.datetime:
    return email.utils.parsedate_to_datetime(value)


def test_get_and_post_carry_the_same_rfc5019_caching_headers(node: Node) -> None:
    """RFC 5019 6.2: Last-Modified is thisUpdate, Expires nextUpdate, max-age no later than
    nextUpdate, an ETag; POST answers carry the same; nonce and error answers are not stored."""
    der = ocsp_request(node, "revoked")
    got = requests.get(f"{node.url}/ocsp/{b64_path(der)}", timeout=5)
    posted = requests.post(node.url + "/ocsp", data=der, timeout=5)
    assert got.content == posted.content  # one pre-produced answer
    response = ocsp.load_der_ocsp_response(got.content)
    assert response.next_update_utc is not None
    for answer in (got, posted):
        headers = answer.headers
        assert _http_time(headers["last-modified"]) == response.this_update_utc
        assert _http_time(headers["expires"]) == response.next_update_utc
        control = headers["cache-control"].split(", ")
        assert control[1:] == ["public", "no-transform", "must-revalidate"]
        max_age = int(control[0].removeprefix("max-age="))
        assert 0 < max_age <= (response.next_update_utc - _http_time(headers["date"])).seconds
        assert headers["etag"] == got.headers["etag"] and headers["etag"].startswith('"')
    head = requests.head(f"{node.url}/ocsp/{b64_path(der)}", timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == got.headers["etag"]
    with_nonce = ocsp_request(node, "revoked", nonce=os.urandom(16))
    for answer in (
        requests.post(node.url + "/ocsp", data=with_nonce, timeout=5),
        requests.get(f"{node.url}/ocsp/{b64_path(with_nonce)}", timeout=5),
        requests.post(node.url + "/ocsp", data=b"junk", timeout=5),
        requests.get(f"{node.url}/ocsp/junk", timeout=5),
    ):
        assert answer.headers["cache-control"] == "no-store"
        assert "etag" not in answer.headers and "expires" not in answer.headers


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("GET", "/ocsp", "POST"), ("PUT", "/ocsp", "POST"), ("POST", "/ocsp/MAA=", "GET, HEAD")],
)
def test_other_methods_get_405_with_allow(node: Node, method: str, path: str, allow: str) -> None:
    answer = requests.request(method, node.url + path, timeout=5)
    assert answer.status_code == 405 and answer.headers["allow"] == allow
    assert answer.json()["error"]


@pytest.mark.parametrize(
    "how",
    ["post-garbage", "post-empty", "post-huge", "get-not-base64", "get-base64-garbage"],
)
def test_malformed_requests_get_malformed_request(node: Node, how: str) -> None:
    if how.startswith("post"):
        body = {
            "post-garbage": b"\x30\x03\x02\x01",
            "post-empty": b"",
            "post-huge": b"\x30" * 100_000,
        }[how]
        response = requests.post(node.url + "/ocsp", data=body, timeout=5)
    else:
        tail = "!!!" if how == "get-not-base64" else base64.b64encode(b"hello world").decode()
        response = requests.get(f"{node.url}/ocsp/{tail}", timeout=5)
    assert response.status_code == 200
    status = ocsp.load_der_ocsp_response(response.content).response_status
    assert status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def _port(node: Node) -> int:
    return int(node.url.rsplit(":", 1)[1])


def test_keeps_answering_idle_slow_and_garbage_clients(node: Node) -> None:
    port = _port(node)
    for _ in range(20):  # connect and close without a request
        socket.create_connection(("127.0.0.1", port)).close()
    slow = socket.create_connection(("127.0.0.1", port))
    stop = threading.Event()

    def trickle() -> None:  # a request one byte at a time
        data = ocsp_request(node, "good")
        head = f"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        for byte in head + data:
            if stop.is_set():
                return
            slow.sendall(bytes([byte]))
            time.sleep(0.01)

    trickler = threading.Thread(target=trickle)
    trickler.start()
    floods = []
    for _ in range(5):  # garbage, then hang up
        s = socket.create_connection(("127.0.0.1", port))
        with contextlib.suppress(OSError):  # the server may hang up first: that is fine
            s.sendall(os.urandom(200_000))
        floods.append(s)
    started = time.monotonic()
    for _ in range(20):
        answer = ocsp.load_der_ocsp_response(
            requests.post(node.url + "/ocsp", data=ocsp_request(node, "good"), timeout=5).content
        )
        assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert time.monotonic() - started < 5
    assert requests.get(node.url + "/status/" + node.ids["good"].hex(), timeout=5).ok
    stop.set()
    trickler.join()
    for s in floods:
        s.close()
    slow.close()
    out, err = openssl_ocsp(node, "good")
    assert "Response verify OK" in err and ": good" in out


def test_status_changes_refresh_the_answers(node: Node) -> None:
    """Suspend, then resume, then revoke the spare device: OCSP follows each change."""
    spare = node.ids["spare"]
    pre = requests.post(node.url + "/ocsp", data=ocsp_request(node, "spare"), timeout=5).content
    assert ocsp.load_der_ocsp_response(pre).certificate_status == ocsp.OCSPCertStatus.GOOD

    def ocsp_says(status: ocsp.OCSPCertStatus) -> bool:
        body = requests.post(
            node.url + "/ocsp", data=ocsp_request(node, "spare"), timeout=5
        ).content
        return ocsp.load_der_ocsp_response(body).certificate_status == status

    node.registry.suspend(node.accounts[0], spare).wait()
    node.reindex(lambda: ocsp_says(ocsp.OCSPCertStatus.REVOKED))
    out, _ = openssl_ocsp(node, "spare")
    assert ": revoked" in out and "Reason: certificateHold" in out
    node.registry.resume(node.accounts[0], spare).wait()
    node.reindex(lambda: ocsp_says(ocsp.OCSPCertStatus.GOOD))
    node.registry.revoke(node.accounts[0], spare, 5).wait()
    node.reindex(lambda: ocsp_says(ocsp.OCSPCertStatus.REVOKED))
    out, err = openssl_ocsp(node, "spare", "-no_nonce")
    assert "Response verify OK" in err and "Reason: cessationOfOperation" in out


def test_certificates_issued_by_a_ledger_ca_are_found_by_issuer_key(node: Node) -> None:
    """A device issued by a CA on the ledger: OCSP CertIDs name the CA, not the device."""
    ca, other_ca = make_ca("Vendor A", "Line 7 CA"), make_ca("Vendor A", "Line 7 CA")
    device = make_device("Vendor A", "issued-1", issuer=ca)
    for name, cert in (("line-ca", ca), ("impostor-ca", other_ca), ("issued", device)):
        node.pem(name).write_bytes(cert.pem)
    put_on_ledger(node.registry, node.accounts, ca)
    issued = put_on_ledger(node.registry, node.accounts, device)
    node.reindex(lambda: requests.get(f"{node.url}/status/{issued.hex()}", timeout=5).ok)
    out, err = openssl_ocsp(node, "issued", issuer="line-ca")
    assert "Response verify OK" in err and ": good" in out
    out, _ = openssl_ocsp(node, "issued", "-sha256", issuer="line-ca")
    assert ": good" in out
    # same issuer name and serial, another key: not this certificate
    out, _ = openssl_ocsp(node, "issued", issuer="impostor-ca")
    assert ": unknown" in out


def test_a_device_indexed_before_its_ca_is_found_once_the_ca_arrives(node: Node) -> None:
    ca = make_ca("Vendor A", "Late CA")
    device = make_device("Vendor A", "early-1", issuer=ca)
    node.pem("late-ca").write_bytes(ca.pem)
    node.pem("early").write_bytes(device.pem)
    early = put_on_ledger(node.registry, node.accounts, device)
    node.reindex(lambda: requests.get(f"{node.url}/status/{early.hex()}", timeout=5).ok)
    out, _ = openssl_ocsp(node, "early", issuer="late-ca")
    assert ": unknown" in out  # the issuer's key is not in the index yet
    put_on_ledger(node.registry, node.accounts, ca)
    node.indexer.catch_up()
    deadline = time.monotonic() + 10
    while ": good" not in openssl_ocsp(node, "early", issuer="late-ca")[0]:
        assert time.monotonic() < deadline, "the responder did not pick up the issuer"
        time.sleep(0.2)


def gnutls_ocsp(
    node: Node, name: str, *extra: str, issuer: str | None = None, signer: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Ask with GnuTLS `ocsptool --ask` (POST), which checks the signature against
    ``signer`` (the responder's certificate unless given) and a nonce it sent."""
    pem = str(node.pem(name))
    return subprocess.run(
        [
            OCSPTOOL,
            f"--ask={node.url}/ocsp",
            "--load-cert",
            pem,
            "--load-issuer",
            str(node.pem(issuer)) if issuer else pem,
            "--load-signer",
            str(signer or _responder_pem(node)),
            "--outfile",
            str(node.dir / "gnutls-response.der"),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _gnutls_says(done: subprocess.CompletedProcess[str], answer: str, nonce: bool) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verifying OCSP Response: Success." in done.stdout
    assert f"Certificate Status: {answer}" in done.stdout
    assert ("Nonce:" in done.stdout) == nonce


@pytest.mark.parametrize("nonce", ["--nonce", "--no-nonce"])
@pytest.mark.parametrize(
    ("name", "answer"),
    [("good", "good"), ("revoked", "revoked"), ("suspended", "revoked"), ("pending", "unknown")],
)
def test_gnutls_ocsptool_verifies_answers(node: Node, name: str, answer: str, nonce: str) -> None:
    _gnutls_says(gnutls_ocsp(node, name, nonce), answer, nonce == "--nonce")


def test_gnutls_ocsptool_checks_ca_issued_devices_and_the_signer(node: Node) -> None:
    ca = make_ca("Vendor A", "GnuTLS line CA")
    device = make_device("Vendor A", "gnutls-issued-1", issuer=ca)
    node.pem("gnutls-ca").write_bytes(ca.pem)
    node.pem("gnutls-issued").write_bytes(device.pem)
    put_on_ledger(node.registry, node.accounts, ca)
    issued = put_on_ledger(node.registry, node.accounts, device)
    node.reindex(lambda: requests.get(f"{node.url}/status/{issued.hex()}", timeout=5).ok)
    for nonce in ("--nonce", "--no-nonce"):
        done = gnutls_ocsp(node, "gnutls-issued", nonce, issuer="gnutls-ca")
        _gnutls_says(done, "good", nonce == "--nonce")
    # an answer checked against another signer does not verify: the test can fail
    forged = gnutls_ocsp(node, "gnutls-issued", issuer="gnutls-ca", signer=node.pem("good"))
    assert "Verifying OCSP Response: Success." not in forged.stdout
