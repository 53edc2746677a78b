"""The contract's ABI: call encoding, output decoding, the one log decoder, revert decoding.

:class:`ContractAbi` is built from the compiled artifact. Logs are decoded word by word where
the layout allows (static types, top-level ``bytes`` and ``string``: ~10x faster than
eth_abi, which indexing needs) and by eth_abi otherwise. A revert with one of the registry's
custom errors becomes the matching subclass of :class:`dpki.errors.ContractError`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_abi_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from dpki.chain.messages import explain
from dpki.errors import CONTRACT_ERRORS, ChainError, ConfigError, ContractError
from dpki.pki.codes import Status

__all__ = [
    "ARTIFACT_PATH",
    "ContractAbi",
    "Event",
    "abi_type",
    "decode_event_args",
    "decode_event_args_fast",
    "decode_revert",
    "default_abi",
    "hex_bytes",
    "load_artifact",
    "revert_data",
]

ARTIFACT_PATH = Path(__file__).resolve().parent.parent / "artifacts" / "CertificateRegistry.json"


class Event(NamedTuple):
    """A decoded registry event (a named tuple: a catch-up makes tens of thousands)."""

    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int


def load_artifact(path: Path = ARTIFACT_PATH) -> dict[str, Any]:
    """Load the compiled contract artifact shipped with the package."""
    try:
        artifact: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no contract artifact at {path}: run `dpki build`") from None
    return artifact


class ContractAbi:
    """Selectors, error and event decoders derived from the artifact's ABI."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.abi = abi
        self.errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        self.events: dict[bytes, dict[str, Any]] = {}
        self.functions: dict[str, dict[str, Any]] = {}
        self.constructor: dict[str, Any] = {"inputs": []}
        for item in abi:
            if item["type"] == "error":
                types = [abi_type(i) for i in item["inputs"]]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                self.errors[selector] = (item["name"], [i["name"] for i in item["inputs"]], types)
            elif item["type"] == "event":
                types = [abi_type(i) for i in item["inputs"]]
                self.events[keccak(text=f"{item['name']}({','.join(types)})")] = item
            elif item["type"] == "function":
                self.functions[item["name"]] = item
            elif item["type"] == "constructor":
                self.constructor = item
        #: name -> (selector, input types, word plan of the inputs, of the outputs)
        self._calls: dict[str, _CallPlan] = {}

    def selector(self, name: str) -> bytes:
        """Return the 4-byte selector of function ``name``."""
        return bytes(function_abi_to_4byte_selector(self.functions[name]))  # type: ignore[arg-type]

    def encode_call(self, name: str, args: Sequence[Any]) -> bytes:
        """Return the calldata of ``name(*args)`` (static arguments word by word)."""
        selector, types, inputs, _ = self._call_plan(name)
        if inputs is not None and len(args) == len(inputs):
            words = _encode_words(inputs, args)
            if words is not None:
                return selector + words
        return selector + abi_encode(types, list(args))

    def _call_plan(self, name: str) -> _CallPlan:
        """Return function ``name``'s selector, input types and word plans (worked out once:
        a status read for each of a thousand certificates encodes and decodes a thousand
        calls, and eth_abi takes ~100 us for each)."""
        cached = self._calls.get(name)
        if cached is None:
            fn = self.functions[name]
            types = [abi_type(i) for i in fn["inputs"]]
            outputs = _shape([abi_type(o) for o in fn["outputs"]])
            cached = (self.selector(name), types, _words(types), outputs)
            self._calls[name] = cached
        return cached

    def encode_constructor(self, args: Sequence[Any]) -> bytes:
        """Return the ABI-encoded constructor arguments."""
        return abi_encode([abi_type(i) for i in self.constructor["inputs"]], list(args))

    def decode_output(self, name: str, data: bytes) -> Any:
        """Decode what function ``name`` returned (one value, or a tuple of them).

        Static outputs in their canonical encoding are read word by word; anything else
        (dynamic types, a wrong length, dirty padding) goes to eth_abi, which decodes or
        raises as it always did."""
        outputs = self._call_plan(name)[3]
        values = _decode_words(outputs, data) if outputs is not None else None
        if values is None:
            fn = self.functions[name]
            values = abi_decode([abi_type(o) for o in fn["outputs"]], data)
        return values[0] if len(values) == 1 else values

    def event_topics(self, names: set[str]) -> list[str]:
        """Return the topic-0 hashes of the events called ``names``."""
        return ["0x" + sig.hex() for sig, item in self.events.items() if item["name"] in names]

    def decode_log(self, log: dict[str, Any]) -> Event | None:
        """Decode one log (JSON-RPC hex strings or web3 bytes); None when not ours."""
        raw = log["topics"]
        if raw and all(type(t) is str for t in raw):  # JSON-RPC: one hex conversion each
            fromhex = bytes.fromhex
            topics = [fromhex(t[2:]) for t in raw]
        else:
            topics = [_as_bytes(t) for t in raw]
        item = self.events.get(topics[0]) if topics else None
        if item is None:
            return None
        data = _as_bytes(log["data"])
        args = decode_event_args_fast(item, topics, data)
        if args is None:  # a layout the fast path does not cover
            args = decode_event_args(item, topics, data)
        return Event(
            item["name"],
            args,
            _as_int(log["blockNumber"]),
            _as_bytes(log["blockHash"]),
            _as_bytes(log["transactionHash"]),
            _as_int(log["logIndex"]),
        )


