"""Inquiry-node speed: indexer catch-up and status checks per second, four ways side by side.

    python bench/inquiry.py [--count N] [--seconds S] [--connections C] [--json]

A fresh devnet gets N active P-256 device certificates (batched submissions and
endorsements). Then:

* indexer: events per second for a catch-up from the deployment block into SQLite;
* (a) view call: ``isValid(id)`` as a raw JSON-RPC ``eth_call`` to the chain node;
* (b) JSON: ``GET /status/{id}`` on ``dpki serve``;
* (c) OCSP: ``POST /ocsp`` on ``dpki serve`` (requests without a nonce: pre-produced answers);
* (d) OpenSSL's own responder, ``openssl ocsp -index index.txt -port P`` over the same
  certificates (it signs every response afresh).

The load client runs in a separate process: asyncio (uvloop) over plain sockets with C
keep-alive connections and pre-built HTTP requests, so that it is not the bottleneck
(Python's http.client would measure itself). It reconnects when a server closes the
connection. Figures are requests per second and p50/p99 latency; the single-threaded
Python API call ``Registry.is_valid`` is reported too. All on this machine; the client shares
its cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from dpki.commands.chain import deploy_devnet
from dpki.devices import make_device
from dpki.devnet import Devnet
from dpki.indexer import Indexer
from dpki.keys import dev_account
from dpki.provision import submission_for, submit_all
from dpki.store import Store
from dpki.x509 import facts

ORGS = ("Vendor A", "Operator B", "CA C")
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


# ---------------------------------------------------------------------- the load client


async def _worker(
    host: str, port: int, requests: list[bytes], until: float, lat: list[float], errs: list[int]
) -> None:
    reader = writer = None
    i = os.getpid() % len(requests)
    while time.perf_counter() < until:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            start = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            close = head.startswith(b"HTTP/1.0")
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
            await reader.readexactly(length)
            lat.append(time.perf_counter() - start)
            if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                errs[0] += 1
            if close:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            errs[0] += 1
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


def _client(
    host: str, port: int, requests: list[bytes], seconds: float, conns: int, out: Any
) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    lat: list[float] = []
    errs = [0]

    async def main() -> None:
        until = time.perf_counter() + seconds
        await asyncio.gather(
            *(_worker(host, port, requests, until, lat, errs) for _ in range(conns))
        )

    started = time.perf_counter()
    asyncio.run(main())
    out.put((lat, errs[0], time.perf_counter() - started))


def load(
    host: str, port: int, requests: list[bytes], seconds: float, conns: int
) -> dict[str, float]:
    """Run the load client in a separate process; return rate and latency figures."""
    queue: Any = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(
        target=_client, args=(host, port, requests, seconds, conns, queue)
    )
    proc.start()
    lat, errors, elapsed = queue.get(timeout=seconds + 60)
    proc.join()
    lat.sort()
    n = len(lat)
    return {
        "requests_per_s": round(n / elapsed, 1),
        "p50_ms": round(lat[n // 2] * 1000, 3) if n else float("nan"),
        "p99_ms": round(lat[int(n * 0.99)] * 1000, 3) if n else float("nan"),
        "requests": n,
        "errors": errors,
    }


def http_post(path: str, body: bytes, ctype: str) -> bytes:
    """Return a raw HTTP/1.1 POST request."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def http_get(path: str) -> bytes:
    """Return a raw HTTP/1.1 GET request."""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


# ---------------------------------------------------------------------- the run


