"""The provisioning demo (``dpki demo``, what ``make demo`` runs).

A devnet with three members and threshold 2; a validator process per member; the vendor
mints device certificates and provisions them with ``dpki submit``, plus one certificate
that claims another member's organization, sent with ``--skip-check``; the validators
endorse the good ones and reject the bad one; a relying party authenticates a device with
one view call; the vendor revokes one; an inquiry node indexes the ledger and answers OCSP
for a good and the revoked device. Everything is torn down at the end, also on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from dpki.chain.deployment import Deployment, validator_account_name
from dpki.chain.registry import Registry, Status
from dpki.commands.chain import DEFAULT_ORGS, deploy_devnet
from dpki.dev.devices import make_device
from dpki.dev.devnet import Devnet
from dpki.dev.gethnet import GethNetwork, deploy_geth_devnet
from dpki.errors import DpkiError

__all__ = ["DemoReport", "run_demo"]


@dataclass
class DemoReport:
    """Figures the demo prints."""

    devices: int
    timings: dict[str, float] = field(default_factory=dict)
    gas: dict[str, int] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


def _dpki(*args: str) -> list[str]:
    return [sys.executable, "-m", "dpki", *args]


@contextmanager
def _timed(report: DemoReport, name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    report.timings[name] = time.perf_counter() - start


def _start_validator(deployment: Deployment, org: str, workdir: Path) -> subprocess.Popen[bytes]:
    slug = org.lower().replace(" ", "-")
    log = open(workdir / f"validator-{slug}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        _dpki(
            "validator",
            "run",
            "--as",
            org,
            "--deployment",
            str(deployment.path),
            "--state",
            str(workdir / f"validator-{slug}.json"),
            "--poll",
            "0.1",
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    return proc


def _stop_all(procs: list[subprocess.Popen[bytes]], devnet: Devnet | GethNetwork | None) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if devnet is not None:
        devnet.stop()


def _wait_for(
    registry: Registry, ids: list[bytes], wanted: Status, timeout: float, label: str
) -> None:
    deadline = time.monotonic() + timeout
    left = list(ids)
    while left:
        left = [c for c in left if registry.status_of(c).status is not wanted]
        if not left:
            return
        if time.monotonic() > deadline:
            raise DpkiError(f"{len(left)} {label} not {wanted.label} after {timeout:.0f} s")
        time.sleep(0.1)


def _gas_by_sender(registry: Registry, first: int, last: int) -> dict[str, int]:
    totals: dict[str, int] = {}
    for block in range(first, last + 1):
        receipts = registry.rpc.request("eth_getBlockReceipts", [hex(block)]).get("result") or []
        for r in receipts:
            sender = r["from"].lower()
            totals[sender] = totals.get(sender, 0) + int(r["gasUsed"], 16)
    return totals


def run_demo(
    devices: int = 200,
    workdir: Path | None = None,
    say: Callable[[str], None] = print,
    engine: str = "anvil",
    role_keys: bool = False,
) -> DemoReport:
    """Run the whole flow and return its figures; leaves no process behind.

    ``engine`` "geth" runs it on a 3-node geth Clique network (one sealer per member, each
    member's CLI and validator on its own node) instead of anvil. With ``role_keys`` (anvil)
    every member validates and submits with two keys (two accounts); without, a member's
    validator and its submissions share one account and its nonces.
    """
    owned_tmp = None
    if workdir is None:
        owned_tmp = tempfile.TemporaryDirectory(prefix="dpki-demo-")
        workdir = Path(owned_tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    report = DemoReport(devices=devices)
    procs: list[subprocess.Popen[bytes]] = []
    devnet: Devnet | GethNetwork | None = None
    previous = signal.getsignal(signal.SIGTERM)

    def _terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        vendor, operator, _ = DEFAULT_ORGS
        with _timed(report, "devnet_and_deploy"):
            if engine == "geth":
                deployment = deploy_geth_devnet(
                    DEFAULT_ORGS, 2, state_dir=workdir, path=workdir / "deployment.json"
                )
            else:
                deployment = deploy_devnet(
                    DEFAULT_ORGS,
                    2,
                    state_dir=workdir,
                    path=workdir / "deployment.json",
                    role_keys=role_keys,
                )
        assert deployment.devnet is not None
        if engine == "geth":
            devnet = GethNetwork.from_json(deployment.devnet)
            say(
                f"devnet    geth Clique, {len(devnet.nodes)} sealers, 1 s blocks: "
                + ", ".join(f"{n.organization} {n.rpc_url}" for n in devnet.nodes)
            )
        else:
            devnet = Devnet(deployment.devnet["pid"], deployment.devnet["port"])
        registry = deployment.registry_client()
        say(f"devnet    {deployment.rpc_url}  registry {deployment.registry}")
        say(f"members   {', '.join(DEFAULT_ORGS)}  (threshold 2 of 3)")

        validating = [validator_account_name(o) if role_keys else o for o in DEFAULT_ORGS]
        procs = [_start_validator(deployment, org, workdir) for org in validating]
        say(f"validators started: pids {', '.join(str(p.pid) for p in procs)}")

        device_dir = workdir / "devices"
        device_dir.mkdir(exist_ok=True)
        with _timed(report, "mint"):
            minted = [make_device(vendor, f"SN{i:06d}") for i in range(devices)]
            for i, d in enumerate(minted):
                (device_dir / f"device-{i:04d}.pem").write_bytes(d.pem)
        bad = make_device(operator, "SN-IMPOSTOR")
        bad_file = workdir / "impostor.pem"
        bad_file.write_bytes(bad.pem)
        say(f"minted    {devices} P-256 device certificates (O={vendor}) + 1 with O={operator}")

        start_block = registry.block_number() + 1
        env = dict(os.environ, DPKI_DEPLOYMENT=str(deployment.path))
        with _timed(report, "provision"):
            submitted = subprocess.run(
                _dpki(
                    "submit",
                    *sorted(str(p) for p in device_dir.glob("*.pem")),
                    "--as",
                    vendor,
                    "--batch-size",
                    "50",
                    "--json",
                ),
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if submitted.returncode != 0:
                raise DpkiError(f"dpki submit failed: {submitted.stderr or submitted.stdout}")
            ids = [bytes.fromhex(d.certificate.fingerprint(_sha256()).hex()) for d in minted]
            _wait_for(registry, ids, Status.ACTIVE, 300, "devices")
        rows = json.loads(submitted.stdout)["certificates"]
        say(
            f"provision {sum(1 for r in rows if r.get('submitted'))} submitted by {vendor}, "
            f"all {devices} active in {report.timings['provision']:.2f} s"
        )

        bad_id = bytes.fromhex(bad.certificate.fingerprint(_sha256()).hex())
        with _timed(report, "reject"):
            bad_run = subprocess.run(
                _dpki("submit", str(bad_file), "--as", vendor, "--skip-check", "--json"),
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if bad_run.returncode not in (0, 1):
                raise DpkiError(f"dpki submit --skip-check failed: {bad_run.stderr}")
            _wait_for(registry, [bad_id], Status.REJECTED, 120, "impostor certificate")
        record = registry.status_of(bad_id)
        from dpki.pki.codes import rejection_name

        say(
            f"impostor  rejected by {record.rejections} validators: {rejection_name(record.reason)}"
        )
        last_block = registry.block_number()

        # the relying party: certificate -> id -> one view call
        device = minted[17]
        cid = bytes.fromhex(device.certificate.fingerprint(_sha256()).hex())
        registry.is_valid(cid)  # warm the connection
        t = time.perf_counter()
        trusted = registry.is_valid(cid)
        report.timings["authenticate_view_call"] = time.perf_counter() - t
        say(
            f"device 17 presents its certificate -> id {cid.hex()[:16]}... -> isValid = {trusted}"
            f" ({report.timings['authenticate_view_call'] * 1000:.2f} ms)"
        )

        revoked = subprocess.run(
            _dpki("revoke", "0x" + cid.hex(), "--as", vendor, "--reason", "keyCompromise"),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if revoked.returncode != 0:
            raise DpkiError(f"dpki revoke failed: {revoked.stderr}")
        after = registry.status_of(cid)
        trusted_after = registry.is_valid(cid)
        say(
            f"revoke    device 17 (keyCompromise) -> status {after.status.label}, "
            f"isValid = {trusted_after}"
        )
        with _timed(report, "inquiry_index"):
            asked = {"device 18": minted[18], "device 17": device}
            ocsp_answers, events = _inquiry(registry, deployment.deploy_block, workdir, asked)
        say(
            f"inquiry   indexed {events} events in {report.timings['inquiry_index']:.2f} s; "
            + ", ".join(f"OCSP for {k}: {v}" for k, v in ocsp_answers.items())
        )
        report.facts.update(
            ocsp=ocsp_answers,
            trusted_before=trusted,
            trusted_after=trusted_after,
            impostor_status=record.status.label,
            impostor_reason=rejection_name(record.reason),
            active=devices,
        )

        gas = _gas_by_sender(registry, start_block, last_block)
        names = {m.address.lower(): m.organization for m in deployment.members}
        report.gas = {names.get(a, a): g for a, g in gas.items()}
        total = sum(gas.values())
        report.gas["total"] = total
        report.gas["per_certificate"] = total // (devices + 1)
        return report
    finally:
        _stop_all(procs, devnet)
        signal.signal(signal.SIGTERM, previous)
        if owned_tmp is not None:
            owned_tmp.cleanup()


def _inquiry(
    registry: Registry, deploy_block: int, workdir: Path, devices: dict[str, Any]
) -> tuple[dict[str, str], int]:
    """Index the ledger as an inquiry node does and ask its OCSP responder about devices."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    from dpki.inquiry.indexer import Indexer
    from dpki.inquiry.ocsp import OcspResponder, StatusIndex, load_or_create_identity
    from dpki.inquiry.store import Store

    store = Store(f"sqlite:///{workdir / 'index.sqlite'}")
    try:
        events = Indexer(registry, store, deploy_block).catch_up()
        identity = load_or_create_identity(workdir / "ocsp.key", workdir / "ocsp.pem")
        responder = OcspResponder(StatusIndex(store), identity)
        responder.refresh()
        answers = {}
        for name, device in devices.items():
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate(device.certificate, device.certificate, hashes.SHA1())
                .build()
                .public_bytes(serialization.Encoding.DER)
            )
            response = ocsp.load_der_ocsp_response(responder.respond(request))
            answer = response.certificate_status.name.lower()
            if response.revocation_reason is not None:
                answer += f" ({response.revocation_reason.name})"
            answers[name] = answer
        return answers, events
    finally:
        store.close()


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()
