"""The toolchain: committed artifact is fresh, ape drives the contracts, cast reads the ABI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, fake_submission

from dpki.chain.keys import dev_account
from dpki.chain.registry import Registry, load_artifact
from dpki.dev.build import ARTIFACT_PATH, compile_sources, source_hashes
from dpki.dev.devnet import find_tool


def test_artifact_sources_match_contracts() -> None:
    artifact = load_artifact()
    assert artifact["sources"] == source_hashes(ROOT), (
        "dpki/artifacts/CertificateRegistry.json is stale: run `dpki build` and commit it"
    )


@pytest.mark.slow
def test_artifact_matches_a_fresh_compile() -> None:
    artifact = load_artifact(ARTIFACT_PATH)
    fresh = compile_sources(ROOT)
    assert fresh["abi"] == artifact["abi"]
    assert fresh["bytecode"] == artifact["bytecode"]
    assert fresh["deployedBytecode"] == artifact["deployedBytecode"]


def test_cast_calls_is_valid(registry: Registry, chain: str) -> None:
    """A non-Python client (foundry's cast) uses the ABI: isValid(bytes32) flips to true."""
    sub = fake_submission(b"cast")
    cert = "0x" + sub.cert_id.hex()
    cast = str(find_tool("cast"))

    def is_valid() -> str:
        out = subprocess.run(
            [cast, "call", "--rpc-url", chain, registry.address, "isValid(bytes32)(bool)", cert],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout.strip()

    assert is_valid() == "false"
    registry.submit(dev_account(0), sub).wait()
    registry.endorse(dev_account(1), sub.cert_id).wait()
    registry.endorse(dev_account(2), sub.cert_id).wait()
    assert is_valid() == "true"


def _ape_env(tmp_path: Path) -> dict[str, str]:
    solcx_dir = tmp_path / "solcx"
    solcx_dir.mkdir()
    (solcx_dir / "solc-v0.8.30").symlink_to(ROOT / "tools" / "solcjs")
    env = dict(os.environ)
    env.update(
        SOLCX_BINARY_PATH=str(solcx_dir),
        APE_DATA_FOLDER=str(tmp_path / "ape"),
        PATH=f"{ROOT / 'tools'}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


@pytest.mark.slow
def test_ape_compile_and_test(tmp_path: Path) -> None:
    """`ape compile` and `ape test --network ethereum:local:foundry` work from ape-config.yaml."""
    env = _ape_env(tmp_path)
    ape = str(Path(sys.executable).parent / "ape")
    compiled = subprocess.run(
        [ape, "compile", "--force"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    tested = subprocess.run(
        [ape, "test", "tests/ape", "-o", "addopts=", "--network", "ethereum:local:foundry"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout
