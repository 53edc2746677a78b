"""JSON-RPC transport: one request, a batch of requests, retries of a node's passing errors.

Nothing here knows the contract: it moves JSON-RPC messages to one endpoint and turns a node
that does not answer into :class:`dpki.errors.RpcUnavailable`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import msgspec
import requests
from web3 import HTTPProvider, Web3

from dpki.errors import ChainError, RpcUnavailable

__all__ = [
    "TRANSIENT_RETRIES",
    "RpcClient",
    "RpcFailure",
    "block_param",
    "connect",
    "ledger_unavailable",
    "transient",
    "why_no_answer",
]

#: how often a call that failed for a passing reason is asked again
TRANSIENT_RETRIES = 5

_JSON_HEADERS = {"Content-Type": "application/json"}


def connect(rpc_url: str, timeout: float = 30.0) -> Web3:
    """Return a Web3 on ``rpc_url`` with no middleware (we sign locally, validate ourselves)."""
    return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}), middleware=[])


class RpcFailure(Exception):
    """An error object from a JSON-RPC response, shaped like web3's exceptions."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.data = error.get("data")


class RpcClient:
    """JSON-RPC requests to the node behind ``w3`` (its provider, and a session for batches)."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    @property
    def url(self) -> str:
        """Return the endpoint URL (for messages)."""
        return str(getattr(self.w3.provider, "endpoint_uri", "?"))

    def request(self, method: str, params: list[Any]) -> dict[str, Any]:
        """Send one request; return the whole response object (``result`` or ``error``)."""
        try:
            response: dict[str, Any] = dict(self.w3.provider.make_request(method, params))  # type: ignore[arg-type]
        except (OSError, ConnectionError) as exc:
            raise ledger_unavailable(self.url, exc) from None
        except Exception as exc:
            if _is_connection_error(exc):
                raise ledger_unavailable(self.url, exc) from None
            raise
        return response

    def request_large(self, method: str, params: list[Any]) -> dict[str, Any]:
        """Send one request whose answer may run to megabytes (``eth_getLogs`` of a catch-up
        range); return the answer object as :meth:`request` does. The body is decoded by
        msgspec, twice as fast as the json module; an answer that is not a JSON object is
        asked again through :meth:`request`, which says what is wrong with it."""
        body = msgspec.json.encode({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        try:
            response = self._session.post(
                self.url, data=body, headers=_JSON_HEADERS, timeout=(5, 60)
            )
        except requests.RequestException as exc:
            raise ledger_unavailable(self.url, exc) from None
        try:
            answer = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            answer = None
        if not isinstance(answer, dict) or not ("result" in answer or "error" in answer):
            return self.request(method, params)
        return answer

    def request_retrying(self, method: str, params: list[Any]) -> dict[str, Any]:
        """Send one request; ask again while the node answers with a passing error."""
        response = self.request(method, params)
        for _ in range(TRANSIENT_RETRIES):
            if not transient(response):
                break
            time.sleep(0.02)
            response = self.request(method, params)
        return response

    def result(self, method: str, params: list[Any]) -> Any:
        """Send one request and return its ``result``; an error answer raises ChainError."""
        response = self.request(method, params)
        if "error" in response:
            raise ChainError(f"{method} failed: {response['error'].get('message')}")
        return response.get("result")

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Send JSON-RPC ``(method, params)`` calls in one round trip; return their results in
        order (one by one when the node refuses batches). An error answer raises ChainError."""
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        answers = self.post_batch(payload) if payload else []
        if answers is None:
            answers = [dict(self.request(m, p), id=i) for i, (m, p) in enumerate(calls)]
        by_id = {int(a["id"]): a for a in answers}
        results = []
        for i, (method, _params) in enumerate(calls):
            answer = by_id[i]
            if "error" in answer:
                raise ChainError(f"{method} failed: {answer['error'].get('message')}")
            results.append(answer.get("result"))
        return results

    def post_batch(self, payload: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Post a batch; return its answers, or None when the node does not answer batches."""
        try:
            # connect within 5 s; a half-open connection gives up reading after 60 s
            response = self._session.post(self.url, json=payload, timeout=(5, 60))
        except requests.RequestException as exc:
            raise ledger_unavailable(self.url, exc) from None
        try:
            body = response.json()
        except ValueError:
            return None
        if not isinstance(body, list) or len(body) != len(payload):
            return None
        return body

    @cached_property
    def _session(self) -> requests.Session:
        return requests.Session()

    @cached_property
    def chain_id(self) -> int:
        """Return the chain id (asked once)."""
        return int(self.request("eth_chainId", [])["result"], 16)

    def block_number(self) -> int:
        """Return the chain head's number."""
        return int(self.request("eth_blockNumber", [])["result"], 16)

    def block(self, block: int | str = "latest") -> dict[str, Any]:
        """Return a block's header fields (no transactions)."""
        result: dict[str, Any] = self.request("eth_getBlockByNumber", [block_param(block), False])[
            "result"
        ]
        return result


def transient(response: dict[str, Any]) -> bool:
    """Say whether a call failed for a passing reason (a node racing its own head).

    anvil answers ``BlockOutOfRangeError`` when a call on "latest" lands while a block is
    being sealed; a revert always carries data and is never retried.
    """
    error = response.get("error")
    if not isinstance(error, dict) or error.get("data"):
        return False
    return "out of range" in str(error.get("message", "")).lower() or "BlockOutOfRange" in str(
        error.get("message", "")
    )


def block_param(block: int | str) -> str:
    """Return a block number or tag as JSON-RPC wants it."""
    return hex(block) if isinstance(block, int) else block


def why_no_answer(exc: BaseException) -> str:
    """Say in words why an HTTP endpoint did not answer (not urllib3's retry story)."""
    text = repr(exc) + str(exc)
    if isinstance(exc, requests.exceptions.Timeout) or "timed out" in text.lower():
        return "it timed out"
    if "Name or service not known" in text or "NameResolution" in text or "getaddrinfo" in text:
        return "its host name does not resolve"
    if "refused" in text.lower():
        return "connection refused"
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return "the URL is not valid"
    return "the connection failed"


def ledger_unavailable(url: str, exc: BaseException) -> RpcUnavailable:
    """Return the error for a ledger endpoint that does not answer, with how to check it."""
    return RpcUnavailable(
        f"the ledger at {url} does not answer ({why_no_answer(exc)}); is the chain running? "
        "check with `dpki devnet status` on a devnet, or the node's URL in the deployment file"
    )


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout)
