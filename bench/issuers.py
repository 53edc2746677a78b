"""Time for a validator to decide one leaf whose CA is on the ledger, with and without decoys.

    python bench/issuers.py [--decoys N] [--repeat R] [--json]

A fresh anvil with three members (threshold 2). Vendor A's CA is active; Operator B submits
N look-alike CA certificates (the CA's subject, half with its subjectKeyIdentifier, each its
own key; half rejected, half pending; tests/decoys.py). The figure is the median time of
``Validator.decide`` for a leaf the CA issued (R repeats), before and after the decoys, with
the JSON-RPC requests one decision makes. Issue 10 measured 2.8 ms without and 333 ms with
200 decoys before the issuer index kept only activated CAs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from decoys import CountingRegistry, active_ca, put_decoys, submit_leaf  # noqa: E402

from dpki.chain.keys import dev_account  # noqa: E402
from dpki.chain.registry import ROLE_SUBMITTER, ROLE_VALIDATOR, MemberSpec, Registry, connect  # noqa: E402
from dpki.dev.devnet import Devnet  # noqa: E402
from dpki.validator import Validator  # noqa: E402

ORGS = ("Vendor A", "Operator B", "CA C")


def _time(node: Validator, event: object, repeat: int) -> tuple[float, int]:
    """Return the median seconds of one decision and the RPCs one decision makes."""
    at = dt.datetime.now(dt.UTC)
    registry = node.registry
    assert isinstance(registry, CountingRegistry)
    samples = []
    start_rpcs = registry.requests
    for _ in range(repeat):
        t = time.perf_counter()
        decision = node.decide(event, at)  # type: ignore[arg-type]
        samples.append(time.perf_counter() - t)
        assert decision.endorse, decision.codes
    return statistics.median(samples), (registry.requests - start_rpcs) // repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoys", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    accounts = [dev_account(i) for i in range(3)]
    with tempfile.TemporaryDirectory(prefix="dpki-bench-") as tmp:
        net = Devnet.start(log=Path(tmp) / "anvil.log", accounts=10)
        try:
            w3 = connect(net.rpc_url)
            specs = [
                MemberSpec(a.address, org, ROLE_VALIDATOR | ROLE_SUBMITTER)
                for a, org in zip(accounts, ORGS, strict=True)
            ]
            registry, receipt = Registry.deploy(w3, accounts[0], specs, 2)
            ca = active_ca(registry, accounts)
            counting = CountingRegistry(w3, registry.address)
            node = Validator(
                counting,
                accounts[2],
                deploy_block=receipt.block_number,
                state_path=Path(tmp) / "validator.json",
            )
            plain = submit_leaf(registry, accounts[0], ca, "plain")
            node.issuers.refresh()
            node.decide(plain, dt.datetime.now(dt.UTC))  # warm caches (organization)
            without, rpcs_without = _time(node, plain, args.repeat)
            put_decoys(registry, accounts, ca, args.decoys)
            leaf = submit_leaf(registry, accounts[0], ca, "among-decoys")
            t = time.perf_counter()
            node.issuers.refresh()
            refresh = time.perf_counter() - t
            with_decoys, rpcs_with = _time(node, leaf, args.repeat)
        finally:
            net.stop()
    result = {
        "decoys": args.decoys,
        "decide_ms_without_decoys": round(without * 1000, 2),
        "decide_ms_with_decoys": round(with_decoys * 1000, 2),
        "rpcs_per_decision_without": rpcs_without,
        "rpcs_per_decision_with": rpcs_with,
        "index_refresh_over_decoys_ms": round(refresh * 1000, 1),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"decide one leaf: {result['decide_ms_without_decoys']} ms without decoys "
        f"({rpcs_without} RPC), {result['decide_ms_with_decoys']} ms with {args.decoys} "
        f"({rpcs_with} RPC); index refresh over the decoys "
        f"{result['index_refresh_over_decoys_ms']} ms"
    )


if __name__ == "__main__":
    main()
