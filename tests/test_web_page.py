"""The inquiry node's web page over HTTP (the consortium at a glance, search by id prefix,
organization, subject or key hash, paging, the pages for what is not there) and its
Prometheus metrics at /metrics. The browser run is in test_web_browser.py."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from inquiry_helpers import Node, free_port, served
from prometheus_client.parser import text_string_to_metric_families

from dpki.inquiry.store import Store
from dpki.pki.x509 import load_facts
from dpki.submission import submission_for


def get(node: Node, path: str, **params: Any) -> requests.Response:
    return requests.get(node.url + path, params=params, timeout=10, allow_redirects=False)


def metrics(node: Node) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Scrape /metrics; return every sample by name and labels."""
    answer = get(node, "/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def ocsp_request(node: Node, name: str) -> bytes:
    cert = x509.load_pem_x509_certificate(node.pem(name).read_bytes())
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, cert, hashes.SHA1())
    return builder.build().public_bytes(serialization.Encoding.DER)


# ---------------------------------------------------------------------- metrics


def test_metrics_count_requests_by_endpoint_and_status(node: Node) -> None:
    before = metrics(node)
    good = node.ids["good"].hex()
    for _ in range(3):
        assert get(node, f"/status/{good}").status_code == 200  # the plain-ASGI fast path
    assert get(node, f"/certificates/{'ab' * 32}").status_code == 404
    assert get(node, "/certificates", org="Vendor A").status_code == 200
    after = metrics(node)

    def moved(endpoint: str, status: str) -> float:
        labels = {"endpoint": endpoint, "method": "GET", "status": status}
        return sample(after, "dpki_http_requests_total", **labels) - sample(
            before, "dpki_http_requests_total", **labels
        )

    assert moved("/status/{cert_id}", "200") == 3
    assert moved("/certificates/{cert_id}", "404") == 1
    assert moved("/certificates", "200") == 1


def test_metrics_count_ocsp_answers_by_certificate_status(node: Node) -> None:
    before = metrics(node)

    def post(body: bytes) -> int:
        headers = {"content-type": "application/ocsp-request"}
        return requests.post(f"{node.url}/ocsp", data=body, headers=headers, timeout=10).status_code

    for name in ("good", "good", "revoked", "suspended", "unknown"):
        assert post(ocsp_request(node, name)) == 200
    assert post(b"garbage") == 200
    after = metrics(node)
    moved = {
        status: sample(after, "dpki_ocsp_responses_total", status=status)
        - sample(before, "dpki_ocsp_responses_total", status=status)
        for status in ("good", "revoked", "unknown", "malformed")
    }
    assert moved == {"good": 2, "revoked": 2, "unknown": 1, "malformed": 1}


def test_metrics_report_index_lag_in_blocks_and_seconds(node: Node) -> None:
    node.reindex()
    samples = metrics(node)
    assert sample(samples, "dpki_index_lag_blocks") >= 0
    assert sample(samples, "dpki_index_lag_seconds") >= 0
    assert sample(samples, "dpki_index_block") > 0
    assert sample(samples, "dpki_index_certificates", status="revoked") == 1
    assert "/metrics" in get(node, "/openapi.json").json()["paths"]


# ---------------------------------------------------------------------- the web page


def test_the_front_page_shows_the_consortium_at_a_glance(node: Node) -> None:
    page = get(node, "/").text
    assert "<script" not in page and " src=" not in page and "<link" not in page  # no CDN
    assert "threshold 2 of 3 validators" in page
    for org in ("Vendor A", "Operator B", "CA C"):
        assert f"<td>{org}</td>" in page
    assert page.count("<td>validator, submitter</td>") == 3
    # liveness: Operator B and CA C voted (endorsed and rejected); Vendor A never did
    rows = dict(re.findall(r"<tr><td>([^<]+)</td><td><code>[^<]+</code></td><td>[^<]+</td>"
                           r"<td>(.*?)</td></tr>", page))  # fmt: skip
    assert rows["Vendor A"] == '<span class="stale">never voted</span>'
    assert re.fullmatch(r"block \d+ \(\S+ \S+Z, \d+ blocks? ago\)", rows["Operator B"])
    assert rows["CA C"].startswith("block ")
    counts = dict(re.findall(r'class="count-(\w+)">(\d+)<', page))
    assert counts["revoked"] == "1" and counts["suspended"] == "1" and counts["rejected"] == "1"
    assert "awaiting validators" in page and f"{counts['pending']} pending" in page
    chart = re.search(r'<svg class="chart".*?</svg>', page, re.S)
    assert chart is not None and chart.group(0).count("<rect") == 30
    assert re.search(r"<title>\d+ submitted ", chart.group(0))


