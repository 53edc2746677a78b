"""The packed-record constants of the contract against the compiler's own storage layout."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import solcx
from conftest import ROOT

from dpki.chain.registry import ARTIFACT_PATH
from dpki.dev.build import SETTINGS, find_solc

SOURCES = sorted((ROOT / "contracts").glob("*.sol"))
LIFECYCLE = (ROOT / "contracts" / "CertificateLifecycle.sol").read_text()
EIP170_MAX_CODE = 24_576


@pytest.fixture(scope="module")
def layout() -> dict[str, Any]:
    """Compile with storageLayout output and return the registry's layout and types."""
    settings = dict(SETTINGS, outputSelection={"*": {"*": ["storageLayout"]}})
    sources = {str(p.relative_to(ROOT)): {"content": p.read_text()} for p in SOURCES}
    output = solcx.compile_standard(
        {"language": "Solidity", "sources": sources, "settings": settings},
        solc_binary=find_solc(ROOT),
        allow_paths=[str(ROOT)],
        base_path=str(ROOT),
    )
    found: dict[str, Any] = output["contracts"]["contracts/CertificateRegistry.sol"][
        "CertificateRegistry"
    ]["storageLayout"]
    return found


def constant(name: str) -> int:
    match = re.search(rf"uint256 internal constant {name} = (\d+);", LIFECYCLE)
    assert match, name
    return int(match.group(1))


def test_record_shift_constants_match_the_compilers_layout(layout: dict[str, Any]) -> None:
    record = next(t for k, t in layout["types"].items() if k.startswith("t_struct(Record)"))
    offsets = {m["label"]: int(m["offset"]) * 8 for m in record["members"]}
    assert record["numberOfBytes"] == "32"  # one slot
    assert {m["slot"] for m in record["members"]} == {"0"}
    assert offsets["endorsedMask"] == 0
    assert offsets["rejectedMask"] == constant("REJECTED_SHIFT")
    assert offsets["updatedAt"] == constant("UPDATED_SHIFT")
    assert offsets["submitter"] == constant("SUBMITTER_SHIFT")
    assert offsets["status"] == constant("STATUS_SHIFT")
    assert offsets["flags"] == constant("FLAGS_SHIFT")


def test_validators_submitters_and_threshold_share_one_slot(layout: dict[str, Any]) -> None:
    by_label = {s["label"]: s for s in layout["storage"]}
    slots = {by_label[n]["slot"] for n in ("_validatorMask", "_submitterMask", "_threshold")}
    assert len(slots) == 1
    assert int(by_label["_validatorMask"]["offset"]) == 0
    assert int(by_label["_submitterMask"]["offset"]) * 8 == constant("SUBMITTERS_SHIFT")
    assert int(by_label["_threshold"]["offset"]) * 8 == constant("THRESHOLD_SHIFT")


def test_the_deployed_code_fits_eip_170() -> None:
    code = json.loads(ARTIFACT_PATH.read_text())["deployedBytecode"]
    assert (len(code) - 2) // 2 <= EIP170_MAX_CODE
