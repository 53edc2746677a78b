"""Issued certificates: the issuer is looked up on the ledger by `dpki check` and validators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT
from e2e import ValidatorProcess, private_devnet, run_cli

from dpki.chain.deployment import Deployment

CERTS = ROOT / "tests" / "certs"
ORGS = ("Acme Devices", "Operator B", "CA C")


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Deployment]:
    with private_devnet(tmp_path, orgs=ORGS) as deployment:
        yield deployment


def _codes(result: object) -> list[str]:
    rows = json.loads(result.stdout)["certificates"]  # type: ignore[attr-defined]
    return [v["code"] for v in rows[0]["violations"]]


def test_issuer_status_on_the_ledger_decides(net: Deployment, tmp_path: Path) -> None:
    issued, ca = str(CERTS / "good_issued.pem"), str(CERTS / "good_ca.pem")
    before = run_cli("check", issued, "--org", ORGS[0], "--json", deployment=net)
    assert before.returncode == 1 and _codes(before) == ["UNKNOWN_ISSUER"]

    validators = [ValidatorProcess(net, org, tmp_path).start() for org in ORGS[1:]]
    try:
        assert run_cli("submit", ca, "--as", ORGS[0], "--wait", deployment=net).returncode == 0
        found = run_cli("check", issued, "--org", ORGS[0], "--json", deployment=net)
        assert found.returncode == 0, found.stdout
        # validators find the issuer on the ledger too, and endorse the issued certificate
        sent = run_cli("submit", issued, "--as", ORGS[0], "--wait", "--json", deployment=net)
        assert sent.returncode == 0, sent.stdout + sent.stderr
    finally:
        for v in validators:
            v.stop()

    revoked = run_cli("revoke", ca, "--as", ORGS[0], "--reason", "cACompromise", deployment=net)
    assert revoked.returncode == 0
    after = run_cli("check", issued, "--org", ORGS[0], "--json", deployment=net)
    assert after.returncode == 1 and _codes(after) == ["ISSUER_NOT_ACTIVE"]
