"""What a new operator hit (issue 12): each test is one defect and fails without its fix.

Chain-bound state, addresses, outages, waiting, exit codes, commands run outside the
deployment folder, oversize input and the smaller frictions.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import ORGS
from e2e import dpki_cmd, private_devnet, wait_until
from eth_account.signers.local import LocalAccount
from inquiry_helpers import devices, free_port

from dpki.chain.deployment import Deployment, DeploymentMember
from dpki.chain.keys import PASSWORD_ENV, dev_account, write_keystore
from dpki.chain.registry import Registry, Status
from dpki.cli import main
from dpki.dev.devices import make_device
from dpki.dev.devnet import Devnet
from dpki.inquiry.indexer import Indexer
from dpki.inquiry.schema import StoreError
from dpki.inquiry.store import Store
from dpki.pki.x509 import load_facts
from dpki.submission import submission_for
from dpki.validator import Validator

ROOT = Path(__file__).resolve().parent.parent
CERTS = Path(__file__).parent / "certs"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "DPKI_DEPLOYMENT"} | (env or {})
    return subprocess.run(
        dpki_cmd(*args), capture_output=True, text=True, timeout=timeout, env=full, cwd=cwd
    )


def _clean(result: subprocess.CompletedProcess[str]) -> str:
    """Return stderr after checking it holds no traceback and no library's raw error."""
    for raw in ("Traceback", "HTTPConnectionPool", "NewConnectionError", "ParseError {"):
        assert raw not in result.stderr, result.stderr
    return result.stderr


def _session_deployment(tmp_path: Path, rpc_url: str, registry: Registry, block: int) -> Path:
    """Write a devnet deployment file for the session's registry (dev keys 0..2)."""
    deployment = Deployment(
        rpc_url=rpc_url,
        chain_id=registry.chain_id,
        registry=registry.address,
        deploy_block=block,
        members=[
            DeploymentMember(org, a.address, ["validator", "submitter"], i)
            for i, (org, a) in enumerate(zip(ORGS, _dev_accounts(), strict=False))
        ],
        network="devnet",
    )
    return deployment.save(tmp_path / "deployment.json")


def _dev_accounts() -> list[LocalAccount]:
    return [dev_account(i) for i in range(3)]


# ---------------------------------------------------------------- 1, 2: state knows its chain


def test_state_is_bound_to_its_chain_validators_reset_indexes_refuse(tmp_path: Path) -> None:
    """A second devnet in the same folder: the validator's checkpoint starts over (its old
    block number would skip the new chain's submissions) and the index refuses the chain."""
    state = tmp_path / "validator-operator-b.json"
    db = f"sqlite:///{tmp_path / 'index.db'}"
    first = tmp_path / "first"
    first.mkdir()
    with private_devnet(first, threshold=1) as one:
        registry = one.registry_client()
        account = one.signer("Vendor A")
        for device in devices(3):  # several blocks: the checkpoint lands past block 4
            registry.submit(account, submission_for(load_facts(device.der)[0])).wait()
        node = Validator(
            registry, one.signer("Operator B"), deploy_block=one.deploy_block, state_path=state
        )
        while node.step():
            pass
        assert json.loads(state.read_text())["checkpoint"] >= one.deploy_block + 3
        Indexer(registry, Store(db), one.deploy_block).catch_up()
        genesis = registry.genesis_hash()
    second = tmp_path / "second"
    second.mkdir()
    time.sleep(1.1)  # anvil's genesis differs by its timestamp (seconds), as between two runs
    with private_devnet(second, threshold=1) as two:
        assert (two.chain_id, two.registry) == (one.chain_id, one.registry)
        assert two.registry_client().genesis_hash() != genesis
        registry = two.registry_client()
        device = devices(1)[0]
        facts = load_facts(device.der)[0]
        registry.submit(two.signer("Vendor A"), submission_for(facts)).wait()
        node = Validator(
            registry, two.signer("Operator B"), deploy_block=two.deploy_block, state_path=state
        )
        while node.step():
            pass
        assert registry.status_of(facts.id).status is Status.ACTIVE
        assert json.loads(state.read_text())["chain"].startswith(f"{two.chain_id}:0x")

        with pytest.raises(StoreError, match="another chain"):
            Indexer(registry, Store(db), two.deploy_block)
        for argv in (
            ["indexer", "run", "--once", "--db", db],
            ["serve", "--follow", "--db", db, "--port", str(free_port())],
        ):
            refused = _run(*argv, "--deployment", str(two.path))
            assert refused.returncode == 2, refused.stderr
            assert "another chain" in _clean(refused)