def _as_bytes(value: str | bytes) -> bytes:
    return bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)


def _as_int(value: str | int) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


@functools.lru_cache(maxsize=4096)
def _checksum(address: str) -> str:
    """Checksum an address (members are few; keccak per event would dominate indexing)."""
    return to_checksum_address(address)


def decode_event_args(item: dict[str, Any], topics: list[bytes], data: bytes) -> dict[str, Any]:
    """Decode an event's arguments with the general ABI decoder."""
    indexed = [i for i in item["inputs"] if i["indexed"]]
    plain = [i for i in item["inputs"] if not i["indexed"]]
    args: dict[str, Any] = {}
    for inp, topic in zip(indexed, topics[1:], strict=True):
        args[inp["name"]] = abi_decode([abi_type(inp)], topic)[0]
    for inp, value in zip(plain, abi_decode([abi_type(i) for i in plain], data), strict=True):
        args[inp["name"]] = value
    for inp in item["inputs"]:  # checksummed, as in decode_revert and the views
        if inp["type"] == "address":
            args[inp["name"]] = _checksum(args[inp["name"]])
    return args


#: how the word-by-word decoder reads one argument: 32 bytes as they are, an address, a
#: bool, an unsigned integer (with its width), or a top-level bytes / string
_BYTES32, _ADDRESS, _BOOL, _UINT, _BYTES, _STRING = range(6)
#: (name, indexed, how, bits) per argument, in ABI order
_Plan = tuple[tuple[str, bool, int, int], ...]
_PLANS: dict[int, tuple[dict[str, Any], _Plan | None]] = {}


def _plan(item: dict[str, Any]) -> _Plan | None:
    """Return how to read ``item``'s arguments word by word (None: a layout it does not
    cover); worked out once per event ABI item."""
    cached = _PLANS.get(id(item))
    if cached is not None and cached[0] is item:
        return cached[1]
    steps: list[tuple[str, bool, int, int]] = []
    for inp in item["inputs"]:
        kind = abi_type(inp)
        indexed = bool(inp["indexed"])
        word = _elementary(kind)
        if word is not None:
            how, bits = word
        elif kind in ("bytes", "string") and not indexed:
            how, bits = (_BYTES if kind == "bytes" else _STRING), 0
        else:
            _remember(item, None)
            return None
        steps.append((inp["name"], indexed, how, bits))
    plan = tuple(steps)
    _remember(item, plan)
    return plan


def _remember(item: dict[str, Any], plan: _Plan | None) -> None:
    if len(_PLANS) >= 1024:  # ABIs loaded again and again (tests): start over
        _PLANS.clear()
    _PLANS[id(item)] = (item, plan)