def test_an_id_prefix_finds_the_certificate(node: Node) -> None:
    """The list shows ids cut at 16 digits; searching those 16 digits finds the certificate."""
    cid = node.ids["suspended"].hex()
    jump = get(node, "/", id=cid[:16])
    assert jump.status_code == 303 and jump.headers["location"] == f"/ui/certificates/{cid}"
    assert get(node, "/", id="0x" + cid[:16].upper()).headers["location"].endswith(cid)


def test_an_unknown_id_shows_no_unfiltered_list(node: Node) -> None:
    for unknown in ("ab" * 32, "abcdef0123456789"):
        answer = get(node, "/", id=unknown)
        assert answer.status_code == 404
        assert "no certificate" in answer.text and "in the index" in answer.text
        assert "0 found" in answer.text and "<table class=results>" not in answer.text
        assert node.ids["good"].hex()[:16] not in answer.text
    assert get(node, "/", id="not hex").status_code == 400


def test_search_by_organization_subject_and_key_with_paging(node: Node) -> None:
    key = get(node, f"/certificates/{node.ids['good'].hex()}").json()["key_hash"]
    by_key = get(node, "/", key=key)
    assert by_key.status_code == 200 and "1 found" in by_key.text
    assert node.ids["good"].hex()[:16] in by_key.text
    assert get(node, "/", key="abc").status_code == 400
    by_subject = get(node, "/", subject="device-revoked").text
    assert "1 found" in by_subject and node.ids["revoked"].hex()[:16] in by_subject

    seen: list[str] = []
    href: str | None = "/?org=Vendor+A&limit=4"
    pages = 0
    while href is not None:
        page = requests.get(node.url + href.replace("&amp;", "&"), timeout=10).text
        pages += 1
        assert "8 found" in page
        seen += re.findall(r'<a href="/ui/certificates/([0-9a-f]{64})">', page)
        following = re.search(r'<a rel="next" href="([^"]+)"', page)
        href = following.group(1) if following else None
    assert pages == 2 and len(seen) == len(set(seen)) == 8
    assert "5 to 8 shown" in page and 'rel="prev"' in page


def test_unknown_ids_under_ui_answer_pages(node: Node) -> None:
    missing = get(node, f"/ui/certificates/{'cd' * 32}")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "no certificate" in missing.text and '<a href="/">' in missing.text
    bad = get(node, "/ui/certificates/nope")
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/html")


def test_a_certificate_with_an_empty_subject_is_not_called_unparsable(node: Node) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    facts = load_facts(cert.public_bytes(serialization.Encoding.DER))[0]
    receipt = node.registry.submit(node.accounts[0], submission_for(facts)).wait()
    cid = bytes(receipt.event("CertificateSubmitted").args["certId"]).hex()
    node.reindex(lambda: get(node, f"/status/{cid}").status_code == 200)
    listed = get(node, "/", limit=500).text  # every certificate listed
    row = re.search(rf"{cid[:16]}…</code></a></td><td>(.*?)</td>", listed)
    assert row is not None and row.group(1) == "<em>(empty subject)</em>"


def test_an_empty_index_says_so(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    Store(db).close()
    with served(["--db", db, "--deployment", str(tmp_path / "none.json")], free_port(),
                tmp_path) as url:  # fmt: skip
        page = requests.get(url, timeout=10).text
    assert "None" not in page
    assert "the index is empty: no block indexed yet" in page
    assert "no certificate submitted yet" in page


def test_metrics_of_several_workers_are_pooled(node: Node, tmp_path: Path) -> None:
    """With --workers 2 each scrape reaches one worker; it reports the requests of both."""
    args = ["--db", node.db_url, "--deployment", str(node.deployment), "--workers", "2"]
    with served(args, free_port(), tmp_path) as url:
        good = node.ids["good"].hex()
        session = requests.Session()
        for _ in range(40):  # new connections: the kernel spreads them over the workers
            assert requests.get(f"{url}/status/{good}", timeout=10).status_code == 200
        for _ in range(4):
            text = session.get(f"{url}/metrics", timeout=10).text
            counted = {
                tuple(sorted(s.labels.items())): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "dpki_http_requests_total"
            }
            key = (("endpoint", "/status/{cert_id}"), ("method", "GET"), ("status", "200"))
            assert counted[key] == 40