# ---------------------------------------------------------------- 3: addresses


BAD_ADDRESSES = {
    "short": ("0x1234", "40 hex digits"),
    "not hex": ("notanaddress", "40 hex digits"),
    # the EIP-55 form of dev account 1 with one letter's case flipped
    "bad checksum": ("0x70997970c51812dc3A010C7d01b50e0d17dc79C8", "checksum"),
}


@pytest.mark.parametrize("case", list(BAD_ADDRESSES), ids=list(BAD_ADDRESSES))
def test_bad_addresses_are_refused_in_words(
    case: str, tmp_path: Path, chain: str, registry: Registry, deploy_block: int
) -> None:
    value, said = BAD_ADDRESSES[case]
    dep = str(_session_deployment(tmp_path, chain, registry, deploy_block))
    for argv in (
        ["propose", "add-member", value, "X", "--as", "Vendor A"],
        ["propose", "remove-member", value, "--as", "Vendor A"],
        ["propose", "set-roles", value, "--roles", "validator", "--as", "Vendor A"],
    ):
        result = _run(*argv, "--deployment", dep)
        assert result.returncode == 2, (argv, result.stderr)
        assert said in _clean(result)
    keystore = tmp_path / "me.json"
    keystore.write_text("{}")  # never read: the address is refused first
    result = _run(
        "deploy", "--rpc", chain, "--keystore", str(keystore), "--org", "Me",
        "--org", f"Operator B={value}", "--deployment", str(tmp_path / "new.json"),
    )  # fmt: skip
    assert result.returncode == 2 and said in _clean(result)
    assert registry.proposal_count() == 0


def test_a_right_checksum_and_lowercase_are_taken(tmp_path: Path, chain: str, registry: Registry,
                                                  deploy_block: int) -> None:  # fmt: skip
    dep = str(_session_deployment(tmp_path, chain, registry, deploy_block))
    for value in (dev_account(7).address, dev_account(8).address.lower()):
        result = _run("propose", "add-member", value, f"Org {value[-4:]}", "--as", "Vendor A",
                      "--deployment", dep)  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert registry.proposal_count() == 2


# ---------------------------------------------------------------- 4, 5: the devnet's processes


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_devnet_keeps_track_of_its_processes(tmp_path: Path) -> None:
    dep = tmp_path / "deployment.json"
    keystore = write_keystore(dev_account(11), tmp_path / "me.json", "pw")
    up = _run("devnet", "up", "--validators", "--deployment", str(dep), "--json")
    assert up.returncode == 0, up.stderr
    data = json.loads(up.stdout)
    pids = [v["pid"] for v in data["devnet"]["validators"]]
    try:
        assert len(pids) == 3 and all(_alive(p) for p in pids)
        for force in ([], ["--force"]):
            deploy = _run(
                "deploy", "--rpc", data["rpc_url"], "--keystore", str(keystore), "--org", "Me",
                "--deployment", str(dep), *force, env={PASSWORD_ENV: "pw"},
            )  # fmt: skip
            assert deploy.returncode == 2 and "running devnet" in _clean(deploy)
            assert json.loads(dep.read_text()) == data  # the devnet's file is untouched
        status = _run("devnet", "status", "--deployment", str(dep))
        assert status.returncode == 0 and status.stdout.count("validator ") == 3
    finally:
        down = _run("devnet", "down", "--deployment", str(dep))
    assert down.returncode == 0, down.stderr
    wait_until(lambda: not any(_alive(p) for p in pids), 20, "validators stopped")
    assert not Devnet(data["devnet"]["pid"], data["devnet"]["port"]).alive()

    # a file of another network: deploy needs --force, devnet up wants its own file
    other = {**data, "network": "custom", "rpc_url": "http://besu.example:8545"}
    other.pop("devnet")
    dep.write_text(json.dumps(other))
    deploy = _run("deploy", "--rpc", data["rpc_url"], "--keystore", str(keystore), "--org", "Me",
                  "--deployment", str(dep), env={PASSWORD_ENV: "pw"})  # fmt: skip
    assert deploy.returncode == 2 and "--force" in _clean(deploy)
    up_again = _run("devnet", "up", "--deployment", str(dep))
    assert up_again.returncode == 2 and "not a devnet" in _clean(up_again)
    assert json.loads(dep.read_text()) == other