def _wait_http(url: str, timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(count: int, seconds: float, conns: int) -> dict[str, Any]:
    """Set up the ledger, index, servers; measure everything."""
    out: dict[str, Any] = {"certificates": count, "seconds": seconds, "connections": conns,
                           "client": "asyncio+uvloop raw sockets, keep-alive, separate process",
                           "cpus": os.cpu_count()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="dpki-bench-") as tmp:
        work = Path(tmp)
        deployment = deploy_devnet(ORGS, 2, state_dir=work, path=work / "deployment.json")
        assert deployment.devnet is not None
        procs: list[subprocess.Popen[bytes]] = []
        try:
            registry = deployment.registry_client()
            devices = [make_device(ORGS[0], f"SN{i:08d}") for i in range(count)]
            subs = [submission_for(facts(d.certificate, der=d.der)) for d in devices]
            submit_all(registry, dev_account(0), subs, batch_size=100)
            ids = [s.cert_id for s in subs]
            for who in (1, 2):
                pending = [
                    registry.transact(dev_account(who), "endorseBatch", ids[i : i + 100])
                    for i in range(0, count, 100)
                ]
                for p in pending:
                    p.wait()
            # indexer catch-up
            db_url = f"sqlite:///{work / 'index.sqlite'}"
            store = Store(db_url)
            start = time.perf_counter()
            events = Indexer(registry, store, deployment.deploy_block).catch_up()
            took = time.perf_counter() - start
            out["indexer"] = {"events": events, "seconds": round(took, 3),
                              "events_per_s": round(events / took, 1)}  # fmt: skip
            # (a) view call, the Python API single-threaded, then the raw call under load
            lat = []
            for cid in ids[: min(count, 500)]:
                t = time.perf_counter()
                registry.is_valid(cid)
                lat.append(time.perf_counter() - t)
            lat.sort()
            out["view_call_python_api"] = {
                "p50_ms": round(lat[len(lat) // 2] * 1000, 3),
                "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 3),
            }
            selector = registry._is_valid_selector.hex()
            calls = [
                http_post(
                    "/",
                    json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": 1,
                            "method": "eth_call",
                            "params": [
                                {"to": registry.address, "data": "0x" + selector + c.hex()},
                                "latest",
                            ],
                        }
                    ).encode(),
                    "application/json",
                )
                for c in ids
            ]
            port = int(deployment.rpc_url.rsplit(":", 1)[1])
            out["a_view_call"] = load("127.0.0.1", port, calls, seconds, conns)
            # our server
            serve_port = _free_port()
            log = open(work / "serve.log", "wb")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dpki", "serve", "--db", db_url, "--port",
                     str(serve_port), "--deployment", str(deployment.path)],
                    stdout=log, stderr=subprocess.STDOUT, cwd=work,
                )
            )  # fmt: skip
            _wait_http(f"http://127.0.0.1:{serve_port}/healthz")
            status = [http_get(f"/status/{c.hex()}") for c in ids]
            out["b_json_status"] = load("127.0.0.1", serve_port, status, seconds, conns)
            ocsp_reqs = []
            for d in devices:
                der = (
                    ocsp.OCSPRequestBuilder()
                    .add_certificate(d.certificate, d.certificate, hashes.SHA1())
                    .build()
                    .public_bytes(serialization.Encoding.DER)
                )
                ocsp_reqs.append(http_post("/ocsp", der, "application/ocsp-request"))
            load("127.0.0.1", serve_port, ocsp_reqs, 1.0, conns)  # pre-produce (warm-up)
            out["c_our_ocsp"] = load("127.0.0.1", serve_port, ocsp_reqs, seconds, conns)
            # (d) OpenSSL's responder over the same certificates
            out["d_openssl_ocsp"] = _openssl(work, devices, ocsp_reqs, seconds, conns, procs)
        finally:
            for p in procs:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            Devnet(
                pid=int(deployment.devnet["pid"]), port=int(deployment.devnet["port"]), log=None
            ).stop()
    return out


def _openssl(
    work: Path, devices: list[Any], reqs: list[bytes], seconds: float, conns: int, procs: list[Any]
) -> dict[str, Any]:
    if not Path(OPENSSL).exists():
        return {"skipped": "no openssl binary"}
    responder = make_device("Operator B", "openssl-responder")
    (work / "rsigner.pem").write_bytes(responder.pem)
    (work / "rsigner.key").write_bytes(responder.key_pem())
    (work / "cas.pem").write_bytes(b"".join(d.pem for d in devices))
    lines = []
    for d in devices:
        expiry = d.certificate.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
        serial = format(d.certificate.serial_number, "X")
        serial = serial if len(serial) % 2 == 0 else "0" + serial
        lines.append(f"V\t{expiry}\t\t{serial}\tunknown\t/O=Vendor A/CN={serial}\n")
    (work / "index.txt").write_text("".join(lines))
    port = _free_port()
    log = open(work / "openssl.log", "wb")  # noqa: SIM115
    procs.append(
        subprocess.Popen(
            [OPENSSL, "ocsp", "-index", str(work / "index.txt"), "-port", str(port),
             "-rsigner", str(work / "rsigner.pem"), "-rkey", str(work / "rsigner.key"),
             "-CA", str(work / "cas.pem"), "-ignore_err"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    )  # fmt: skip
    time.sleep(2.0)
    check = load("127.0.0.1", port, reqs[:1], 0.5, 1)
    if not check["requests"]:
        tail = (work / "openssl.log").read_text(errors="replace")[-300:]
        return {"skipped": f"openssl ocsp responder did not answer: {tail}"}
    return load("127.0.0.1", port, reqs, seconds, conns)


def main() -> None:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.count, args.seconds, args.connections)
    result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if args.json:
        print(json.dumps(result, indent=2))
        return
    ix = result["indexer"]
    print(f"indexer catch-up: {ix['events']} events in {ix['seconds']} s = {ix['events_per_s']}/s")
    api = result["view_call_python_api"]
    print(
        f"view call via Registry.is_valid (1 thread): p50 {api['p50_ms']} ms p99 {api['p99_ms']} ms"
    )
    labels = {
        "a_view_call": "(a) view call eth_call",
        "b_json_status": "(b) JSON /status",
        "c_our_ocsp": "(c) our OCSP",
        "d_openssl_ocsp": "(d) openssl ocsp",
    }
    for key, label in labels.items():
        r = result[key]
        if "skipped" in r:
            print(f"{label:24} skipped: {r['skipped']}")
            continue
        print(f"{label:24} {r['requests_per_s']:>9.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
              f"p99 {r['p99_ms']:.2f} ms  errors {r['errors']}")  # fmt: skip
    print(f"client: {result['client']}, {result['connections']} connections, "
          f"{result['cpus']} CPUs shared with the servers")  # fmt: skip


if __name__ == "__main__":
    main()
