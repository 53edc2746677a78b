"""Provisioning throughput: certificates per second from submission until active.

    python bench/provision.py [--engine anvil|geth|both] [--nodes 3] [--count N] [--trace] [--json]

For each engine and batch size (1, 10, 100) a fresh network with three members (threshold 2)
is started: anvil, or geth Clique with one sealer per member (1 s blocks, the devnet's gas
limit, 100 M). Two validator processes (`dpki validator run`, Operator B and CA C, each on
its own node, at their default of 0 confirmations: each vote is anchored to the block it
was decided on) follow it, and the vendor submits N fresh P-256 device certificates through
`dpki.submission.submit_all` on its own node (transactions pipelined).
The clock runs from the first submission until the last certificate is active; a
certificate's latency is from the start of submission until it was first seen active.
Reported beside the rate: gas used per block against the gas limit, the blocks' interval,
and CPU seconds spent by the nodes, the validators and this process (the submitter);
``--trace`` also lists each block of the run: when it was sealed, counted from the start,
and how many transactions of each member it carried.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dpki.chain.deployment import Deployment
from dpki.chain.keys import dev_account
from dpki.chain.registry import Registry, Status
from dpki.commands.chain import deploy_devnet
from dpki.dev.devices import make_device
from dpki.dev.devnet import Devnet
from dpki.dev.gethnet import GethNetwork, deploy_geth_devnet
from dpki.pki.x509 import facts
from dpki.submission import submission_for, submit_all

ORGS = ("Vendor A", "Operator B", "CA C")
_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """Return a process's CPU seconds (user + system) so far, 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _network(engine: str, nodes: int, work: Path) -> tuple[Deployment, list[int], Any]:
    path = work / "deployment.json"
    if engine == "geth":
        orgs = ORGS if nodes == 3 else tuple(f"Member {i + 1}" for i in range(nodes))
        deployment = deploy_geth_devnet(orgs, 2, state_dir=work, path=path)
        assert deployment.devnet is not None
        net = GethNetwork.from_json(deployment.devnet)
        return deployment, [n.pid for n in net.nodes if n.pid], net
    deployment = deploy_devnet(ORGS, 2, state_dir=work, path=path)
    assert deployment.devnet is not None
    devnet = Devnet(deployment.devnet["pid"], deployment.devnet["port"])
    return deployment, [devnet.pid], devnet


def run(
    engine: str, batch_size: int, count: int, nodes: int = 3, confirmations: int = 0
) -> dict[str, Any]:
    """Measure one batch size on a fresh network (validators' ``--confirmations``: 0
    unless given). ``trace`` in the result lists the run's blocks: when each
    was sealed (block time minus the wall clock at the start) and whose transactions it
    carried."""
    with tempfile.TemporaryDirectory(prefix="dpki-bench-") as tmp:
        work = Path(tmp)
        deployment, node_pids, net = _network(engine, nodes, work)
        orgs = [m.organization for m in deployment.members]
        procs = []
        try:
            for org in orgs[1:3]:
                log = open(work / f"{org}.log", "wb")  # noqa: SIM115
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "dpki", "validator", "run", "--as", org,
                         "--deployment", str(deployment.path), "--poll", "0.02",
                         "--state", str(work / f"{org}.json"),
                         "--confirmations", str(confirmations)],
                        stdout=log, stderr=subprocess.STDOUT,
                    )
                )  # fmt: skip
                log.close()
            registry = deployment.registry_client(orgs[0])
            subs = []
            for i in range(count):
                d = make_device(orgs[0], f"SN{i:08d}")
                subs.append(submission_for(facts(d.certificate, der=d.der)))
            time.sleep(1.5)  # let the validators start before the clock runs
            first_block = registry.block_number() + 1
            cpu_nodes = sum(_cpu(p) for p in node_pids)
            cpu_validators = sum(_cpu(p.pid) for p in procs)
            cpu_self = time.process_time()
            start_wall = time.time()
            start = time.perf_counter()
            submit_all(registry, dev_account(0), subs, batch_size=batch_size, timeout=600)
            submitted = time.perf_counter() - start
            active_at = _wait_active(registry, [s.cert_id for s in subs], start, first_block)
            elapsed = max(active_at.values())
            cpu = {
                "nodes": sum(_cpu(p) for p in node_pids) - cpu_nodes,
                "validators": sum(_cpu(p.pid) for p in procs) - cpu_validators,
                "submitter": time.process_time() - cpu_self,
            }
            names = {m.address.lower(): m.organization for m in deployment.members}
            blocks = _blocks(registry, first_block, registry.block_number(), names)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(20)
            net.stop()
    latencies = sorted(active_at.values())
    busy = [b for b in blocks if b["gas_used"]]
    return {
        "engine": "geth-clique" if engine == "geth" else "anvil",
        "nodes": nodes if engine == "geth" else 1,
        "batch_size": batch_size,
        "confirmations": confirmations,
        "certificates": count,
        "submit_seconds": round(submitted, 3),
        "until_active_seconds": round(elapsed, 3),
        "certificates_per_second": round(count / elapsed, 1),
        "latency_p50_seconds": round(statistics.median(latencies), 3),
        "latency_p95_seconds": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
        "blocks": len(blocks),
        "blocks_with_transactions": len(busy),
        "block_interval_seconds": round(
            (blocks[-1]["timestamp"] - blocks[0]["timestamp"]) / max(1, len(blocks) - 1), 2
        )
        if blocks
        else None,
        "gas_limit": blocks[0]["gas_limit"] if blocks else None,
        "gas_per_busy_block_mean": int(statistics.mean(b["gas_used"] for b in busy)) if busy else 0,
        "gas_per_block_max": max((b["gas_used"] for b in blocks), default=0),
        "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
        "trace": [
            {
                "block": b["number"],
                "sealed_after_start_seconds": round(b["timestamp"] - start_wall, 2),
                "transactions": b["transactions"],
            }
            for b in blocks
        ],
    }