def _elementary(kind: str) -> tuple[int, int] | None:
    """Return how to read a static one-word type (how, bits); None: not one of those."""
    if kind == "bytes32":
        return _BYTES32, 0
    if kind == "address":
        return _ADDRESS, 0
    if kind == "bool":
        return _BOOL, 0
    if kind == "uint" or (kind.startswith("uint") and kind[4:].isdigit()):
        return _UINT, int(kind[4:] or 256)
    return None


#: one static word: how to read it and its width in bits (uint)
_Word = tuple[int, int]
#: a word plan of a function's outputs: per value whether it is a static tuple (a struct,
#: encoded in place), and its words
_Shape = tuple[tuple[bool, tuple[_Word, ...]], ...]
#: a function's selector, input types and the word plans of its inputs and outputs
_CallPlan = tuple[bytes, list[str], tuple[_Word, ...] | None, _Shape | None]


class _NotCanonical(Exception):
    """A word is not what its type allows (eth_abi decides what to make of it)."""


def _shape(types: list[str]) -> _Shape | None:
    """Return the word plan of ``types`` (None: a dynamic or nested type is among them)."""
    plan: list[tuple[bool, tuple[_Word, ...]]] = []
    for kind in types:
        is_tuple = kind.startswith("(") and kind.endswith(")")
        words = [_elementary(k) for k in (kind[1:-1].split(",") if is_tuple else [kind])]
        if not words or None in words:
            return None
        plan.append((is_tuple, tuple(w for w in words if w is not None)))
    return tuple(plan)


def _words(types: list[str]) -> tuple[_Word, ...] | None:
    """Return the words of ``types`` when each is one static word (None: otherwise)."""
    plan = _shape(types)
    if plan is None or any(is_tuple for is_tuple, _ in plan):
        return None
    return tuple(words[0] for _, words in plan)


def _read_word(how: int, bits: int, word: bytes) -> Any:
    """Return one static word's value as eth_abi would (raises :class:`_NotCanonical`).
    ``word`` is 32 bytes."""
    if how == _BYTES32:
        return word
    value = int.from_bytes(word, "big")
    if how == _UINT:
        if value >> bits:
            raise _NotCanonical
        return value
    if how == _BOOL:
        if value > 1:
            raise _NotCanonical
        return value == 1
    if any(word[:12]):
        raise _NotCanonical
    return "0x" + word[12:].hex()  # lower case, as eth_abi


def _decode_words(plan: _Shape, data: bytes) -> tuple[Any, ...] | None:
    """Decode static values word by word; None unless ``data`` is exactly their canonical
    encoding."""
    if len(data) != 32 * sum(len(words) for _, words in plan):
        return None
    values: list[Any] = []
    position = 0
    try:
        for is_tuple, words in plan:
            read = []
            for how, bits in words:
                read.append(_read_word(how, bits, data[position : position + 32]))
                position += 32
            values.append(tuple(read) if is_tuple else read[0])
    except _NotCanonical:
        return None
    return tuple(values)


def _encode_words(plan: tuple[_Word, ...], args: Sequence[Any]) -> bytes | None:
    """Encode static one-word arguments; None for any value eth_abi should judge (it
    raises its usual errors for the wrong ones)."""
    out = bytearray()
    for (how, bits), value in zip(plan, args, strict=True):
        if how == _BYTES32:
            if type(value) is not bytes or len(value) != 32:
                return None
            out += value
        elif how == _UINT:
            if type(value) is not int or not 0 <= value < (1 << bits):
                return None
            out += value.to_bytes(32, "big")
        elif how == _BOOL:
            if type(value) is not bool:
                return None
            out += int(value).to_bytes(32, "big")
        else:
            if type(value) is not str or len(value) != 42 or value[:2] != "0x":
                return None
            body = value[2:]
            if body != body.lower() and value != _checksum(value.lower()):
                return None  # a mixed-case address that is no checksum: eth_abi refuses it
            try:
                out += bytes(12) + bytes.fromhex(body)
            except ValueError:
                return None
    return bytes(out)


