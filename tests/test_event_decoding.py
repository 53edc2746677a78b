"""The word-by-word decoders agree with eth_abi: every event of the registry's ABI, every
view's static output and every call's static input."""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address

from dpki.chain.abi import (
    ContractAbi,
    abi_type,
    decode_event_args,
    decode_event_args_fast,
    default_abi,
)

ABI = default_abi()
EVENTS = {item["name"]: (sig, item) for sig, item in ABI.events.items()}


def _value(kind: str, rng: random.Random) -> Any:
    if kind == "bytes32":
        return rng.randbytes(32)
    if kind == "address":
        return "0x" + rng.randbytes(20).hex()
    if kind == "bool":
        return rng.random() < 0.5
    if kind.startswith("uint"):
        bits = int(kind[4:] or 256)
        return rng.choice([0, 1, (1 << bits) - 1, rng.getrandbits(bits)])
    if kind == "bytes":
        return rng.randbytes(rng.choice([0, 1, 31, 32, 33, 700]))
    if kind == "string":
        return rng.choice(["", "Vendor A", "Opérateur B ✓", "x" * 70])
    raise AssertionError(f"no generator for {kind}")


def _log(item: dict[str, Any], rng: random.Random, sig: bytes) -> tuple[list[bytes], bytes]:
    topics = [sig]
    plain_types, plain_values = [], []
    for inp in item["inputs"]:
        kind = abi_type(inp)
        value = _value(kind, rng)
        if inp["indexed"]:
            topics.append(abi_encode([kind], [value]))
        else:
            plain_types.append(kind)
            plain_values.append(value)
    return topics, abi_encode(plain_types, plain_values)


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_fast_decoder_matches_eth_abi(name: str) -> None:
    sig, item = EVENTS[name]
    rng = random.Random(name)
    for _ in range(200):
        topics, data = _log(item, rng, sig)
        fast = decode_event_args_fast(item, topics, data)
        assert fast is not None, "every registry event takes the fast path"
        assert fast == decode_event_args(item, topics, data)


def test_data_that_is_not_what_the_abi_says_leaves_the_fast_path() -> None:
    sig, submitted = EVENTS["CertificateSubmitted"]
    topics, data = _log(submitted, random.Random(1), sig)
    assert decode_event_args_fast(submitted, topics, data) is not None
    assert decode_event_args_fast(submitted, topics[:-1], data) is None  # a topic missing
    assert decode_event_args_fast(submitted, [*topics, bytes(32)], data) is None  # one too many
    dirty = [topics[0], topics[1], b"\xff" * 12 + topics[2][12:], topics[3]]
    assert decode_event_args_fast(submitted, dirty, data) is None  # address with high bytes set
    assert decode_event_args_fast(submitted, topics, data[:100]) is None  # cut short
    der_offset = 4 * 32  # orgHash, notBefore, notAfter, replaces, then the offset of der
    past_end = data[:der_offset] + (len(data) + 64).to_bytes(32, "big") + data[der_offset + 32 :]
    assert decode_event_args_fast(submitted, topics, past_end) is None
    sig, endorsed = EVENTS["CertificateEndorsed"]
    topics, data = _log(endorsed, random.Random(2), sig)
    assert decode_event_args_fast(endorsed, topics, (256).to_bytes(32, "big") + data[32:]) is None


def _outputs(item: dict[str, Any]) -> list[str]:
    return [abi_type(o) for o in item["outputs"]]


def _flat(kind: str) -> list[str]:
    return kind[1:-1].split(",") if kind.startswith("(") else [kind]


#: the views whose outputs are static (one word each, or a struct of them)
STATIC_VIEWS = sorted(
    name
    for name, item in ABI.functions.items()
    if item["outputs"]
    and all(
        k in ("bytes32", "address", "bool") or k.startswith("uint")
        for o in _outputs(item)
        for k in _flat(o)
    )
)


