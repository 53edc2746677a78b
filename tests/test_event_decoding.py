"""The word-by-word event decoder agrees with eth_abi on every event of the registry's ABI."""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode

from dpki.chain.abi import abi_type, decode_event_args, decode_event_args_fast, default_abi

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
