"""Gas of every registry operation with ~600-byte P-256 device certificates, on the devnet.

    python bench/gas.py [--json] [--rpc URL]

Starts its own anvil unless --rpc is given (then deploys a fresh registry there with dev keys).
``bench/gas-snapshot.json`` holds the committed figures; tests/test_gas.py fails on a regression
over 5 %.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dpki.chain.keys import dev_account
from dpki.chain.registry import (
    ROLE_SUBMITTER,
    ROLE_VALIDATOR,
    MemberSpec,
    Registry,
    Submission,
    connect,
)
from dpki.dev.devices import make_device
from dpki.dev.devnet import Devnet

SNAPSHOT = Path(__file__).with_name("gas-snapshot.json")
ORGS = ("Vendor A", "Operator B", "CA C")
BATCH = 100


def device_submission(serial: int) -> Submission:
    """Return the submission of a fresh ~600-byte P-256 device certificate."""
    cn = f"gnb-du-{serial:06d}.ran.vendor-a.example.net"
    device = make_device(ORGS[0], f"SN{serial:010d}", common_name=cn)
    cert = device.certificate
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Submission(
        der=device.der,
        not_before=int(cert.not_valid_before_utc.timestamp()),
        not_after=int(cert.not_valid_after_utc.timestamp()),
        key_hash=hashlib.sha256(spki).digest(),
        org_hash=hashlib.sha256(ORGS[0].encode()).digest(),
    )


def measure(rpc_url: str) -> dict[str, int]:
    """Deploy a 3-member registry (threshold 2) at ``rpc_url`` and measure each operation."""
    vendor, v1, v2 = (dev_account(i) for i in range(3))
    specs = [
        MemberSpec(dev_account(i).address, o, ROLE_VALIDATOR | ROLE_SUBMITTER)
        for i, o in enumerate(ORGS)
    ]
    registry, deployed = Registry.deploy(connect(rpc_url), vendor, specs, 2)
    out: dict[str, int] = {"deploy": deployed.gas_used}

    first = device_submission(0)
    out["submit"] = registry.submit(vendor, first).wait().gas_used
    out["endorse"] = registry.endorse(v1, first.cert_id).wait().gas_used
    out["endorse_activating"] = registry.endorse(v2, first.cert_id).wait().gas_used
    out["submit_plus_2_endorsements"] = out["submit"] + out["endorse"] + out["endorse_activating"]

    batch = [device_submission(i) for i in range(1, BATCH + 1)]
    ids = [s.cert_id for s in batch]
    out["submit_per_cert_batch100"] = registry.submit_batch(vendor, batch).wait().gas_used // BATCH
    e1 = registry.endorse_batch(v1, ids).wait().gas_used
    e2 = registry.endorse_batch(v2, ids).wait().gas_used
    out["endorse_per_cert_batch100"] = max(e1, e2) // BATCH
    # what validators send: votes anchored to the newest block their decision read
    batch = [device_submission(i) for i in range(BATCH + 2, 2 * BATCH + 2)]
    ids = [s.cert_id for s in batch]
    registry.submit_batch(vendor, batch).wait()
    anchored = [registry.endorse_batch(v, ids, anchor=_head(registry)).wait() for v in (v1, v2)]
    out["endorse_anchored_per_cert_batch100"] = max(r.gas_used for r in anchored) // BATCH

    renewal = device_submission(BATCH + 1)
    out["renew"] = registry.renew(vendor, ids[0], renewal).wait().gas_used
    out["revoke"] = registry.revoke(vendor, ids[1], 1).wait().gas_used
    out["suspend"] = registry.suspend(vendor, ids[2]).wait().gas_used
    out["resume"] = registry.resume(vendor, ids[2]).wait().gas_used
    out["der_bytes"] = len(first.der)
    return out


def _head(registry: Registry) -> tuple[int, bytes]:
    """Return the newest block's number and hash (a vote's anchor)."""
    (block,) = registry.batch([("eth_getBlockByNumber", ["latest", False])])
    return int(block["number"], 16), bytes.fromhex(block["hash"][2:])


def main() -> None:
    """Print the figures (``--json``: one object)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rpc", help="use this chain instead of starting anvil")
    parser.add_argument("--update-snapshot", action="store_true", help=f"write {SNAPSHOT.name}")
    args = parser.parse_args()
    net = None if args.rpc else Devnet.start()
    try:
        figures = measure(args.rpc or net.rpc_url)  # type: ignore[union-attr]
    finally:
        if net:
            net.stop()
    if args.update_snapshot:
        SNAPSHOT.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    if args.json:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        print(f"{name:<30} {value:>10,}")


if __name__ == "__main__":
    main()