def decode_event_args_fast(
    item: dict[str, Any], topics: list[bytes], data: bytes
) -> dict[str, Any] | None:
    """Decode an event's arguments word by word (static types, top-level bytes and string);
    None when the layout needs the general decoder or the data is not what the ABI says.

    eth_abi takes ~100 us an event; indexing tens of thousands of events a second needs a
    few: the layout of each event is worked out once (:func:`_plan`), then each argument
    is one slice and one conversion."""
    plan = _plan(item)
    if plan is None:
        return None
    args: dict[str, Any] = {}
    position = 0
    topic = 1
    size = len(data)
    from_bytes = int.from_bytes
    try:
        for name, indexed, how, bits in plan:  # the common conversions inline (_read_word's)
            if indexed:
                word = topics[topic]
                topic += 1
            else:
                word = data[position : position + 32]
                position += 32
            if len(word) != 32:
                return None
            if how == _BYTES32:
                args[name] = word
            elif how == _UINT:
                value = from_bytes(word, "big")
                if value >> bits:
                    return None
                args[name] = value
            elif how == _ADDRESS:  # checksummed, as decode_event_args
                if word[:12] != _NO_ADDRESS_PADDING:
                    return None
                args[name] = _checksum("0x" + word[12:].hex())
            elif how == _BOOL:
                args[name] = _read_word(how, bits, word)
            else:
                offset = from_bytes(word, "big")
                if offset + 32 > size:
                    return None
                length = from_bytes(data[offset : offset + 32], "big")
                raw = data[offset + 32 : offset + 32 + length]
                if len(raw) != length:
                    return None
                args[name] = raw if how == _BYTES else raw.decode("utf-8")
    except (IndexError, UnicodeDecodeError, _NotCanonical):
        return None
    if topic != len(topics):
        return None
    return args


_NO_ADDRESS_PADDING: Final = bytes(12)


def abi_type(item: dict[str, Any]) -> str:
    """Return the canonical ABI type string, expanding tuples."""
    t: str = item["type"]
    if t.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in item["components"])
        return f"({inner}){t[5:]}"
    return t


def decode_revert(data: bytes | str | None, abi: ContractAbi | None = None) -> ChainError:
    """Turn revert data into the typed exception for the registry's custom error."""
    raw = hex_bytes(data)
    decoder = abi or default_abi()
    if raw is None or len(raw) < 4:
        return ChainError("the transaction reverted without a reason")
    known = decoder.errors.get(raw[:4])
    if known is None:
        return ChainError(f"the transaction reverted with unknown data 0x{raw.hex()}")
    name, names, types = known
    values = abi_decode(types, raw[4:])
    args = dict(zip(names, values, strict=True))
    for key, value in args.items():
        if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
            args[key] = to_checksum_address(value)
    if name == "InvalidStatus":
        args["status"] = Status(args["status"])
    words = explain(name, args)
    message = f"registry refused ({name}): {words}" if words else None
    return CONTRACT_ERRORS.get(name, ContractError)(args, message)


def hex_bytes(data: bytes | str | None) -> bytes | None:
    """Return bytes from bytes or a hex string (0x optional); None when it is neither."""
    if data is None:
        return None
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    try:
        return bytes.fromhex(data.removeprefix("0x"))
    except ValueError:
        return None


@functools.cache
def default_abi() -> ContractAbi:
    """Return the ABI of the artifact shipped with the package (loaded once)."""
    return ContractAbi(load_artifact()["abi"])


def revert_data(exc: BaseException) -> bytes | str | None:
    """Dig the revert data out of whatever web3 or the node raised."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str | bytes):
        return data
    message = getattr(exc, "message", None) or (exc.args[0] if exc.args else None)
    if isinstance(message, dict):
        inner = message.get("data")
        if isinstance(inner, dict):
            inner = inner.get("data")
        if isinstance(inner, str):
            return inner
    return None
