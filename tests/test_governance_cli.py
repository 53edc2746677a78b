"""Governance from the command line: members, proposals, approvals, quorum revocation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e import ORGS, private_devnet, run_cli

from dpki.chain.deployment import Deployment
from dpki.chain.keys import dev_account
from dpki.chain.registry import Status
from dpki.dev.devices import Device, make_ca, make_device
from dpki.pki.x509 import facts
from dpki.submission import submission_for

VENDOR, OPERATOR, CA = ORGS


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Deployment]:
    with private_devnet(tmp_path) as deployment:
        yield deployment


def _json(result: object) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    return json.loads(result.stdout)  # type: ignore[attr-defined,no-any-return]


def test_members_lists_the_ledger(net: Deployment) -> None:
    data = _json(run_cli("members", "--json", deployment=net))
    assert data["threshold"] == 2
    assert [m["organization"] for m in data["members"]] == list(ORGS)


def test_add_member_needs_a_second_validator_then_can_act(net: Deployment, tmp_path: Path) -> None:
    newcomer = dev_account(7).address
    opened = _json(
        run_cli(
            "propose",
            "add-member",
            newcomer,
            "Service D",
            "--roles",
            "submitter",
            "--as",
            VENDOR,
            "--json",
            deployment=net,
        )
    )
    assert opened["executed"] is False and opened["approvals"] == 1
    # the proposer approving again is refused with the contract's error, not a traceback
    again = run_cli("approve", str(opened["id"]), "--as", VENDOR, deployment=net)
    assert again.returncode == 3 and "AlreadyApproved" in again.stderr
    done = _json(run_cli("approve", str(opened["id"]), "--as", CA, "--json", deployment=net))
    assert done["executed"] is True
    # the deployment file learned the new member, so it can act with --as on the devnet
    device = make_device("Service D", "D-1")
    path = tmp_path / "d.pem"
    path.write_bytes(device.pem)
    sent = run_cli("submit", str(path), "--as", "Service D", "--json", deployment=net)
    assert _json(sent)["certificates"][0]["status"] == "pending"  # type: ignore[index]
    listed = _json(run_cli("proposals", "--json", deployment=net))
    assert listed["proposals"][0]["kind"] == "add_member"  # type: ignore[index]


def test_quorum_revokes_a_certificate_its_submitter_keeps(net: Deployment) -> None:
    registry = net.registry_client()
    device = make_device(VENDOR, "Q-1")
    registry.submit(
        dev_account(0), submission_for(facts(device.certificate, der=device.der))
    ).wait()
    cid = hashlib.sha256(device.der).digest()
    for i in (1, 2):
        registry.endorse(dev_account(i), cid).wait()
    opened = _json(
        run_cli(
            "propose",
            "revoke",
            cid.hex(),
            "--reason",
            "cACompromise",
            "--as",
            OPERATOR,
            "--json",
            deployment=net,
        )
    )
    assert registry.status_of(cid).status is Status.ACTIVE  # one validator is not a quorum
    _json(run_cli("approve", str(opened["id"]), "--as", CA, "--json", deployment=net))
    record = registry.status_of(cid)
    assert record.status is Status.REVOKED and record.reason == 2


def test_threshold_proposal_out_of_range_is_refused(net: Deployment) -> None:
    result = run_cli("propose", "threshold", "4", "--as", VENDOR, deployment=net)
    assert result.returncode == 3
    assert "InvalidThreshold" in result.stderr and "Traceback" not in result.stderr


def _active(net: Deployment, owner: int, device: Device) -> bytes:
    registry = net.registry_client()
    registry.submit(
        dev_account(owner), submission_for(facts(device.certificate, der=device.der))
    ).wait()
    cid = hashlib.sha256(device.der).digest()
    for i in {0, 1, 2} - {owner}:
        registry.endorse(dev_account(i), cid).wait()
    return cid


def test_issuer_authorisations_from_the_command_line(net: Deployment) -> None:
    """Vendor A lets Operator B's CA vouch for it, lists it, takes it back; a quorum grants."""
    ca = _active(net, 1, make_ca(OPERATOR))
    granted = run_cli("authorize-issuer", ca.hex(), "--as", VENDOR, deployment=net)
    assert granted.returncode == 0, granted.stderr
    listed = _json(run_cli("authorizations", "--json", deployment=net))
    (row,) = listed["authorizations"]  # type: ignore[misc]
    assert (row["issuer"], row["organization"]) == (ca.hex(), VENDOR)
    again = run_cli("authorize-issuer", ca.hex(), "--as", VENDOR, deployment=net)
    assert again.returncode == 3 and "AuthorizationUnchanged" in again.stderr
    assert run_cli("deauthorize-issuer", ca.hex(), "--as", VENDOR, deployment=net).returncode == 0
    assert _json(run_cli("authorizations", "--json", deployment=net))["authorizations"] == []
    vendor = net.member(VENDOR).address
    opened = _json(
        run_cli(
            "propose", "authorize-issuer", ca.hex(), "--member", vendor, "--as", OPERATOR,
            "--json", deployment=net,
        )
    )  # fmt: skip
    _json(run_cli("approve", str(opened["id"]), "--as", CA, "--json", deployment=net))
    (row,) = _json(run_cli("authorizations", "--json", deployment=net))["authorizations"]  # type: ignore[misc]
    assert row["granted_by"] == net.member(CA).address


def test_withdraw_and_settle_from_the_command_line(net: Deployment, tmp_path: Path) -> None:
    registry = net.registry_client()
    device = make_device(VENDOR, "W-1")
    path = tmp_path / "w1.pem"
    path.write_bytes(device.pem)
    registry.submit(
        dev_account(0), submission_for(facts(device.certificate, der=device.der))
    ).wait()
    shown = run_cli("withdraw", str(path), "--as", VENDOR, "--json", deployment=net)
    assert _json(shown)["status"] == "rejected"
    undecided = run_cli("settle", str(path), "--as", OPERATOR, deployment=net)
    assert undecided.returncode == 3 and "InvalidStatus" in undecided.stderr
    renamed = run_cli(
        "propose", "add-member", dev_account(8).address, "  Service E\u00a0", "--as", VENDOR,
        "--json", deployment=net,
    )  # fmt: skip
    assert _json(renamed)["organization"] == "Service E"  # sent in canonical form
