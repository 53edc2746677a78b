"""``dpki check``: exit codes 0/1/2, text and JSON output, --at, --issuer, the ledger seam."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from dpki.commands import check as check_module
from dpki.pki.policy import IssuerCandidate
from dpki.pki.x509 import load_certificates, load_facts

CERTS = Path(__file__).resolve().parent / "certs"
MANIFEST = json.loads((CERTS / "expected.json").read_text())
AT = MANIFEST["at"]
ORG = MANIFEST["organization"]


@pytest.fixture(autouse=True)
def _no_deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the ledger out of these tests: point the deployment file at nothing."""
    monkeypatch.setenv("DPKI_DEPLOYMENT", str(tmp_path / "no-deployment.json"))


def run(*args: str) -> tuple[int, str]:
    """Run ``dpki check`` in-process; return the exit code and stdout."""
    result = CliRunner().invoke(check_module.check, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def cert(name: str) -> str:
    return str(CERTS / name)


def as_json(*args: str) -> tuple[int, list[dict[str, object]]]:
    code, out = run(*args, "--json")
    return code, json.loads(out)["certificates"]


# -- exit codes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "extra", "exit_code"),
    [
        pytest.param(["good_device_p256.pem"], [], 0, id="good"),
        pytest.param(["good_device_p256.der", "bundle_two_good.pem"], [], 0, id="good-der-bundle"),
        pytest.param(["expired.pem"], [], 1, id="expired"),
        pytest.param(["good_device_p256.pem", "rsa1024.pem"], [], 1, id="one-bad-of-two"),
        pytest.param(["org_mismatch.pem"], ["--org", ORG], 1, id="org-mismatch"),
        pytest.param(["org_mismatch.pem"], [], 0, id="org-not-given"),
        pytest.param(["good_issued.pem"], [], 1, id="issuer-unknown"),
        pytest.param(["good_issued.pem"], ["--issuer", cert("good_ca.pem")], 0, id="issuer-given"),
        pytest.param(["truncated.der"], [], 2, id="truncated"),
        pytest.param(["good_device_p256.pem", "not_a_cert.pem"], [], 2, id="good-and-unreadable"),
        pytest.param(["expired.pem", "empty.pem"], [], 2, id="bad-and-unreadable"),
        pytest.param(["does_not_exist.pem"], [], 2, id="missing-file"),
    ],
)
def test_exit_codes(files: list[str], extra: list[str], exit_code: int) -> None:
    code, _ = run(*[cert(f) for f in files], "--at", AT, *extra)
    assert code == exit_code


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--at", "yesterday"], id="bad-at"),
        pytest.param(["--at", "2025-13-01"], id="bad-month"),
        pytest.param(["--issuer", "/nonexistent/ca.pem"], id="missing-issuer"),
        pytest.param(["--issuer", str(CERTS / "not_a_cert.pem")], id="bad-issuer"),
        pytest.param(["--no-such-option"], id="unknown-option"),
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    code, _ = run(cert("good_device_p256.pem"), *args)
    assert code == 2


def test_no_files_is_a_usage_error() -> None:
    assert run()[0] == 2


# -- output ------------------------------------------------------------------------------


def test_json_shape() -> None:
    code, entries = as_json(
        cert("good_device_p256.pem"),
        cert("bundle_two_good.pem"),
        cert("expired.pem"),
        cert("truncated.pem"),
        "--at",
        AT,
    )
    assert code == 2
    assert [set(e) for e in entries] == [
        {"file", "id", "ok", "violations"},
        {"file", "id", "ok", "violations"},
        {"file", "id", "ok", "violations"},
        {"file", "id", "ok", "violations"},
        {"file", "error"},
    ]
    good, first, second, expired, broken = entries
    assert good == {
        "file": cert("good_device_p256.pem"),
        "id": load_facts(CERTS / "good_device_p256.pem")[0].id,
        "ok": True,
        "violations": [],
    }
    assert [first["id"], second["id"]] == [f.id for f in load_facts(CERTS / "bundle_two_good.pem")]
    assert expired["ok"] is False
    assert expired["violations"] == [
        {"code": "EXPIRED", "message": expired["violations"][0]["message"]}  # type: ignore[index]
    ]
    assert broken["file"] == cert("truncated.pem")
    assert "END line" in str(broken["error"])


def test_text_output_lists_the_codes() -> None:
    code, out = run(cert("good_device_p256.pem"), cert("v1.pem"), cert("truncated.der"), "--at", AT)
    assert code == 2
    lines = out.splitlines()
    assert lines[0].startswith("ok ") and "good_device_p256.pem" in lines[0]
    assert lines[1].startswith("FAIL ") and lines[1].endswith("NOT_V3")
    assert "NOT_V3: got an X.509 v1 certificate; want v3" in lines[2]
    assert lines[3].startswith("ERROR ") and "truncated" in lines[3]
    assert lines[-1] == "2 certificate(s): 1 ok, 1 with violations; 1 unreadable input(s)"


