"""Provisioning throughput: certificates per second from submission until active.

    python bench/provision.py [--count N] [--json]

For each batch size (1, 10, 100) a fresh devnet with three members (threshold 2) is started,
two validator processes (`dpki validator run`) follow it, and the vendor submits N fresh P-256
device certificates through `dpki.submission.submit_all` (transactions pipelined). The clock
runs from the first submission until the last certificate is active.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dpki.chain.keys import dev_account
from dpki.chain.registry import Status
from dpki.commands.chain import deploy_devnet
from dpki.dev.devices import make_device
from dpki.dev.devnet import Devnet
from dpki.pki.x509 import facts
from dpki.submission import submission_for, submit_all

ORGS = ("Vendor A", "Operator B", "CA C")


def run(batch_size: int, count: int) -> dict[str, float]:
    """Measure one batch size on a fresh devnet."""
    with tempfile.TemporaryDirectory(prefix="dpki-bench-") as tmp:
        work = Path(tmp)
        deployment = deploy_devnet(ORGS, 2, state_dir=work, path=work / "deployment.json")
        assert deployment.devnet is not None
        procs = []
        try:
            for org in ORGS[1:]:
                log = open(work / f"{org}.log", "wb")  # noqa: SIM115
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "dpki", "validator", "run", "--as", org,
                         "--deployment", str(deployment.path), "--poll", "0.02",
                         "--state", str(work / f"{org}.json")],
                        stdout=log, stderr=subprocess.STDOUT,
                    )
                )  # fmt: skip
                log.close()
            registry = deployment.registry_client()
            subs = []
            for i in range(count):
                d = make_device(ORGS[0], f"SN{i:08d}")
                subs.append(submission_for(facts(d.certificate, der=d.der)))
            time.sleep(1.5)  # let the validators start before the clock runs
            start = time.perf_counter()
            submit_all(registry, dev_account(0), subs, batch_size=batch_size)
            submitted = time.perf_counter() - start
            left = [s.cert_id for s in subs]
            while left:
                left = [r.cert_id for r in registry.statuses(left) if r.status is not Status.ACTIVE]
                time.sleep(0.01)
            elapsed = time.perf_counter() - start
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(20)
            Devnet(deployment.devnet["pid"], deployment.devnet["port"]).stop()
    return {
        "batch_size": batch_size,
        "certificates": count,
        "submit_seconds": round(submitted, 3),
        "until_active_seconds": round(elapsed, 3),
        "certificates_per_second": round(count / elapsed, 1),
    }


def main() -> None:
    """Print one line per batch size (``--json``: a list)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [run(int(b), args.count) for b in args.sizes.split(",")]
    if args.json:
        print(json.dumps(rows))
        return
    for r in rows:
        print(
            f"batch {r['batch_size']:>4}: {r['certificates']} certificates active in "
            f"{r['until_active_seconds']:.2f} s = {r['certificates_per_second']:.0f}/s "
            f"(submission alone {r['submit_seconds']:.2f} s)"
        )


if __name__ == "__main__":
    main()