def _eth_abi_output(name: str, data: bytes) -> Any:
    values = abi_decode(_outputs(ABI.functions[name]), data)
    return values[0] if len(values) == 1 else values


def _outcome(decode: Any, data: Any) -> Any:
    try:
        return ("value", decode(data))
    except Exception as exc:  # the same exception type from both, whatever it is
        return ("error", type(exc))


def test_the_status_views_take_the_fast_path() -> None:
    assert {"statusOf", "hasVoted", "isValid", "threshold"} <= set(STATIC_VIEWS)


@pytest.mark.parametrize("name", STATIC_VIEWS)
def test_fast_output_decoder_matches_eth_abi(name: str) -> None:
    kinds = _outputs(ABI.functions[name])
    rng = random.Random(name)
    for _ in range(200):
        values = [
            tuple(_value(k, rng) for k in _flat(kind))
            if kind.startswith("(")
            else _value(kind, rng)
            for kind in kinds
        ]
        data = abi_encode(kinds, values)
        assert ABI.decode_output(name, data) == _eth_abi_output(name, data)
        # hostile bytes: whatever a node answers, the result (or the error) is eth_abi's
        for bad in (
            data[:-1],
            data + b"\0",
            data + bytes(32),
            b"",
            _flip(data, rng),
            b"\xff" * len(data),
        ):
            assert _outcome(lambda d: ABI.decode_output(name, d), bad) == _outcome(
                lambda d: _eth_abi_output(name, d), bad
            )


def _flip(data: bytes, rng: random.Random) -> bytes:
    raw = bytearray(data)
    if raw:
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    return bytes(raw)


CALLS = sorted(
    name
    for name, item in ABI.functions.items()
    if item["inputs"]
    and all(abi_type(i) in ("bytes32", "address", "bool") or abi_type(i).startswith("uint")
            for i in item["inputs"])
)  # fmt: skip


def _eth_abi_call(name: str, args: list[Any]) -> bytes:
    return ABI.selector(name) + abi_encode(
        [abi_type(i) for i in ABI.functions[name]["inputs"]], args
    )


@pytest.mark.parametrize("name", CALLS)
def test_fast_call_encoder_matches_eth_abi(name: str) -> None:
    kinds = [abi_type(i) for i in ABI.functions[name]["inputs"]]
    rng = random.Random(name)
    for _ in range(100):
        args = [_value(k, rng) for k in kinds]
        if "address" in kinds and rng.random() < 0.5:  # checksummed as well as lower case
            args = [
                to_checksum_address(a) if k == "address" else a
                for k, a in zip(kinds, args, strict=True)
            ]
        assert ABI.encode_call(name, args) == _eth_abi_call(name, args)


@pytest.mark.parametrize(
    "kind, value",
    [
        ("bytes32", b"\1" * 31),
        ("bytes32", "0x" + "11" * 32),
        ("bytes32", bytearray(32)),
        ("address", "0x" + "ab" * 19),
        ("address", "0xAbcdefabcdefabcdefabcdefabcdefabcdefabcd"),  # mixed case, not a checksum
        ("address", "0x" + "zz" * 20),
        ("address", b"\1" * 20),
        ("uint8", 256),
        ("uint8", -1),
        ("uint8", True),
        ("uint256", 1.0),
        ("bool", 1),
        ("bool", True),
        ("bool", None),
    ],
)
def test_arguments_the_fast_encoder_doubts_go_to_eth_abi(kind: str, value: Any) -> None:
    inputs = [{"name": "a", "type": kind}, {"name": "b", "type": "bytes32"}]
    abi = ContractAbi([{"type": "function", "name": "f", "inputs": inputs, "outputs": []}])
    args = [value, bytes(32)]
    expected = _outcome(lambda a: abi.selector("f") + abi_encode([kind, "bytes32"], a), args)
    assert _outcome(lambda a: abi.encode_call("f", a), args) == expected
