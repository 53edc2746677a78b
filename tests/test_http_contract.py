"""The inquiry node's HTTP contract: its OpenAPI document says what `dpki serve` does, and
no request gets a 5xx. Schemathesis generates requests from the served document (examples,
boundary coverage, random fuzzing and negative data) against a real `dpki serve` over a real
index holding certificates in every status, on SQLite and on PostgreSQL, with all its checks
on; any finding fails the test."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from inquiry_helpers import ROOT, Node, database

from dpki.chain.types import CERT_ID_PATTERN, as_cert_id, parse_cert_id
from dpki.errors import ConfigError
from dpki.inquiry.models import StatusName
from dpki.inquiry.queries import MAX_OFFSET, MAX_PAGE, MAX_TEXT, BadQuery
from dpki.inquiry.store import Store
from dpki.pki.codes import Status

#: generated requests per operation and phase: about 10-25 s on SQLite and 35-80 s on
#: PostgreSQL, with machine load (250 is the budget at which the PostgreSQL run finds a NUL in
#: a search and an offset past 2^63 when the bounds are taken out; the SQLite-only overflow
#: has its own tests); DPKI_FUZZ_EXAMPLES changes both
MAX_EXAMPLES = {"sqlite": 50, "postgresql": 250}
#: a fixed seed makes a finding reproducible; set DPKI_FUZZ_SEED to explore further
SEED = os.environ.get("DPKI_FUZZ_SEED", "20261127")


#: the fuzz test runs against a node on each database
BOTH = pytest.mark.parametrize("node", ["sqlite", "postgresql"], indirect=True)


def _ocsp_request(node: Node, name: str) -> bytes:
    cert = x509.load_pem_x509_certificate(node.pem(name).read_bytes())
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, cert, hashes.SHA1())
    return builder.build().public_bytes(serialization.Encoding.DER)


def _with_examples(schema: dict[str, Any], node: Node) -> dict[str, Any]:
    """Return the served schema with the node's real ids and OCSP requests as parameter
    examples, so that generated requests also reach certificates in every status."""
    ids = {name: cid.hex() for name, cid in node.ids.items()}
    key = requests.get(f"{node.url}/certificates/{ids['good']}", timeout=10).json()["key_hash"]
    requests_b64 = {
        name: base64.b64encode(_ocsp_request(node, name)).decode()
        for name in ("good", "revoked", "unknown")
    }
    values = {
        "cert_id": {**ids, "upper-0X": "0X" + ids["good"].upper()},
        "id": {"good": ids["good"], "empty": ""},
        "key": {"good": key},
        "request": requests_b64,
    }
    for item in schema["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in values:
                    parameter["examples"] = {
                        name: {"value": value} for name, value in values[parameter["name"]].items()
                    }
    return schema


@BOTH
def test_the_served_schema_documents_every_operation(node: Node) -> None:
    schema = requests.get(node.url + "/openapi.json", timeout=10).json()
    operations = {(m.upper(), p) for p, item in schema["paths"].items() for m in item}
    assert operations == {
        ("GET", "/healthz"),
        ("GET", "/certificates/{cert_id}"),
        ("GET", "/certificates"),
        ("GET", "/status/{cert_id}"),
        ("GET", "/members"),
        ("GET", "/authorizations"),
        ("GET", "/ocsp/responder.pem"),
        ("POST", "/ocsp"),
        ("GET", "/ocsp/{request}"),
        ("GET", "/"),
        ("GET", "/ui/certificates/{cert_id}"),
        ("GET", "/metrics"),
    }
    paths = schema["paths"]
    for path in ("/certificates/{cert_id}", "/status/{cert_id}", "/ui/certificates/{cert_id}"):
        (param,) = paths[path]["get"]["parameters"]
        assert param["schema"]["pattern"] == CERT_ID_PATTERN
        assert {"400", "404"} <= set(paths[path]["get"]["responses"])
    search = {p["name"]: p["schema"] for p in paths["/certificates"]["get"]["parameters"]}
    assert (search["limit"]["minimum"], search["limit"]["maximum"]) == (1, 500)
    assert (search["offset"]["minimum"], search["offset"]["maximum"]) == (0, 2**31 - 1)
    for operation in (op for item in paths.values() for op in item.values()):
        assert "422" not in operation["responses"]  # refused input is a 400 everywhere
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and error["additionalProperties"] is False
    pem = paths["/ocsp/responder.pem"]["get"]["responses"]["200"]["content"]
    assert list(pem) == ["application/x-pem-file"]
    post = paths["/ocsp"]["post"]
    assert list(post["requestBody"]["content"]) == ["application/ocsp-request"]
    for operation in (post, paths["/ocsp/{request}"]["get"]):
        answer = operation["responses"]["200"]
        assert list(answer["content"]) == ["application/ocsp-response"]
        assert {"Cache-Control", "Last-Modified", "Expires", "ETag"} <= set(answer["headers"])
    assert list(paths["/"]["get"]["responses"]["200"]["content"]) == ["text/html"]


def test_one_id_rule() -> None:
    """64 hex digits, any case, 0x or 0X optional, and nothing else (Python's `$` would let a
    trailing newline through: the rule uses fullmatch)."""
    cid = "ab" * 32
    for good in (cid, cid.upper(), "0x" + cid, "0X" + cid.upper()):
        assert parse_cert_id(good) == cid
    for bad in (cid + "\n", " " + cid, cid + " ", "0x" + cid[:-1], cid + "0", "x" + cid, ""):
        assert parse_cert_id(bad) is None, bad
        with pytest.raises(ConfigError, match="64 hex digits"):  # the command line's parser
            as_cert_id(bad)
    assert as_cert_id("0X" + cid.upper()) == bytes.fromhex(cid)


def test_the_schema_names_every_status() -> None:
    assert set(get_args(StatusName)) == {s.label for s in Status if s is not Status.NONE}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_search_bounds_hold_on_both_databases(kind: str, tmp_path: Path) -> None:
    """The store refuses what the schema refuses, whoever calls it (OFFSET 2^63 overflowed
    SQLite; PostgreSQL text cannot hold a NUL)."""
    with database(kind, tmp_path) as url:
        store = Store(url)
        try:
            assert store.search(limit=MAX_PAGE, offset=MAX_OFFSET) == (0, [])
            assert store.search(org="x" * MAX_TEXT, subject="\u00e9\U0001f600") == (0, [])
            for bad in (
                {"offset": 2**63},
                {"offset": MAX_OFFSET + 1},
                {"offset": -1},
                {"limit": 0},
                {"limit": MAX_PAGE + 1},
                {"org": "a\x00b"},
                {"subject": "\x00"},
                {"subject": "x" * (MAX_TEXT + 1)},
            ):
                with pytest.raises(BadQuery):
                    store.search(**bad)  # type: ignore[arg-type]
        finally:
            store.close()


@pytest.mark.slow
@BOTH
def test_schemathesis_finds_nothing(node: Node, tmp_path: Path) -> None:
    schema = requests.get(node.url + "/openapi.json", timeout=10).json()
    schema_file = tmp_path / "openapi.json"
    schema_file.write_text(json.dumps(_with_examples(schema, node)))
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": str(ROOT / "tests"),
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "run",
            str(schema_file),
            "--url",
            node.url,
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            os.environ.get("DPKI_FUZZ_EXAMPLES", str(MAX_EXAMPLES[node.db_kind])),
            "--seed",
            SEED,
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    summary = done.stdout[done.stdout.find("=== SUMMARY") :]
    print(summary)  # shown with -s or -rP: phases, cases generated, seed
    assert done.returncode == 0, done.stdout[-20_000:] + done.stderr[-5_000:]
    operations = sum(
        1
        for item in schema["paths"].values()
        for method in item
        if method in ("get", "post", "put", "patch", "delete", "head")
    )
    assert re.search(rf"Tested: {operations}\b", summary), (operations, summary)
