"""`dpki network init`: genesis encodings (Clique, Besu QBFT) and a geth network that runs."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from e2e import dpki_cmd, wait_until
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from dpki.chain.consortium import (
    NodeKey,
    clique_extradata,
    decode_clique_extradata,
    decode_qbft_extradata,
    qbft_extradata,
)
from dpki.dev.devnet import stop_pid
from dpki.dev.gethnet import find_geth, rpc_call
from dpki.errors import ConfigError

# Besu's documentation, "Configure QBFT consensus": the genesis extraData of four validators
BESU_DOC_VALIDATORS = [
    "0x64a702e6263b7297a96638cac6ae65e6541f4169",
    "0x3923390ad55e90c237593b3b0e401f3b08a03185",
    "0xaefdb9a738c9f433e5b6b212a6d62f6370c2f692",
    "0xc7eeb9a4e00ce683cf93039b212648e01c6c6b78",
]
BESU_DOC_EXTRADATA = (
    "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f854"
    "9464a702e6263b7297a96638cac6ae65e6541f4169943923390ad55e90c237593b3b0e401f3b08a03185"
    "94aefdb9a738c9f433e5b6b212a6d62f6370c2f69294c7eeb9a4e00ce683cf93039b212648e01c6c6b78"
    "c080c0"
)

addresses = st.lists(
    st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    min_size=1,
    max_size=20,
    unique=True,
)


def test_qbft_extradata_is_besus_documented_vector() -> None:
    assert "0x" + qbft_extradata(BESU_DOC_VALIDATORS).hex() == BESU_DOC_EXTRADATA
    decoded = decode_qbft_extradata(bytes.fromhex(BESU_DOC_EXTRADATA[2:]))
    assert [d.lower() for d in decoded] == BESU_DOC_VALIDATORS


@given(addresses)
def test_qbft_extradata_round_trips(validators: list[str]) -> None:
    extra = qbft_extradata(validators)
    assert [v.lower() for v in decode_qbft_extradata(extra)] == validators  # order kept


@given(addresses)
def test_clique_extradata_round_trips_sorted(signers: list[str]) -> None:
    extra = clique_extradata(signers)
    assert len(extra) == 32 + 20 * len(signers) + 65
    assert [s.lower() for s in decode_clique_extradata(extra)] == sorted(signers)


@pytest.mark.parametrize(
    "bad",
    [b"", b"\xc0", bytes.fromhex("f87aa0" + "00" * 32)],
    ids=["empty", "empty-list", "truncated"],
)
def test_qbft_extradata_decoder_refuses_garbage(bad: bytes) -> None:
    with pytest.raises(ConfigError):
        decode_qbft_extradata(bad)


def _init(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        dpki_cmd("network", "init", *args, "--json"), capture_output=True, text=True, timeout=60
    )


def test_besu_qbft_files(tmp_path: Path) -> None:
    key = NodeKey.generate()
    out = tmp_path / "net"
    result = _init(
        tmp_path,
        "--engine", "besu-qbft", "--org", "Vendor A",
        "--org", f"Operator B=0x{key.public_key.hex()}",
        "--org", "CA C=0x64a702e6263b7297a96638cac6ae65e6541f4169",
        "--host", "Vendor A=10.0.0.1", "--period", "3", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    genesis = json.loads((out / "genesis.json").read_text())
    assert genesis["config"]["qbft"]["blockperiodseconds"] == 3
    assert genesis["mixHash"] == "0x" + b"ctical byzantine fault tolerance".hex()
    validators = decode_qbft_extradata(bytes.fromhex(genesis["extraData"][2:]))
    assert validators == [m["signer"] for m in summary["members"]]
    assert validators[1] == key.address
    assert set(genesis["alloc"]) == {v.lower()[2:] for v in validators}
    vendor = out / "vendor-a"
    own = NodeKey(bytes.fromhex((vendor / "key").read_text()))
    assert own.address == validators[0]  # the generated node key is the validator
    assert (vendor / "key").stat().st_mode & 0o777 == 0o600
    config = tomllib.loads((vendor / "config.toml").read_text())
    assert config["discovery-enabled"] is False and config["p2p-host"] == "10.0.0.1"
    assert config["node-private-key-file"] == "key" and config["genesis-file"] == "../genesis.json"
    assert "QBFT" in config["rpc-http-api"] and config["rpc-http-host"] == "127.0.0.1"
    peers = json.loads((vendor / "static-nodes.json").read_text())
    assert peers == [key.enode("127.0.0.1", 30303)]  # CA C gave an address: no enode known
    assert summary["members"][0]["missing_peers"] == ["CA C"]
    ca_peers = json.loads((out / "ca-c" / "static-nodes.json").read_text())
    assert own.enode("10.0.0.1", 30303) in ca_peers


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--engine", "besu-qbft", "--org", "A", "--org", "A"], "distinct"),
        (["--engine", "geth-clique", "--org", "A=0x12"], "neither an address"),
        (["--engine", "raft", "--org", "A"], "raft"),
        (["--engine", "geth-clique", "--org", "A", "--host", "B=h"], "--host"),
    ],
    ids=["duplicate", "bad-address", "engine", "host"],
)
def test_bad_input_is_refused(tmp_path: Path, args: list[str], words: str) -> None:
    result = _init(tmp_path, *args, "--out", str(tmp_path / "n"))
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def _free_port_block() -> int:
    """Return a base port whose nine ports (devp2p base+i, JSON-RPC base+100+i, engine API
    base+200+i) are free now and below the kernel's ephemeral range: ports in that range
    can be taken between this check and geth's bind by any outgoing connection (the test's
    own JSON-RPC calls to the nodes already up among them)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    bases = list(range(10_000, max(10_001, low - 300), 1000))
    random.shuffle(bases)
    for base in bases:
        ports = [base + block + i for block in (0, 100, 200) for i in range(3)]
        if all(_free(port) for port in ports):
            return base
    raise AssertionError("no free block of ports below the ephemeral range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def test_geth_clique_files_start_a_sealing_network(tmp_path: Path) -> None:
    geth = find_geth()
    out = tmp_path / "net"
    base = _free_port_block()
    # each member brings its own sealing key (NAME=ADDRESS) and imports it afterwards
    signers = [Account.create() for _ in range(3)]
    orgs = ["Vendor A", "Operator B", "CA C"]
    result = _init(
        tmp_path, "--engine", "geth-clique",
        *[a for o, s in zip(orgs, signers, strict=True) for a in ("--org", f"{o}={s.address}")],
        "--base-port", str(base), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    for member, signer in zip(summary["members"], signers, strict=True):
        folder = out / member["folder"]
        assert member["signer"] == signer.address and not (folder / "password").exists()
        p2p = tomllib.loads((folder / "config.toml").read_text())["Node"]["P2P"]
        assert p2p["ListenAddr"] == f":{member['p2p_port']}"  # its host's interfaces
        keyfile = Account.encrypt(signer.key, "pw", kdf="scrypt", iterations=2**12)
        (folder / "keystore").mkdir()
        (folder / "keystore" / "signer.json").write_text(json.dumps(keyfile))
        (folder / "password").write_text("pw")
    genesis = json.loads((out / "genesis.json").read_text())
    decoded = decode_clique_extradata(bytes.fromhex(genesis["extradata"][2:]))
    assert sorted(s.lower() for s in decoded) == sorted(a.address.lower() for a in signers)
    pids = []
    env = dict(os.environ, DPKI_GETH=str(geth))
    try:
        for m in summary["members"]:
            folder = out / m["folder"]
            with open(folder / "node.log", "ab") as log:
                proc = subprocess.Popen(
                    ["sh", str(folder / "start.sh")],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            pids.append(proc.pid)
        urls = [f"http://127.0.0.1:{m['rpc_port']}" for m in summary["members"]]

        def sealing() -> bool:
            try:
                heads = [int(rpc_call(u, "eth_blockNumber"), 16) for u in urls]
                peers = [int(rpc_call(u, "net_peerCount"), 16) for u in urls]
            except Exception:
                return False
            return min(heads) >= 3 and min(peers) == 2

        wait_until(sealing, timeout=60, what="the three nodes peer and seal")
        activity = rpc_call(urls[0], "clique_status")["sealerActivity"]
        assert {a.lower() for a in activity} <= {s.address.lower() for s in signers}
        assert rpc_call(urls[0], "eth_chainId") == hex(1337)
    finally:
        for pid in pids:
            stop_pid(pid, timeout=20)
    time.sleep(0.2)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_building_geth_without_go_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dpki.dev.gethnet import build_geth
    from dpki.errors import ToolchainError

    monkeypatch.setenv("PATH", str(tmp_path))  # no go here
    with pytest.raises(ToolchainError, match=r"Go is not installed.*make geth.*DPKI_GETH"):
        build_geth(tmp_path / "bin")
    assert not (tmp_path / "bin" / "geth").exists()


def test_geth_is_the_one_make_geth_built(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import ROOT

    monkeypatch.delenv("DPKI_GETH", raising=False)
    assert find_geth(build=False) == ROOT / ".build" / "bin" / "geth"  # `make test` built it


def test_every_keystore_has_the_16_byte_iv_geth_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    """eth-keyfile writes the AES IV as an integer's bytes: one keystore in 256 (an IV that
    starts with a zero byte) had 15, and geth panicked on it ("bad IV length") instead of
    starting the sealer. Every keystore dpki writes has 16, and still decrypts."""
    import Crypto.Random

    from dpki.chain.keys import encrypt_key

    real = Crypto.Random.get_random_bytes
    monkeypatch.setattr(Crypto.Random, "get_random_bytes", lambda n: b"\x00\x00" + real(n - 2))
    account = Account.create()

    def check(**options: Any) -> None:
        raw = Account.encrypt(account.key, "pw", **options)
        assert len(bytes.fromhex(raw["crypto"]["cipherparams"]["iv"])) < 16  # the bug
        keyfile = encrypt_key(account.key, "pw", **options)
        assert len(bytes.fromhex(keyfile["crypto"]["cipherparams"]["iv"])) == 16
        assert Account.decrypt(keyfile, "pw") == account.key

    check()  # dpki's member keystores and dpki network init's sealers
    check(kdf="scrypt", iterations=2**12)  # the geth devnet's sealers
