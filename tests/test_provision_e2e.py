"""Provisioning end to end: the CLI, validator subprocesses, M-of-N activation, lifecycle."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from e2e import ORGS, ValidatorProcess, private_devnet, run_cli, wait_until

from dpki.chain.deployment import Deployment
from dpki.chain.keys import dev_account
from dpki.chain.registry import Registry, Status
from dpki.dev.devices import Device, make_device
from dpki.pki.codes import REJECTION_REASONS
from dpki.pki.x509 import facts
from dpki.submission import submission_for
from dpki.validator import SUBMISSION_MISMATCH

VENDOR, OPERATOR, CA = ORGS


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Deployment]:
    with private_devnet(tmp_path) as deployment:
        yield deployment


@pytest.fixture
def validators(net: Deployment, tmp_path: Path) -> Iterator[list[ValidatorProcess]]:
    """Operator B and CA C validate (threshold 2); Vendor A only submits here."""
    procs = [ValidatorProcess(net, org, tmp_path).start() for org in (OPERATOR, CA)]
    yield procs
    for p in procs:
        p.stop()


def _cid(device: Device) -> bytes:
    return hashlib.sha256(device.der).digest()


def _write(tmp: Path, name: str, device: Device) -> Path:
    path = tmp / name
    path.write_bytes(device.pem)
    return path


def _status(registry: Registry, device: Device) -> Status:
    return registry.status_of(_cid(device)).status


def test_activates_only_at_threshold_of_distinct_validators(
    net: Deployment, tmp_path: Path
) -> None:
    registry = net.registry_client()
    device = make_device(VENDOR, "SN1")
    submitted = run_cli(
        "submit", str(_write(tmp_path, "d.pem", device)), "--as", VENDOR, deployment=net
    )
    assert submitted.returncode == 0, submitted.stderr
    first = ValidatorProcess(net, OPERATOR, tmp_path).start()
    try:
        operator = net.member(OPERATOR).address
        wait_until(lambda: registry.has_voted(_cid(device), operator), what="first endorsement")
        assert _status(registry, device) is Status.PENDING
        assert registry.status_of(_cid(device)).endorsements == 1
        second = ValidatorProcess(net, CA, tmp_path).start()
        try:
            wait_until(lambda: _status(registry, device) is Status.ACTIVE, what="activation")
        finally:
            assert second.stop() == 0
    finally:
        assert first.stop() == 0
    assert set(registry.endorsers_of(_cid(device))) == {
        net.member(OPERATOR).address,
        net.member(CA).address,
    }
    assert registry.is_valid(_cid(device))
    assert "decided 0x" + _cid(device).hex() + " endorse" in first.log_text()


def test_killed_validator_catches_up_without_double_or_missed_votes(
    net: Deployment, tmp_path: Path
) -> None:
    registry = net.registry_client()
    vendor = dev_account(0)
    devices = [make_device(VENDOR, f"SN{i}") for i in range(120)]
    subs = [submission_for(facts(d.certificate, der=d.der)) for d in devices]
    operator = ValidatorProcess(net, OPERATOR, tmp_path).start()
    ca = ValidatorProcess(net, CA, tmp_path).start()
    try:
        for start in range(0, len(subs), 10):  # twelve blocks of ten
            registry.submit_batch(vendor, subs[start : start + 10]).wait()
            if start == 40:
                wait_until(
                    lambda: registry.has_voted(subs[0].cert_id, net.member(OPERATOR).address)
                )
                operator.kill()  # mid-stream, no chance to save anything
        operator.start()
        wait_until(
            lambda: all(registry.status_of(s.cert_id).status is Status.ACTIVE for s in subs),
            timeout=120,
            what="all active",
        )
    finally:
        operator.stop()
        ca.stop()
    endorsed = [
        e
        for e in registry.events(net.deploy_block, "latest", ["CertificateEndorsed"])
        if e.args["validator"].lower() == net.member(OPERATOR).address.lower()
    ]
    ids = [bytes(e.args["certId"]) for e in endorsed]
    assert len(ids) == len(set(ids)) == len(subs)  # each once, none missed
    assert set(ids) == {s.cert_id for s in subs}


@pytest.mark.parametrize(
    ("label", "device", "code"),
    [
        (
            "expired",
            make_device(VENDOR, "OLD", not_before=dt.datetime(2001, 1, 1, tzinfo=dt.UTC), days=30),
            "EXPIRED",
        ),
        ("look-alike-org", make_device(OPERATOR + " Ltd", "IMPOSTOR"), "ORG_MISMATCH"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_policy_violation_sent_with_skip_check_is_rejected(
    net: Deployment,
    validators: list[ValidatorProcess],
    tmp_path: Path,
    label: str,
    device: Device,
    code: str,
) -> None:
    registry = net.registry_client()
    path = _write(tmp_path, f"{label}.pem", device)
    refused = run_cli("submit", str(path), "--as", VENDOR, "--json", deployment=net)
    assert refused.returncode == 1
    row = json.loads(refused.stdout)["certificates"][0]
    assert row["status"] == "refused" and code in [v["code"] for v in row["violations"]]
    assert _status(registry, device) is Status.NONE  # nothing reached the ledger

    sent = run_cli(
        "submit", str(path), "--as", VENDOR, "--skip-check", "--wait", "--json", deployment=net
    )
    assert sent.returncode == 1, sent.stderr
    assert json.loads(sent.stdout)["certificates"][0]["status"] == "rejected"
    record = registry.status_of(_cid(device))
    assert record.status is Status.REJECTED
    assert record.reason == REJECTION_REASONS[code]
    assert record.rejections == 2
    shown = run_cli("status", str(path), "--json", deployment=net)
    assert shown.returncode == 1
    assert json.loads(shown.stdout)["reason"] == code


def test_a_certificate_naming_another_members_organization_is_refused_by_the_ledger(
    net: Deployment, tmp_path: Path
) -> None:
    """The contract judges entitlement at submission: O=Operator B sent by Vendor A (even with
    --skip-check) never reaches the ledger."""
    registry = net.registry_client()
    device = make_device(OPERATOR, "IMPOSTOR-2")
    path = _write(tmp_path, "impostor.pem", device)
    sent = run_cli("submit", str(path), "--as", VENDOR, "--skip-check", "--json", deployment=net)
    assert sent.returncode == 3
    assert "NotEntitled" in sent.stderr and "Traceback" not in sent.stderr
    assert _status(registry, device) is Status.NONE


def test_declared_fields_that_disagree_with_the_der_are_rejected(
    net: Deployment, validators: list[ValidatorProcess]
) -> None:
    registry = net.registry_client()
    device = make_device(VENDOR, "LIAR")
    honest = submission_for(facts(device.certificate, der=device.der))
    lying = replace(honest, key_hash=hashlib.sha256(b"someone else's key").digest())
    registry.submit(dev_account(0), lying).wait()
    wait_until(lambda: _status(registry, device) is Status.REJECTED, what="rejection")
    assert registry.status_of(_cid(device)).reason == SUBMISSION_MISMATCH


def test_submit_is_idempotent_and_waits(
    net: Deployment, validators: list[ValidatorProcess], tmp_path: Path
) -> None:
    paths = [_write(tmp_path, f"d{i}.pem", make_device(VENDOR, f"SN{i}")) for i in range(5)]
    first = run_cli(
        "submit",
        *map(str, paths),
        "--as",
        VENDOR,
        "--batch-size",
        "2",
        "--wait",
        "--json",
        deployment=net,
    )
    assert first.returncode == 0, first.stderr
    rows = json.loads(first.stdout)["certificates"]
    assert [r["status"] for r in rows] == ["active"] * 5 and all(r["submitted"] for r in rows)
    again = run_cli("submit", *map(str, paths), "--as", VENDOR, "--json", deployment=net)
    assert again.returncode == 0
    rows = json.loads(again.stdout)["certificates"]
    assert [(r["submitted"], r["status"]) for r in rows] == [(False, "active")] * 5


def test_lifecycle_commands_and_authorization(
    net: Deployment, validators: list[ValidatorProcess], tmp_path: Path
) -> None:
    registry = net.registry_client()
    old = make_device(VENDOR, "LIFE")
    path = _write(tmp_path, "old.pem", old)
    assert run_cli("submit", str(path), "--as", VENDOR, "--wait", deployment=net).returncode == 0
    assert run_cli("status", str(path), deployment=net).returncode == 0

    # another member may not act on Vendor A's certificate alone
    foreign = run_cli("suspend", str(path), "--as", OPERATOR, deployment=net)
    assert foreign.returncode == 3
    assert "NotCertificateOwner" in foreign.stderr and "Traceback" not in foreign.stderr
    # in words, with the way that works: a validator quorum
    assert "was submitted by another member" in foreign.stderr
    assert f"dpki propose revoke|suspend|resume 0x{_cid(old).hex()}" in foreign.stderr

    assert run_cli("suspend", str(path), "--as", VENDOR, deployment=net).returncode == 0
    shown = run_cli("status", str(path), "--json", deployment=net)
    assert shown.returncode == 1 and json.loads(shown.stdout)["status"] == "suspended"
    assert run_cli("resume", str(path), "--as", VENDOR, deployment=net).returncode == 0
    assert run_cli("status", str(path), deployment=net).returncode == 0

    new = make_device(VENDOR, "LIFE-2")
    new_path = _write(tmp_path, "new.pem", new)
    renewed = run_cli("renew", str(path), str(new_path), "--as", VENDOR, deployment=net)
    assert renewed.returncode == 0, renewed.stderr
    wait_until(lambda: _status(registry, new) is Status.ACTIVE, what="renewal active")
    old_view = json.loads(run_cli("status", str(path), "--json", deployment=net).stdout)
    assert old_view["status"] == "superseded" and old_view["replaced_by"] == _cid(new).hex()

    revoked = run_cli(
        "revoke",
        str(new_path),
        "--as",
        VENDOR,
        "--reason",
        "keyCompromise",
        "--json",
        deployment=net,
    )
    assert revoked.returncode == 0
    assert json.loads(revoked.stdout)["reason"] == "keyCompromise"
    assert not registry.is_valid(_cid(new))
    final = run_cli("status", "0x" + _cid(new).hex(), "--json", deployment=net)
    assert final.returncode == 1 and json.loads(final.stdout)["status"] == "revoked"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["status", "not-a-file-nor-an-id"], 2),
        (["status", "0x" + "00" * 32], 1),
        (["revoke", "0x" + "00" * 32, "--as", "Nobody Inc"], 2),
        (["submit", "/nonexistent.pem", "--as", VENDOR], 2),
    ],
    ids=["bad-id", "unknown-id", "unknown-member", "missing-file"],
)
def test_cli_exit_codes(net: Deployment, args: list[str], code: int) -> None:
    result = run_cli(*args, deployment=net)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr


def test_validator_survives_an_rpc_outage(net: Deployment, tmp_path: Path) -> None:
    from e2e import TcpProxy

    assert net.devnet is not None
    proxy = TcpProxy(net.devnet["port"])
    proxy.up()
    registry = net.registry_client()
    behind = ValidatorProcess(net, OPERATOR, tmp_path, rpc_url=proxy.url).start()
    direct = ValidatorProcess(net, CA, tmp_path).start()
    try:
        first = make_device(VENDOR, "BEFORE")
        registry.submit(
            dev_account(0), submission_for(facts(first.certificate, der=first.der))
        ).wait()
        wait_until(lambda: _status(registry, first) is Status.ACTIVE, what="first active")
        proxy.down()
        during = make_device(VENDOR, "DURING")
        registry.submit(
            dev_account(0), submission_for(facts(during.certificate, der=during.der))
        ).wait()
        wait_until(lambda: "unreachable" in behind.log_text(), what="outage noticed")
        assert _status(registry, during) is Status.PENDING  # one endorsement is not enough
        proxy.up()
        wait_until(lambda: _status(registry, during) is Status.ACTIVE, what="catch-up")
        assert behind.proc is not None and behind.proc.poll() is None  # never crashed
    finally:
        assert behind.stop() == 0
        direct.stop()
        proxy.down()
    assert "Traceback" not in behind.log_text()


def test_demo_runs_and_leaves_nothing_behind(tmp_path: Path) -> None:
    import subprocess

    from e2e import dpki_cmd

    result = subprocess.run(
        dpki_cmd("demo", "--devices", "20", "--workdir", str(tmp_path), "--json"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["active"] == 20
    assert report["impostor_status"] == "rejected" and report["impostor_reason"] == "ORG_MISMATCH"
    assert report["trusted_before"] is True and report["trusted_after"] is False
    assert report["ocsp"] == {"device 18": "good", "device 17": "revoked (key_compromise)"}
    assert report["gas"]["per_certificate"] > 0
    deployment = json.loads((tmp_path / "deployment.json").read_text())
    from dpki.dev.devnet import Devnet

    assert not Devnet(deployment["devnet"]["pid"], deployment["devnet"]["port"]).alive()
    leftover = subprocess.run(["pgrep", "-f", f"validator run.*{tmp_path}"], capture_output=True)
    assert leftover.stdout == b""
