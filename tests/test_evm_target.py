"""One EVM target for every engine: the registry's bytecode uses no Shanghai-or-later opcode.

geth's Clique refuses the Shanghai and Cancun forks and GoQuorum is a London-era EVM, so the
artifact is compiled for Paris. The test walks the bytecode that the chain really holds (and
the committed artifact), skipping PUSH data and the compiler's CBOR metadata, and fails on
PUSH0, MCOPY, TLOAD, TSTORE, BLOBHASH or BLOBBASEFEE.
"""

from __future__ import annotations

import pytest

from dpki.chain.registry import Registry, load_artifact
from dpki.dev.build import EVM_VERSION

#: opcodes introduced after Paris, with the fork that introduced them
LATER_OPCODES = {
    0x5F: "PUSH0 (Shanghai)",
    0x5E: "MCOPY (Cancun)",
    0x5C: "TLOAD (Cancun)",
    0x5D: "TSTORE (Cancun)",
    0x49: "BLOBHASH (Cancun)",
    0x4A: "BLOBBASEFEE (Cancun)",
}


def opcodes(code: bytes) -> list[tuple[int, int]]:
    """Return (offset, opcode) for every instruction, PUSH data and CBOR metadata skipped."""
    if len(code) >= 2:  # solc appends CBOR metadata, its length in the last two bytes
        meta = int.from_bytes(code[-2:], "big") + 2
        if meta <= len(code) and code[-meta] in (0xA1, 0xA2, 0xA3):
            code = code[:-meta]
    out = []
    i = 0
    while i < len(code):
        op = code[i]
        out.append((i, op))
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    return out


def later_opcodes(code: bytes) -> list[str]:
    """Return the post-Paris instructions in ``code`` with their offsets."""
    return [f"{LATER_OPCODES[op]} at {i}" for i, op in opcodes(code) if op in LATER_OPCODES]


def test_compiled_for_paris() -> None:
    artifact = load_artifact()
    assert EVM_VERSION == "paris"
    assert artifact["compiler"]["settings"]["evmVersion"] == "paris"


@pytest.mark.parametrize("part", ["bytecode", "deployedBytecode"])
def test_artifact_has_no_later_opcode(part: str) -> None:
    code = bytes.fromhex(load_artifact()[part].removeprefix("0x"))
    assert len(code) > 1000
    assert later_opcodes(code) == []


def test_deployed_code_has_no_later_opcode(registry: Registry) -> None:
    code = bytes(registry.w3.eth.get_code(registry.address))
    assert code == bytes.fromhex(load_artifact()["deployedBytecode"].removeprefix("0x"))
    assert later_opcodes(code) == []


def test_the_walk_finds_what_it_looks_for() -> None:
    # PUSH2 0x5f5e (data, skipped), then PUSH0 and MCOPY as instructions
    code = bytes([0x61, 0x5F, 0x5E, 0x5F, 0x5E, 0x00])
    assert later_opcodes(code) == ["PUSH0 (Shanghai) at 3", "MCOPY (Cancun) at 4"]
    cancun = bytes.fromhex(
        load_artifact()["deployedBytecode"].removeprefix("0x").replace("6000", "5f00", 1)
    )
    assert later_opcodes(cancun)
