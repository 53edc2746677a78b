"""Compile ``contracts/`` into the committed artifact ``dpki/artifacts/CertificateRegistry.json``.

A native ``solc`` of the pinned version is used where one is installed; otherwise the npm
``solc`` package through the ``tools/solcjs`` adapter (solc-js prints a banner before its
JSON, so py-solc-x cannot call its own CLI).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from dpki.errors import ToolchainError

__all__ = [
    "ARTIFACT_PATH",
    "EVM_VERSION",
    "SOLC_VERSION",
    "build",
    "compile_sources",
    "find_solc",
    "repo_root",
    "source_hashes",
]

SOLC_VERSION = "0.8.30"
CONTRACT_NAME = "CertificateRegistry"
ARTIFACT_PATH = Path(__file__).resolve().parent.parent / "artifacts" / f"{CONTRACT_NAME}.json"

EVM_VERSION = "paris"
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 1000},
    # Paris: the last EVM every engine runs: geth's Clique and GoQuorum refuse Shanghai (PUSH0)
    # and Cancun (MCOPY, TSTORE); Besu QBFT and anvil run Paris bytecode on any later fork.
    "evmVersion": EVM_VERSION,
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


def repo_root() -> Path:
    """Return the source checkout this package lives in (where ``contracts/`` is)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "contracts").is_dir():
        raise ToolchainError(
            f"no contracts/ folder next to {Path(__file__).resolve().parents[1]}: building "
            "needs a source checkout, not an installed package"
        )
    return root


def source_hashes(root: Path | None = None) -> dict[str, str]:
    """Return sha256 of every Solidity source under ``contracts/``, by relative path."""
    base = root or repo_root()
    return {
        str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((base / "contracts").glob("*.sol"))
    }


def _version_of(binary: str) -> str | None:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except OSError:
        return None
    match = re.search(r"Version: (\d+\.\d+\.\d+)", out)
    return match.group(1) if match else None


def find_solc(root: Path | None = None) -> Path:
    """Return a compiler executable of version ``SOLC_VERSION``: native first, then solc-js."""
    native = shutil.which("solc")
    if native and _version_of(native) == SOLC_VERSION:
        return Path(native)
    base = root or repo_root()
    adapter = base / "tools" / "solcjs"
    if not (base / "node_modules" / "solc").is_dir():
        raise ToolchainError(
            f"no native solc {SOLC_VERSION} and no npm solc in {base / 'node_modules'}: "
            "run `npm ci` (or `make .bootstrap`)"
        )
    found = _version_of(str(adapter))
    if found != SOLC_VERSION:
        raise ToolchainError(f"npm solc is {found}, wanted {SOLC_VERSION}: run `npm ci`")
    return adapter


def compile_sources(root: Path | None = None) -> dict[str, Any]:
    """Compile the contracts and return the artifact for ``CertificateRegistry``."""
    import solcx  # imported here: relying parties never need the compiler

    base = root or repo_root()
    solc = find_solc(base)
    sources = {
        str(p.relative_to(base)): {"content": p.read_text()}
        for p in sorted((base / "contracts").glob("*.sol"))
    }
    try:
        output = solcx.compile_standard(
            {"language": "Solidity", "sources": sources, "settings": SETTINGS},
            solc_binary=solc,
            allow_paths=[str(base)],
            base_path=str(base),
        )
    except solcx.exceptions.SolcError as exc:
        raise ToolchainError(f"compilation failed:\n{exc.stderr_data or exc}") from None
    contract = output["contracts"][f"contracts/{CONTRACT_NAME}.sol"][CONTRACT_NAME]
    return {
        "contractName": CONTRACT_NAME,
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
        "compiler": {"version": SOLC_VERSION, "settings": SETTINGS},
        "sources": source_hashes(base),
    }


def build(root: Path | None = None, out: Path = ARTIFACT_PATH) -> Path:
    """Compile and write the artifact; return its path."""
    artifact = compile_sources(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(artifact, indent=2, sort_keys=True) + "\n")
    return out
