"""`dpki indexer run` and `dpki serve --follow` as an operator runs them: subprocesses that
follow the chain, pick up new certificates and stop cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import requests
from e2e import wait_until
from inquiry_helpers import (
    DPKI,
    Node,
    database,
    devices,
    free_port,
    put_on_ledger,
    self_signed,
    served,
    write_key,
)
from prometheus_client.parser import text_string_to_metric_families


def test_indexer_once_prints_a_summary(node: Node, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'once.sqlite'}"
    args = [*DPKI, "indexer", "run", "--once", "--json", "--db", db]
    done = subprocess.run(
        [*args, "--deployment", str(node.deployment)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["events"] > 0 and summary["indexed_block"] > 0
    assert summary["certificates"]["active"] >= 2  # good and spare, at least
    assert summary["certificates"]["revoked"] >= 1


def test_indexer_follows_new_certificates_and_stops_on_sigterm(node: Node, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'follow.sqlite'}"
    log = (tmp_path / "indexer.log").open("wb")
    indexer = subprocess.Popen(
        [*DPKI, "indexer", "run", "--db", db, "--poll", "0.2",
         "--deployment", str(node.deployment)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with served(["--db", db], free_port(), tmp_path) as url:
            fresh = put_on_ledger(node.registry, node.accounts, devices(1)[0]).hex()

            def shown_active() -> bool:
                answer = requests.get(f"{url}/status/{fresh}", timeout=5)
                return answer.ok and answer.json()["status"] == "active"

            wait_until(shown_active, 30, "the new certificate on the inquiry node")
        indexer.send_signal(signal.SIGTERM)
        assert indexer.wait(15) == 0
    finally:
        if indexer.poll() is None:
            indexer.kill()
            indexer.wait()
        log.close()
    assert "Traceback" not in (tmp_path / "indexer.log").read_text()


def test_serve_follow_indexes_in_the_same_process(node: Node, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'serve.sqlite'}"
    args = ["--db", db, "--follow", "--deployment", str(node.deployment)]
    with served(args, free_port(), tmp_path) as url:
        good = node.ids["good"].hex()
        wait_until(
            lambda: requests.get(f"{url}/status/{good}", timeout=5).ok, 30, "the first catch-up"
        )
        assert requests.get(f"{url}/status/{good}", timeout=5).json()["valid"] is True
        revoked = requests.get(f"{url}/status/{node.ids['revoked'].hex()}", timeout=5).json()
        assert revoked["status"] == "revoked" and revoked["reason"] == "keyCompromise"
        # the indexer it runs counts on the same /metrics as the server
        samples = {
            s.name: s.value
            for family in text_string_to_metric_families(
                requests.get(f"{url}/metrics", timeout=5).text
            )
            for s in family.samples
        }
        assert samples["dpki_indexer_events_total"] > 0
        assert samples["dpki_indexer_lag_blocks"] == 0
        assert "dpki_http_requests_total" in samples


def test_serve_over_https(node: Node, tmp_path: Path) -> None:
    """JSON and OCSP over TLS: a client that pins the node's certificate gets the answers."""
    cert, key = _site_certificate(tmp_path)
    args = ["--db", node.db_url, "--tls-cert", str(cert), "--tls-key", str(key)]
    with served(args, free_port(), tmp_path, tls_ca=cert) as url:
        assert url.startswith("https://")
        good = node.ids["good"].hex()
        answer = requests.get(f"{url}/status/{good}", timeout=5, verify=str(cert))
        assert answer.json()["valid"] is True
        responder = requests.get(f"{url}/ocsp/responder.pem", timeout=5, verify=str(cert))
        assert b"BEGIN CERTIFICATE" in responder.content
        out = subprocess.run(
            ["openssl", "ocsp", "-url", f"{url}/ocsp", "-issuer", str(node.pem("good")),
             "-cert", str(node.pem("good")), "-CAfile", str(cert), "-noverify"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert out.returncode == 0 and ": good" in out.stdout, out.stderr


def test_serve_refuses_a_tls_key_that_does_not_match(node: Node, tmp_path: Path) -> None:
    from dpki.dev.devices import make_device

    one, other = make_device("Operator B", "a"), make_device("Operator B", "b")
    (tmp_path / "a.pem").write_bytes(one.pem)
    (tmp_path / "b.key").write_bytes(other.key_pem())
    done = subprocess.run(
        [*DPKI, "serve", "--db", node.db_url, "--tls-cert", str(tmp_path / "a.pem"),
         "--tls-key", str(tmp_path / "b.key"), "--port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "cannot use" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def _site_certificate(tmp_path: Path) -> tuple[Path, Path]:
    """Write a self-signed TLS certificate for 127.0.0.1 and its key; return both paths."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    cert = self_signed(
        key, "inquiry node", days=1, extensions=(x509.SubjectAlternativeName([loopback]),)
    )
    cert_path, key_path = tmp_path / "site.pem", tmp_path / "site.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_key(key_path, key)
    return cert_path, key_path


def test_serve_keeps_answering_status_and_ocsp_while_the_database_is_down(
    node: Node, tmp_path: Path
) -> None:
    """An inquiry node on PostgreSQL: when the database goes away, /status and OCSP answer
    from memory, queries get 503 with a reason, and everything is back when it returns."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp
    from e2e import TcpProxy

    from dpki.inquiry.indexer import Indexer
    from dpki.inquiry.store import Store

    with database("postgresql", tmp_path) as url:
        store = Store(url)
        Indexer(node.registry, store, node.indexer.deploy_block).catch_up()
        store.close()
        proxy = TcpProxy(5432)
        proxy.up()
        proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        good = node.ids["good"].hex()
        device = node.devices["good"].certificate
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(device, device, hashes.SHA1())
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        try:
            with served(["--db", proxied], free_port(), tmp_path) as base:
                assert requests.get(f"{base}/certificates/{good}", timeout=5).ok
                proxy.down()
                down = requests.get(f"{base}/certificates/{good}", timeout=10)
                assert down.status_code == 503 and "unavailable" in down.json()["error"]
                assert requests.get(f"{base}/status/{good}", timeout=5).json()["valid"] is True
                answer = requests.post(f"{base}/ocsp", data=request, timeout=5).content
                status = ocsp.load_der_ocsp_response(answer).certificate_status
                assert status == ocsp.OCSPCertStatus.GOOD
                proxy.up()
                wait_until(
                    lambda: requests.get(f"{base}/certificates/{good}", timeout=10).ok,
                    30,
                    "queries to work again",
                )
        finally:
            proxy.down()
