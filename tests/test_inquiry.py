"""The inquiry node's JSON API, health and web page, served by `dpki serve`."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from conftest import fake_submission, rpc
from inquiry_helpers import Node, put_on_ledger

import dpki
from dpki.dev.devices import make_device


def get(node: Node, path: str, **params: Any) -> requests.Response:
    """GET a path of the node."""
    return requests.get(node.url + path, params=params, timeout=10, allow_redirects=False)


def test_certificate_record_has_votes_history_and_pem(node: Node) -> None:
    cid = node.ids["revoked"].hex()
    body = get(node, f"/certificates/{cid}").json()
    assert body["id"] == cid and body["status"] == "revoked" and body["reason"] == "keyCompromise"
    assert body["valid"] is False and body["organization"] == "Vendor A"
    assert {e["organization"] for e in body["endorsers"]} == {"Operator B", "CA C"}
    assert [h["event"] for h in body["history"]] == ["submitted", "endorsed", "revoked"]
    assert all(h["block_hash"].startswith("0x") for h in body["history"])
    assert body["pem"].encode() == node.devices["revoked"].pem
    assert get(node, f"/certificates/0x{cid.upper()}").json()["id"] == cid


def test_status_endpoint(node: Node) -> None:
    good = get(node, f"/status/{node.ids['good'].hex()}").json()
    assert (good["status"], good["valid"], good["reason"]) == ("active", True, None)
    held = get(node, f"/status/{node.ids['suspended'].hex()}").json()
    assert (held["status"], held["valid"], held["reason"]) == (
        "suspended",
        False,
        "certificateHold",
    )
    rejected = get(node, f"/status/{node.ids['rejected'].hex()}").json()
    assert rejected["status"] == "rejected" and rejected["reason"]  # the policy code's name


KNOWN = "revoked"  # a name in node.ids, spelled out in the paths below as {known}


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/certificates/xyz", 400),
        ("/certificates/0", 400),
        ("/status/0", 400),
        ("/certificates/" + "0" * 63, 400),
        ("/status/not-an-id", 400),
        ("/certificates/{known}%0a", 400),  # a trailing newline is not an id
        ("/status/{known}%0a", 400),
        ("/status/%20{known}", 400),
        ("/certificates/0x{known}", 200),
        ("/certificates/0X{KNOWN}", 200),  # any case, 0x or 0X
        ("/status/0X{known}", 200),
        ("/certificates/" + "ab" * 32, 404),
        ("/status/" + "ab" * 32, 404),
        ("/certificates?status=bogus", 400),
        ("/certificates?key=short", 400),
        ("/certificates?key={known}%0a", 400),
        ("/certificates?limit=0", 400),
        ("/certificates?limit=501", 400),
        ("/certificates?offset=-1", 400),
        ("/certificates?offset=2147483648", 400),
        ("/certificates?offset=9223372036854775807", 400),
        ("/certificates?offset=9223372036854775808", 400),  # was a 500 (SQLite overflow)
        ("/certificates?offset=" + "9" * 400, 400),
        ("/certificates?offset=2147483647", 200),
        ("/certificates?org=a%00b", 400),  # PostgreSQL text cannot hold a NUL
        ("/certificates?subject=" + "x" * 1025, 400),
        ("/nowhere", 404),
    ],
)
def test_bad_input_gets_clear_errors(node: Node, path: str, code: int) -> None:
    known = node.ids[KNOWN].hex()
    url = node.url + path.format(known=known, KNOWN=known.upper())
    response = requests.get(url, timeout=10)
    assert response.status_code == code, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if code == 200:
        assert body.get("id", known) == known
    else:
        assert set(body) == {"error"} and body["error"]


def test_search_filters_and_pages(node: Node) -> None:
    everything = get(node, "/certificates", org="Vendor A").json()
    assert everything["total"] == 8
    page = get(node, "/certificates", org="Vendor A", limit=2, offset=2).json()
    assert len(page["items"]) == 2 and page["total"] == 8
    assert {i["status"] for i in everything["items"]} == {
        "pending", "active", "suspended", "revoked", "superseded", "rejected"
    }  # fmt: skip
    revoked = get(node, "/certificates", status="revoked").json()
    assert [i["id"] for i in revoked["items"]] == [node.ids["revoked"].hex()]
    by_subject = get(node, "/certificates", subject="CN=device-pending").json()
    assert [i["id"] for i in by_subject["items"]] == [node.ids["pending"].hex()]
    key = get(node, f"/certificates/{node.ids['good'].hex()}").json()["key_hash"]
    assert get(node, "/certificates", key=key).json()["total"] == 1
    assert get(node, "/certificates", org="Nobody").json() == {
        "total": 0,
        "limit": 50,
        "offset": 0,
        "items": [],
    }


def test_members_and_openapi(node: Node) -> None:
    members = get(node, "/members").json()["members"]
    assert [m["organization"] for m in members] == ["Vendor A", "Operator B", "CA C"]
    assert all(m["roles"] == ["validator", "submitter"] for m in members)
    schema = get(node, "/openapi.json").json()
    assert schema["info"]["version"] == dpki.__version__  # one version, from dpki/__init__.py
    assert {
        "/certificates/{cert_id}",
        "/certificates",
        "/status/{cert_id}",
        "/members",
        "/healthz",
    } <= set(schema["paths"])
    assert get(node, "/docs").status_code == 200


def test_healthz_reports_lag(node: Node) -> None:
    node.reindex()
    health = get(node, "/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["ok"] is True and body["lag_blocks"] <= 1 and body["indexed_block"] > 0
    for _ in range(12):
        rpc(node.registry.rpc_url, "evm_mine")
    time.sleep(1.1)  # the node asks the chain for its head at most once a second
    behind = get(node, "/healthz")
    assert behind.status_code == 503 and behind.json()["lag_blocks"] >= 12
    node.reindex()
    time.sleep(1.1)
    assert get(node, "/healthz").json()["lag_blocks"] == 0


def test_web_page_shows_search_status_endorsers_history_and_pem(node: Node) -> None:
    home = get(node, "/", org="Vendor A").text
    assert "8 found" in home
    for name in ("good", "revoked", "suspended"):
        assert node.ids[name].hex()[:16] in home
    cid = node.ids["revoked"].hex()
    jump = get(node, "/", id=cid)
    assert jump.status_code == 303 and jump.headers["location"] == f"/ui/certificates/{cid}"
    page = get(node, f"/ui/certificates/{cid}").text
    assert "s-revoked" in page and "keyCompromise" in page
    assert "Operator B" in page and "CA C" in page
    assert page.count("<tr><td>") >= 3  # submitted, endorsed, revoked
    assert "-----BEGIN CERTIFICATE-----" in page
    missing = get(node, "/", id="ab" * 32)
    assert missing.status_code == 404 and "no certificate" in missing.text
    assert "<form" in missing.text  # the search form, to try again
    for refused, code in (
        (get(node, "/", id="zz"), 400),
        (get(node, "/", org="a\x00"), 400),
        (get(node, "/ui/certificates/nope"), 400),
        (get(node, "/ui/certificates/" + "ab" * 32), 404),
    ):
        assert refused.status_code == code
        assert refused.headers["content-type"].startswith("text/html")
        assert 'class="error"' in refused.text
    assert get(node, "/", id="", org="", subject="").status_code == 200  # the empty form


def test_names_from_the_ledger_are_escaped_on_the_page(node: Node) -> None:
    """Anyone may submit a certificate: its subject is data, never markup (runs last: it adds
    a certificate to the module's ledger)."""
    hostile = make_device("Vendor A", "x", common_name='<script>alert("x")</script>')
    cid = put_on_ledger(node.registry, node.accounts, hostile).hex()
    node.reindex(lambda: get(node, f"/status/{cid}").status_code == 200)
    for page in (get(node, f"/ui/certificates/{cid}").text, get(node, "/", subject="script").text):
        assert "<script>" not in page
        assert "&lt;script" in page  # escaped (RFC 4514 adds a backslash before it)


def test_garbage_on_the_ledger_is_shown_not_fatal(node: Node) -> None:
    """A submitter may put bytes that are no certificate and any uint40 window on the ledger
    (validators reject it; the index still mirrors it): the node answers, it does not fail."""
    junk = fake_submission(b"not a certificate", window=(0, 2**40 - 1))
    receipt = node.registry.submit(node.accounts[0], junk).wait()
    cid = bytes(receipt.event("CertificateSubmitted").args["certId"]).hex()
    node.reindex(lambda: get(node, f"/status/{cid}").status_code == 200)
    record = get(node, f"/certificates/{cid}")
    assert record.status_code == 200
    body = record.json()
    assert body["parse_error"] and body["subject"] is None
    assert body["not_after"] == f"unix:{2**40 - 1}" and body["status"] == "pending"
    assert get(node, f"/ui/certificates/{cid}").status_code == 200
    assert get(node, "/", id=cid).status_code == 303
    assert get(node, "/certificates", status="pending").status_code == 200