# -- --at ----------------------------------------------------------------------------------

# expired.pem: notAfter 2024-12-31T00:00:00Z; the default skew is 5 minutes


@pytest.mark.parametrize(
    ("at", "exit_code"),
    [
        pytest.param("2024-12-31T00:05:00", 0, id="naive-is-utc-last-valid-second"),
        pytest.param("2024-12-31T00:05:01", 1, id="naive-is-utc-first-expired-second"),
        pytest.param("2024-12-31T00:05:00Z", 0, id="z"),
        pytest.param("2024-12-31T01:05:01+01:00", 1, id="offset"),
        pytest.param("2024-12-31", 0, id="date-only"),
    ],
)
def test_at(at: str, exit_code: int) -> None:
    assert run(cert("expired.pem"), "--at", at)[0] == exit_code


def test_at_defaults_to_now() -> None:
    assert run(cert("expired.pem"))[0] == 1
    assert run(cert("good_device_p256.pem"))[0] == 0  # valid until 2035


@pytest.mark.parametrize(
    ("leaf", "issuer", "codes"),
    [
        pytest.param(
            f"weak_issuer/{k}_leaf.pem", f"weak_issuer/{k}_ca.pem", ["WEAK_ISSUER_KEY"], id=k
        )
        for k in ("p192", "dsa2048", "rsa1024")
    ]
    + [
        pytest.param(
            "keycertsign_without_ca.pem", None, ["KEYCERTSIGN_WITHOUT_CA"], id="kcs-ca-false"
        ),
        pytest.param(
            "explicit_ec_parameters.pem", None, ["EXPLICIT_CURVE_PARAMETERS"], id="explicit"
        ),
    ],
)
def test_defects_from_a_third_party_suite(leaf: str, issuer: str | None, codes: list[str]) -> None:
    """Explicit curve parameters (RFC 5480), keyCertSign without cA (RFC 5280 4.2.1.9) and
    issuer keys that break the key rules are refused by `dpki check`."""
    extra = ["--issuer", cert(issuer)] if issuer else []
    code, entries = as_json(cert(leaf), "--org", ORG, "--at", AT, *extra)
    assert code == 1
    assert [v["code"] for v in entries[0]["violations"]] == codes  # type: ignore[attr-defined]


# -- the ledger seam -----------------------------------------------------------------------


def test_no_deployment_means_no_ledger_lookup() -> None:
    lookup, registry, note = check_module._ledger_lookup()
    assert lookup is None and registry is None
    assert note is not None and "not consulted" in note


@pytest.mark.parametrize(
    ("active", "codes"),
    [(True, []), (False, ["ISSUER_NOT_ACTIVE"])],
    ids=["active", "not-active"],
)
def test_ledger_lookup_seam(
    monkeypatch: pytest.MonkeyPatch, active: bool, codes: list[str]
) -> None:
    ca = load_certificates(CERTS / "good_ca.pem")[0]

    def ledger(certificate: x509.Certificate) -> list[IssuerCandidate]:
        return [IssuerCandidate(ca, active=active)] if certificate.issuer == ca.subject else []

    monkeypatch.setattr(check_module, "_ledger_lookup", lambda: (ledger, None, None))
    _, entries = as_json(cert("good_issued.pem"), "--at", AT)
    assert [v["code"] for v in entries[0]["violations"]] == codes  # type: ignore[attr-defined]
    # --issuer files are consulted alongside the ledger
    _, entries = as_json(cert("good_issued.pem"), "--issuer", cert("good_ca.pem"), "--at", AT)
    assert entries[0]["ok"] is True


# -- the real command line ---------------------------------------------------------------


def dpki(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dpki`` in a subprocess."""
    env = {**os.environ, "DPKI_DEPLOYMENT": os.devnull + ".absent"}
    return subprocess.run(
        [sys.executable, "-m", "dpki", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_subprocess_exit_codes_and_no_traceback() -> None:
    good = dpki("check", cert("good_device_p256.pem"), "--at", AT)
    assert good.returncode == 0, good.stderr
    bad = dpki("check", cert("sha1_signature.pem"), "--at", AT, "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["certificates"][0]["violations"][0]["code"] == (
        "WEAK_SIGNATURE_HASH"
    )
    broken = dpki("check", cert("truncated.der"), cert("not_a_cert.pem"), "--at", "not a time")
    assert broken.returncode == 2
    assert "Traceback" not in broken.stderr + broken.stdout
    assert "--at" in broken.stderr


def test_subprocess_help() -> None:
    result = dpki("check", "--help")
    assert result.returncode == 0
    for option in ("--org", "--issuer", "--at", "--json"):
        assert option in result.stdout
