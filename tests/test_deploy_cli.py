"""`dpki devnet up/down/status` and `dpki deploy` with an encrypted keystore."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from e2e import dpki_cmd

from dpki.chain.keys import PASSWORD_ENV, dev_account, write_keystore
from dpki.dev.devnet import Devnet


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, **(env or {}))
    return subprocess.run(dpki_cmd(*args), capture_output=True, text=True, timeout=120, env=full)


def test_devnet_up_status_down(tmp_path: Path) -> None:
    dep = str(tmp_path / "deployment.json")
    up = _run("devnet", "up", "--org", "One", "--org", "Two", "--deployment", dep, "--json")
    assert up.returncode == 0, up.stderr
    data = json.loads(up.stdout)
    assert set(data) >= {"rpc_url", "chain_id", "registry", "deploy_block", "members"}
    assert [m["organization"] for m in data["members"]] == ["One", "Two"]
    assert "key" not in json.dumps(data).replace("dev_key_index", "")  # no private key
    try:
        again = _run("devnet", "up", "--deployment", dep)
        assert again.returncode == 2 and "already running" in again.stderr
        assert _run("devnet", "status", "--deployment", dep).returncode == 0
        members = _run("members", "--deployment", dep, "--json")
        assert json.loads(members.stdout)["threshold"] == 2
    finally:
        down = _run("devnet", "down", "--deployment", dep)
    assert down.returncode == 0
    assert not Devnet(data["devnet"]["pid"], data["devnet"]["port"]).alive()
    assert _run("devnet", "status", "--deployment", dep).returncode == 1


def test_deploy_with_a_keystore_then_act(tmp_path: Path, anvil: Devnet) -> None:
    me, other = dev_account(11), dev_account(12)
    keystore = write_keystore(me, tmp_path / "me.json", "correct horse")
    dep = str(tmp_path / "deployment.json")
    args = [
        "deploy",
        "--rpc",
        anvil.rpc_url,
        "--keystore",
        str(keystore),
        "--org",
        "Me",
        "--org",
        f"Other={other.address}",
        "--threshold",
        "1",
        "--deployment",
        dep,
        "--json",
    ]

    wrong = _run(*args, env={PASSWORD_ENV: "battery staple"})
    assert wrong.returncode == 2 and "wrong password" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    deployed = _run(*args, env={PASSWORD_ENV: "correct horse"})
    assert deployed.returncode == 0, deployed.stderr
    data = json.loads(deployed.stdout)
    assert data["members"][0]["address"] == me.address
    assert data["members"][0]["keystore"] == str(keystore.resolve())
    assert me.key.hex() not in Path(dep).read_text()

    from dpki.dev.devices import make_device

    cert = tmp_path / "d.pem"
    cert.write_bytes(make_device("Me", "K-1").pem)
    sent = _run(
        "submit",
        str(cert),
        "--as",
        "Me",
        "--deployment",
        dep,
        "--json",
        env={PASSWORD_ENV: "correct horse"},
    )
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["certificates"][0]["status"] == "pending"
    # a member without a key of its own here cannot act
    refused = _run("suspend", str(cert), "--as", "Other", "--deployment", dep)
    assert refused.returncode == 2 and "--keystore" in refused.stderr
