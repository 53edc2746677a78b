"""The Python error classes against the contract ABI, and revert decoding (no chain needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import eth_abi
import pytest
from eth_utils import keccak, to_checksum_address

from dpki import errors
from dpki.chain.messages import CONTRACT_ERROR_WORDS, explain
from dpki.chain.registry import ARTIFACT_PATH, Status, decode_revert, load_artifact
from dpki.errors import CONTRACT_ERRORS, ChainError, ContractError

TESTS = Path(__file__).resolve().parent
ABI = load_artifact(ARTIFACT_PATH)["abi"]
ABI_ERRORS = {item["name"]: item for item in ABI if item["type"] == "error"}
ABI_EVENTS = sorted(item["name"] for item in ABI if item["type"] == "event")
ADDRESS = "0x1234567890AbcdEF1234567890aBcdef12345678"


def signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"


def encode(item: dict[str, Any], values: list[Any]) -> bytes:
    """Hand-encode a custom error the way the EVM returns it: selector + ABI arguments."""
    types = [i["type"] for i in item["inputs"]]
    return keccak(text=signature(item))[:4] + eth_abi.encode(types, values)


SAMPLES: dict[str, Any] = {
    "address": ADDRESS.lower(),
    "bool": True,
    "bytes32": bytes(range(32)),
    "string": "Ünïcode Org",
    "uint8": 5,
    "uint40": 2**40 - 1,
    "uint256": 2**256 - 1,
}


def sample(inp: dict[str, Any]) -> Any:
    return SAMPLES[inp["type"]]


def expected_value(inp: dict[str, Any]) -> Any:
    if inp["type"] == "address":
        return ADDRESS
    if inp.get("internalType", "").startswith("enum ") and inp["internalType"].endswith(".Status"):
        return Status(SAMPLES["uint8"])
    return sample(inp)


def test_every_abi_error_has_a_class_and_vice_versa() -> None:
    assert set(CONTRACT_ERRORS) == set(ABI_ERRORS)
    assert len(CONTRACT_ERRORS) == len({cls.name for cls in CONTRACT_ERRORS.values()})


@pytest.mark.parametrize("name", sorted(CONTRACT_ERRORS))
def test_each_error_class_is_named_after_its_abi_error(name: str) -> None:
    cls = CONTRACT_ERRORS[name]
    assert cls.name == name == cls.__name__
    assert issubclass(cls, ContractError)
    assert getattr(errors, name) is cls
    assert name in errors.__all__


@pytest.mark.parametrize("name", sorted(ABI_ERRORS))
def test_decode_revert_builds_the_class_with_named_arguments(name: str) -> None:
    item = ABI_ERRORS[name]
    data = encode(item, [sample(i) for i in item["inputs"]])
    for raw in (data, "0x" + data.hex(), data.hex()):
        exc = decode_revert(raw)
        assert type(exc) is CONTRACT_ERRORS[name]
        assert exc.args_by_name == {i["name"]: expected_value(i) for i in item["inputs"]}
        assert str(exc).startswith(f"registry refused ({name}): ")
        assert "{" not in str(exc) and "=" not in str(exc)  # words, every field filled in


def test_decode_revert_invalid_status_carries_the_enum() -> None:
    cert_id = keccak(b"cert")
    exc = decode_revert(encode(ABI_ERRORS["InvalidStatus"], [cert_id, Status.REVOKED]))
    assert isinstance(exc, errors.InvalidStatus)
    assert exc.args_by_name == {"certId": cert_id, "status": Status.REVOKED}
    assert exc.args_by_name["status"] is Status.REVOKED


def test_every_abi_error_has_words_and_nothing_else_does() -> None:
    """A new custom error needs its sentence in dpki.chain.messages (one line)."""
    assert set(CONTRACT_ERROR_WORDS) == set(ABI_ERRORS)


def test_not_certificate_owner_names_the_quorum_way() -> None:
    cert_id = keccak(b"cert")
    exc = decode_revert(encode(ABI_ERRORS["NotCertificateOwner"], [cert_id, ADDRESS.lower()]))
    text = str(exc)
    assert f"certificate 0x{cert_id.hex()} was submitted by another member" in text
    assert f"{ADDRESS} cannot change it alone" in text
    assert f"dpki propose revoke|suspend|resume 0x{cert_id.hex()} --as ORG" in text


@pytest.mark.parametrize(
    ("status", "step"),
    [
        (Status.REVOKED, "a revocation is final"),
        (Status.PENDING, "validators have not decided it yet"),
        (Status.SUSPENDED, "resume it first with dpki resume 0x"),
        (Status.SUPERSEDED, "it was renewed"),
        (Status.REJECTED, "a rejection is final"),
        (Status.ACTIVE, "it is in use"),
    ],
    ids=lambda v: v.label if isinstance(v, Status) else "",
)
def test_invalid_status_says_the_status_by_name_and_the_next_step(
    status: Status, step: str
) -> None:
    cert_id = keccak(b"cert")
    text = str(decode_revert(encode(ABI_ERRORS["InvalidStatus"], [cert_id, int(status)])))
    assert f"certificate 0x{cert_id.hex()} is {status.label}, where this is not allowed" in text
    assert step in text and "status=" not in text


def test_invalid_revocation_reason_is_named() -> None:
    text = str(decode_revert(encode(ABI_ERRORS["InvalidRevocationReason"], [6])))
    assert "certificateHold (6) is not a reason a revocation can give" in text
    assert "dpki suspend" in text


def test_an_error_without_words_keeps_its_raw_form() -> None:
    assert explain("NoSuchError", {"x": 1}) is None
    assert explain("InvalidStatus", {}) is None  # fields missing: no half-filled sentence
    assert str(errors.UnknownProposal({"proposalId": 3})) == (
        "registry refused: UnknownProposal(proposalId=3)"
    )


def test_decode_revert_checksums_addresses() -> None:
    account = to_checksum_address("0x" + "ab" * 20)
    exc = decode_revert(encode(ABI_ERRORS["NotProposer"], [7, account.lower()]))
    assert isinstance(exc, errors.NotProposer)
    assert exc.args_by_name == {"proposalId": 7, "account": account}


def test_decode_revert_without_arguments() -> None:
    exc = decode_revert(keccak(text="EmptyBatch()")[:4])
    assert type(exc) is errors.EmptyBatch
    assert exc.args_by_name == {}
    assert (
        str(exc) == "registry refused (EmptyBatch): the batch is empty: give at least one "
        "certificate"
    )


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(keccak(text="NoSuchError(uint256)")[:4] + bytes(32), id="unknown-selector"),
        pytest.param(
            keccak(text="Error(string)")[:4] + eth_abi.encode(["string"], ["require"]),
            id="solidity-Error-string",
        ),
        pytest.param(b"\x12\x34\x56\x78", id="bare-unknown-selector"),
    ],
)
def test_an_unknown_selector_is_a_plain_chain_error(data: bytes) -> None:
    exc = decode_revert(data)
    assert type(exc) is ChainError
    assert not isinstance(exc, ContractError)
    assert data.hex() in str(exc)


@pytest.mark.parametrize("data", [None, b"", b"\x01\x02", "0x", "not hex"], ids=repr)
def test_revert_without_usable_data_is_a_plain_chain_error(data: Any) -> None:
    exc = decode_revert(data)
    assert type(exc) is ChainError
    assert "without a reason" in str(exc)


def on_chain_test_sources() -> str:
    files = ("test_registry.py", "test_governance.py", "registry_helpers.py", "test_attacks.py")
    return "".join((TESTS / f).read_text() for f in files)


@pytest.mark.parametrize("name", sorted(ABI_ERRORS))
def test_every_custom_error_is_provoked_on_chain(name: str) -> None:
    """test_registry.py or test_governance.py expects each custom error at least once."""
    assert re.search(rf"errors\.{name}\b", on_chain_test_sources()), name


@pytest.mark.parametrize("name", ABI_EVENTS)
def test_every_event_is_checked_on_chain(name: str) -> None:
    """Each event's name is spelled out in an expected-events assertion."""
    assert f'"{name}"' in on_chain_test_sources(), name