def _wait_active(
    registry: Registry, ids: list[bytes], start: float, first_block: int
) -> dict[bytes, float]:
    """Return when each certificate was first seen active (seconds after ``start``).

    The head is polled every 20 ms (one cheap call); on each new head the new blocks'
    ``CertificateEndorsed`` events say which certificates became Active, and they count as
    seen when that head was (reading 1,000 statuses on every poll cost the nodes more CPU
    than the blocks, and once a block the bench's own reading time). The statuses are read
    once at the end to check that every certificate is Active on the chain as it stands.
    """
    active_at: dict[bytes, float] = {}
    left = set(ids)
    seen = first_block - 1
    while left:
        head = registry.block_number()
        if head <= seen:
            time.sleep(0.02)
            continue
        now = time.perf_counter() - start
        for e in registry.events(seen + 1, head, ["CertificateEndorsed"]):
            cert_id = bytes(e.args["certId"])
            if e.args["status"] == Status.ACTIVE and cert_id in left:
                left.discard(cert_id)
                active_at[cert_id] = now
        seen = head
    statuses = {r.status for r in registry.statuses(ids)}
    assert statuses == {Status.ACTIVE}, f"not all active after all: {statuses}"
    return active_at


def _blocks(
    registry: Registry, first: int, last: int, names: dict[str, str]
) -> list[dict[str, Any]]:
    """Return the blocks ``first..last``: gas, time and transactions per sender's name."""
    calls = [("eth_getBlockByNumber", [hex(n), True]) for n in range(first, last + 1)]
    out = []
    for start in range(0, len(calls), 100):
        for b in registry.batch(calls[start : start + 100]):
            senders: dict[str, int] = {}
            for tx in b["transactions"]:
                name = names.get(tx["from"].lower(), tx["from"])
                senders[name] = senders.get(name, 0) + 1
            out.append(
                {
                    "number": int(b["number"], 16),
                    "gas_used": int(b["gasUsed"], 16),
                    "gas_limit": int(b["gasLimit"], 16),
                    "timestamp": int(b["timestamp"], 16),
                    "transactions": senders,
                }
            )
    return out


def main() -> None:
    """Print one line per engine and batch size (``--json``: a list)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["anvil", "geth", "both"], default="anvil")
    parser.add_argument("--nodes", type=int, default=3, help="geth: members and nodes")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument(
        "--confirmations",
        type=int,
        default=0,
        help="the validators' --confirmations (default 0, as theirs: votes are anchored)",
    )
    parser.add_argument(
        "--trace", action="store_true", help="also list each block: when sealed, whose transactions"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    engines = ["anvil", "geth"] if args.engine == "both" else [args.engine]
    rows = [
        run(engine, int(b), args.count, args.nodes, args.confirmations)
        for engine in engines
        for b in args.sizes.split(",")
    ]
    if not args.trace:
        for r in rows:
            del r["trace"]
    if args.json:
        print(json.dumps(rows))
        return
    for r in rows:
        print(
            f"{r['engine']:<11} batch {r['batch_size']:>4}: {r['certificates']} active in "
            f"{r['until_active_seconds']:.2f} s = {r['certificates_per_second']:.0f}/s "
            f"(submission {r['submit_seconds']:.2f} s; latency p50 {r['latency_p50_seconds']:.2f}"
            f" s, p95 {r['latency_p95_seconds']:.2f} s)"
        )
        print(
            f"{'':<11} {r['blocks']} blocks ({r['blocks_with_transactions']} with transactions, "
            f"every {r['block_interval_seconds']} s); gas per busy block "
            f"{r['gas_per_busy_block_mean']:,} mean, {r['gas_per_block_max']:,} max of "
            f"{r['gas_limit']:,}; CPU s: nodes {r['cpu_seconds']['nodes']}, validators "
            f"{r['cpu_seconds']['validators']}, submitter {r['cpu_seconds']['submitter']}"
        )
        for b in r["trace"] if args.trace else []:
            carried = ", ".join(f"{n} {c}" for n, c in b["transactions"].items()) or "-"
            when = b["sealed_after_start_seconds"]
            print(f"{'':<11} block {b['block']} at {when:+.2f} s: {carried}")


if __name__ == "__main__":
    main()