# ---------------------------------------------------------------- 9: outages in words


def test_a_stopped_ledger_and_inquiry_node_are_said_in_words(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    dep = Deployment(
        rpc_url=f"http://127.0.0.1:{port}",
        chain_id=31337,
        registry="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        deploy_block=1,
        members=[],
        network="devnet",
    ).save(tmp_path / "deployment.json")
    status = _run("status", "ab" * 32, "--deployment", str(dep))
    assert status.returncode == 3
    said = _clean(status)
    assert f"the ledger at http://127.0.0.1:{port} does not answer" in said
    assert "connection refused" in said and "dpki devnet status" in said
    verify = _run(
        "verify", str(CERTS / "good_device_p256.pem"), "--via", f"http://127.0.0.1:{port}"
    )
    assert verify.returncode == 3
    assert "does not answer (connection refused)" in _clean(verify)


# ---------------------------------------------------------------- 10, 15: waiting and reasons


def test_submit_wait_shows_progress_and_lists_pending_ids_on_timeout(
    tmp_path: Path, chain: str, registry: Registry, deploy_block: int
) -> None:
    dep = str(_session_deployment(tmp_path, chain, registry, deploy_block))
    files = []
    for i, device in enumerate(devices(2)):
        files.append(tmp_path / f"d{i}.pem")
        files[-1].write_bytes(device.pem)
    result = _run("submit", *map(str, files), "--as", "Vendor A", "--wait", "--timeout", "1",
                  "--deployment", dep)  # fmt: skip
    assert result.returncode == 1, result.stderr  # not active: a negative answer, not bad input
    said = _clean(result)
    assert "waiting: 0 of 2 decided" in said
    assert "2 certificate(s) still pending after 1 s" in said
    for file in files:
        assert load_facts(file)[0].id in said


def test_submit_says_why_a_certificate_was_rejected(
    tmp_path: Path, chain: str, registry: Registry, deploy_block: int, accounts: list[Any]
) -> None:
    dep = str(_session_deployment(tmp_path, chain, registry, deploy_block))
    impostor = tmp_path / "impostor.pem"
    impostor.write_bytes(make_device("Operator B Ltd", "SN-IMPOSTOR").pem)  # not a member
    full = {k: v for k, v in os.environ.items() if k != "DPKI_DEPLOYMENT"}
    args = ["submit", str(impostor), "--as", "Vendor A", "--skip-check", "--deployment", dep]
    waiting = subprocess.Popen(
        dpki_cmd(*args, "--wait", "--timeout", "60"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
    )
    nodes = [
        Validator(
            registry, accounts[i], deploy_block=deploy_block, state_path=tmp_path / f"v{i}.json"
        )
        for i in (1, 2)
    ]
    try:
        while waiting.poll() is None:  # the validators decide while submit --wait waits
            for node in nodes:
                node.step()
            time.sleep(0.2)
        out, err = waiting.communicate(timeout=10)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 1, err
    assert "rejected by the validators: ORG_MISMATCH" in out


def test_renew_wait_and_cancel_and_empty_proposals(
    tmp_path: Path, chain: str, registry: Registry, deploy_block: int, accounts: list[Any]
) -> None:
    dep = str(_session_deployment(tmp_path, chain, registry, deploy_block))
    none = _run("proposals", "--open", "--deployment", dep)
    assert none.returncode == 0 and none.stdout.strip() == "no open proposals"

    old, new = devices(2)
    old_facts = load_facts(old.der)[0]
    registry.submit(accounts[0], submission_for(old_facts)).wait()
    for i in (1, 2):
        registry.endorse(accounts[i], bytes.fromhex(old_facts.id)).wait()
    (tmp_path / "new.pem").write_bytes(new.pem)
    renewed = _run("renew", old_facts.id, str(tmp_path / "new.pem"), "--as", "Vendor A",
                   "--wait", "--timeout", "1", "--deployment", dep)  # fmt: skip
    assert renewed.returncode == 1, renewed.stderr  # no validator ran: still pending
    assert load_facts(new.der)[0].id in _clean(renewed)

    proposed = _run("propose", "threshold", "1", "--as", "Vendor A", "--deployment", dep, "--json")
    assert proposed.returncode == 0, proposed.stderr
    number = json.loads(proposed.stdout)["id"]
    other = _run("cancel", str(number), "--as", "Operator B", "--deployment", dep)
    assert other.returncode == 3 and "NotProposer" in _clean(other)
    cancelled = _run("cancel", str(number), "--as", "Vendor A", "--deployment", dep)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"proposal #{number} (set_threshold) cancelled" in cancelled.stdout
    assert registry.proposal(number).cancelled


def test_verify_json_time_is_iso_and_an_id_points_to_status(
    tmp_path: Path, chain: str, registry: Registry, deploy_block: int
) -> None:
    dep = str(_session_deployment(tmp_path, chain, registry, deploy_block))
    cert = str(CERTS / "good_device_p256.pem")
    verified = _run("verify", cert, "--json", "--deployment", dep)
    assert verified.returncode == 1  # not on this ledger
    assert ISO.match(json.loads(verified.stdout)["checked_at"])
    as_id = _run("verify", "ab" * 32, "--deployment", dep)
    assert as_id.returncode == 2
    assert f"dpki status {'ab' * 32}" in _clean(as_id)


# ---------------------------------------------------------------- 11: the exit-code table


def _leaves(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import click

    out = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            out.extend(_leaves(command, (*path, name)))
        else:
            out.append((*path, name))
    return out


COMMANDS = _leaves(main)

# one bad input or usage per command (exit 2), run where there is no deployment file
BAD_INPUT: dict[tuple[str, ...], list[str]] = {
    ("approve",): ["0", "--as", "X"],
    ("authorizations",): [],
    ("authorize-issuer",): ["nothing", "--as", "X"],
    ("deauthorize-issuer",): ["nothing", "--as", "X"],
    ("network", "init"): ["--engine", "geth-clique", "--org", "A=0x1234"],
    ("propose", "authorize-issuer"): ["nothing", "--member", "0x1234", "--as", "X"],
    ("propose", "deauthorize-issuer"): ["nothing", "--member", "0x1234", "--as", "X"],
    ("settle",): ["nothing", "--as", "X"],
    ("withdraw",): ["nothing", "--as", "X"],
    ("build",): ["--no-such-option"],
    ("cancel",): ["abc", "--as", "X"],
    ("check",): ["missing.pem"],
    ("deploy",): ["--rpc", "notaurl", "--keystore", "ks.json", "--org", "Me"],
    ("demo",): ["--devices", "0"],
    ("devnet", "down"): ["--deployment", "bad.json"],
    ("devnet", "status"): ["--no-such-option"],
    ("devnet", "up"): ["--org", "A", "--threshold", "2"],
    ("execute",): ["1", "--as", "X"],
    ("gateway",): ["--to", "nohostport", "--cert", "ks.json", "--key", "ks.json"],
    ("indexer", "run"): ["--once"],
    ("members",): [],
    ("proposals",): [],
    ("propose", "add-member"): ["0x1234", "X", "--as", "X"],
    ("propose", "remove-member"): ["notanaddress", "--as", "X"],
    ("propose", "revoke"): ["nothing", "--as", "X"],
    ("propose", "resume"): ["nothing", "--as", "X"],
    ("propose", "set-roles"): ["0x1234", "--as", "X"],
    ("propose", "suspend"): ["nothing", "--as", "X"],
    ("propose", "threshold"): ["0", "--as", "X"],
    ("renew",): ["nothing", "missing.pem", "--as", "X"],
    ("resume",): ["nothing", "--as", "X"],
    ("revoke",): ["nothing", "--as", "X", "--reason", "boredom"],
    ("serve",): ["--workers", "0"],
    ("status",): ["nothing"],
    ("submit",): ["missing.pem", "--as", "X"],
    ("suspend",): ["nothing", "--as", "X"],
    ("validator", "run"): ["--as", "X", "--once"],
    ("verify",): ["missing.pem"],
}


def test_every_command_is_in_the_sweep() -> None:
    assert sorted(BAD_INPUT) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_exit_codes_follow_the_readme_table(
    command: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DPKI_DEPLOYMENT", raising=False)
    (tmp_path / "ks.json").write_text("{}")
    (tmp_path / "bad.json").write_text("{not json")
    runner = CliRunner()
    helped = runner.invoke(main, [*command, "--help"])
    assert helped.exit_code == 0 and "Usage:" in helped.output
    unknown = runner.invoke(main, [*command, "--no-such-option"])
    assert unknown.exit_code == 2
    bad = runner.invoke(main, [*command, *BAD_INPUT[command]])
    assert bad.exit_code == 2, bad.output
    assert not isinstance(bad.exception, Exception) or isinstance(bad.exception, SystemExit), (
        bad.exception
    )


def test_deploy_to_a_non_url_is_bad_input(tmp_path: Path) -> None:
    keystore = write_keystore(dev_account(11), tmp_path / "me.json", "pw")
    result = _run(
        "deploy", "--rpc", "notaurl", "--keystore", str(keystore), "--org", "Me",
        "--deployment", str(tmp_path / "deployment.json"), env={PASSWORD_ENV: "pw"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "want an http(s) URL" in _clean(result)


def test_serve_on_a_busy_port_is_bad_input_and_says_so_first(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run("serve", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 2
    said = _clean(result)
    assert f"cannot listen on 127.0.0.1:{port}" in said and "inquiry node on" not in said
    assert not (tmp_path / ".dpki").exists()  # nothing created for a server that cannot start


# ---------------------------------------------------------------- 12: outside the folder


def test_check_outside_the_deployment_folder_says_the_ledger_was_not_consulted(
    tmp_path: Path,
) -> None:
    result = _run("check", str(CERTS / "good_issued.pem"), cwd=tmp_path)
    assert result.returncode == 1 and "UNKNOWN_ISSUER" in result.stdout
    assert "the ledger was not consulted" in _clean(result)
    as_json = _run("check", str(CERTS / "good_issued.pem"), "--json", cwd=tmp_path)
    assert json.loads(as_json.stdout)["ledger_consulted"] is False


def test_serve_outside_the_deployment_folder_says_what_it_made_and_serves(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        dpki_cmd("serve", "--port", str(free_port())),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "DPKI_DEPLOYMENT"},
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        while not any("inquiry node on" in line for line in lines):
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
    finally:
        proc.terminate()
        proc.wait(20)
    said = "".join(lines)
    assert "no chain behind it" in said
    assert "created an OCSP responder key" in said
    assert "is empty" in said


# ---------------------------------------------------------------- 14: oversize and odd input


def test_oversize_input_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.pem"
    with open(big, "wb") as handle:  # 200 MB, sparse: reading it would take 200 MB
        handle.truncate(200 * 1024 * 1024)
    result = _run("check", str(big), "--json")
    assert result.returncode == 2
    error = json.loads(result.stdout)["certificates"][0]["error"]
    assert "want at most 16,777,216 bytes" in error


def test_a_der_error_is_in_words_not_a_rust_debug_string(tmp_path: Path) -> None:
    pem = tmp_path / "odd.pem"
    body = "MAUCAQECAQE="  # SEQUENCE { INTEGER 1, INTEGER 1 }: not a certificate
    pem.write_text(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
    result = _run("check", str(pem))
    assert result.returncode == 2
    assert "kind:" not in result.stdout and "ParseError {" not in result.stdout
    assert "unexpected ASN.1 tag" in result.stdout or "ASN.1" in result.stdout


# ---------------------------------------------------------------- 3, 15: the demo


def test_demo_runs_with_few_devices(tmp_path: Path) -> None:
    result = _run("demo", "--devices", "5", "--workdir", str(tmp_path), "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ocsp"] == {
        "device 3": "good",
        "device 4": "revoked (key_compromise)",
    }


@pytest.mark.slow
def test_ctrl_c_in_the_demo_says_interrupted_and_leaves_nothing(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        dpki_cmd("demo", "--devices", "400", "--workdir", str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Ctrl-C reaches the whole foreground group: so here
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("minted"):
            break
    devnet = json.loads((tmp_path / "deployment.json").read_text())["devnet"]
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "dpki: interrupted" in err and "nonce" not in err and "Traceback" not in err
    wait_until(lambda: not Devnet(devnet["pid"], devnet["port"]).alive(), 10, "anvil gone")


# ---------------------------------------------------------------- 15: packaging


def test_pyproject_license_is_an_spdx_string() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert isinstance(project["license"], str) and project["license"]
