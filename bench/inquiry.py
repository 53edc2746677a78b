"""Inquiry-node speed: indexer catch-up and status checks per second, four ways side by side.

    python bench/inquiry.py [--count N] [--seconds S] [--connections C] [--json]
                            [--only indexer]

A fresh devnet gets a vendor's issuing CA and N active P-256 device certificates it issued
(batched submissions and endorsements), as a vendor's factory line would provision them.
Then:

* indexer: events per second for a catch-up from the deployment block into SQLite and, when
  it answers, the PostgreSQL on 127.0.0.1:5432 (scratch databases, dropped after); the best
  of three catch-ups into fresh databases, all three printed;
* (a) view call: ``isValid(id)`` as a raw JSON-RPC ``eth_call`` to the chain node;
* (b) JSON: ``GET /status/{id}`` on ``dpki serve``;
* (c) OCSP: ``POST /ocsp`` on ``dpki serve``: requests without a nonce (pre-produced answers),
  then requests with a nonce (each answer signed afresh, as OpenSSL's);
* (d) OpenSSL's own responder, ``openssl ocsp -index index.txt -CA ca.pem -port P`` over
  the same certificates and the same requests (it signs every response afresh).

Both OCSP responders run as one process (``dpki serve --workers 1``; ``openssl ocsp`` without
``-multi``), then as two (``--workers 2``; ``-multi 2``); ours with and without nonces each
time. ``ratios`` divides ours by OpenSSL's within the run.

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
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from dpki.chain.keys import dev_account
from dpki.commands.chain import deploy_devnet
from dpki.dev.devices import make_ca, make_device
from dpki.dev.devnet import Devnet
from dpki.inquiry.indexer import Indexer
from dpki.inquiry.store import Store
from dpki.pki.x509 import facts
from dpki.submission import submission_for, submit_all

ORGS = ("Vendor A", "Operator B", "CA C")
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


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


def run(count: int, seconds: float, conns: int, only: str | None = None) -> dict[str, Any]:
    """Set up the ledger, index, servers; measure everything (``only="indexer"``: the
    indexer's catch-ups alone)."""
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
            ca = make_ca(ORGS[0], "Vendor A Device CA")
            devices = [make_device(ORGS[0], f"SN{i:08d}", issuer=ca) for i in range(count)]
            subs = [submission_for(facts(d.certificate, der=d.der)) for d in [ca, *devices]]
            submit_all(registry, dev_account(0), subs, batch_size=100)
            all_ids = [s.cert_id for s in subs]
            ids = all_ids[1:]
            for who in (1, 2):
                pending = [
                    registry.endorse_batch(dev_account(who), all_ids[i : i + 100])
                    for i in range(0, len(all_ids), 100)
                ]
                for tx in pending:
                    tx.wait()
            (work / "ca.pem").write_bytes(ca.pem)
            # indexer catch-up: SQLite (what serve reads below), then PostgreSQL
            db_url = f"sqlite:///{work / 'index.sqlite'}"
            runs = [_index(registry, deployment.deploy_block, db_url)]  # what serve reads
            for i in range(2):
                runs.append(_index(registry, deployment.deploy_block, f"{db_url}.{i}"))
            out["indexer_sqlite"] = _best(runs)
            runs = []
            for i in range(3):
                with _scratch_postgres(i) as pg_url:
                    if pg_url is None:
                        break
                    runs.append(_index(registry, deployment.deploy_block, pg_url))
            out["indexer_postgresql"] = (
                _best(runs) if runs else {"skipped": "no PostgreSQL on 127.0.0.1:5432"}
            )
            if only == "indexer":
                return out
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
            selector = registry.is_valid_selector.hex()
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
            ocsp_reqs = []
            for d in devices:
                der = (
                    ocsp.OCSPRequestBuilder()
                    .add_certificate(d.certificate, ca.certificate, hashes.SHA1())
                    .build()
                    .public_bytes(serialization.Encoding.DER)
                )
                ocsp_reqs.append(http_post("/ocsp", der, "application/ocsp-request"))
            nonced = [  # a nonce asks for a freshly signed response (RFC 8954)
                http_post(
                    "/ocsp",
                    ocsp.OCSPRequestBuilder()
                    .add_certificate(d.certificate, ca.certificate, hashes.SHA1())
                    .add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
                    .build()
                    .public_bytes(serialization.Encoding.DER),
                    "application/ocsp-request",
                )
                for d in devices
            ]
            status = [http_get(f"/status/{c.hex()}") for c in ids]
            for processes in (1, 2):
                # our server
                serve_port = _free_port()
                log = open(work / f"serve-{processes}.log", "wb")  # noqa: SIM115
                server = subprocess.Popen(
                    [sys.executable, "-m", "dpki", "serve", "--db", db_url, "--port",
                     str(serve_port), "--deployment", str(deployment.path),
                     "--workers", str(processes)],
                    stdout=log, stderr=subprocess.STDOUT, cwd=work,
                )  # fmt: skip
                procs.append(server)
                _wait_http(f"http://127.0.0.1:{serve_port}/healthz")
                suffix = "" if processes == 1 else f"_{processes}_processes"
                out["b_json_status" + suffix] = load(
                    "127.0.0.1", serve_port, status, seconds, conns
                )
                load("127.0.0.1", serve_port, ocsp_reqs, 1.0, conns)  # pre-produce (warm-up)
                out["c_our_ocsp" + suffix] = load(
                    "127.0.0.1", serve_port, ocsp_reqs, seconds, conns
                ) | {"answer": _ocsp_answer(serve_port, ocsp_reqs[0])}
                out["c_our_ocsp_nonce" + suffix] = load(
                    "127.0.0.1", serve_port, nonced, seconds, conns
                ) | {"answer": _ocsp_answer(serve_port, nonced[0])}
                _stop(server)
                # (d) OpenSSL's responder over the same certificates and requests
                out["d_openssl_ocsp" + suffix] = _openssl(
                    work, ca, devices, ocsp_reqs, seconds, conns, procs, processes
                )
        finally:
            for p in procs:
                _stop(p)
            Devnet(
                pid=int(deployment.devnet["pid"]), port=int(deployment.devnet["port"]), log=None
            ).stop()
    return out


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server process."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _children(pid: int) -> list[int]:
    """Return the ids of a process's children (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _ocsp_answer(port: int, raw_request: bytes) -> str | None:
    """Send one raw OCSP HTTP request; return "status/cert status" (None: no answer)."""
    import requests

    body = raw_request.split(b"\r\n\r\n", 1)[1]
    try:
        reply = requests.post(
            f"http://127.0.0.1:{port}/ocsp",
            data=body,
            headers={"content-type": "application/ocsp-request"},
            timeout=2,
        )
    except requests.RequestException:
        return None
    parsed = ocsp.load_der_ocsp_response(reply.content)
    if parsed.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return parsed.response_status.name.lower()
    return f"signed/{parsed.certificate_status.name.lower()}"


def _index(registry: Any, deploy_block: int, url: str) -> dict[str, Any]:
    """Catch an empty index up from the deployment block; return events per second."""
    store = Store(url)
    try:
        start = time.perf_counter()
        events = Indexer(registry, store, deploy_block).catch_up()
        took = time.perf_counter() - start
    finally:
        store.close()
    return {"events": events, "seconds": round(took, 3), "events_per_s": round(events / took, 1)}


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the fastest of several catch-ups into fresh databases, with all rates."""
    best = max(runs, key=lambda r: r["events_per_s"])
    return best | {"runs_events_per_s": [r["events_per_s"] for r in runs]}


@contextlib.contextmanager
def _scratch_postgres(n: int = 0) -> Iterator[str | None]:
    """Yield the URL of a scratch database on the local PostgreSQL (None: none answers)."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2)
    except Exception:
        yield None
        return
    name = f"dpki_bench_{os.getpid()}_{n}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _openssl(
    work: Path,
    ca: Any,
    devices: list[Any],
    reqs: list[bytes],
    seconds: float,
    conns: int,
    procs: list[Any],
    processes: int,
) -> dict[str, Any]:
    if not Path(OPENSSL).exists():
        return {"skipped": "no openssl binary"}
    responder = make_device("Vendor A", "openssl-responder", issuer=ca)
    (work / "rsigner.pem").write_bytes(responder.pem)
    (work / "rsigner.key").write_bytes(responder.key_pem())
    lines = []
    for d in devices:
        expiry = d.certificate.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
        serial = format(d.certificate.serial_number, "X")
        serial = serial if len(serial) % 2 == 0 else "0" + serial
        lines.append(f"V\t{expiry}\t\t{serial}\tunknown\t/O=Vendor A/CN={serial}\n")
    (work / "index.txt").write_text("".join(lines))
    port = _free_port()
    log = open(work / "openssl.log", "wb")  # noqa: SIM115
    multi = ["-multi", str(processes)] if processes > 1 else []
    server = subprocess.Popen(
        [OPENSSL, "ocsp", "-index", str(work / "index.txt"), "-port", str(port),
         "-rsigner", str(work / "rsigner.pem"), "-rkey", str(work / "rsigner.key"),
         "-CA", str(work / "ca.pem"), "-ignore_err", *multi],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    procs.append(server)
    try:
        deadline = time.monotonic() + 15
        while (answer := _ocsp_answer(port, reqs[0])) is None:
            if time.monotonic() > deadline:
                tail = (work / "openssl.log").read_text(errors="replace")[-300:]
                return {"skipped": f"openssl ocsp responder did not answer: {tail}"}
            time.sleep(0.2)
        return load("127.0.0.1", port, reqs, seconds, conns) | {"answer": answer}
    finally:
        children = _children(server.pid)  # -multi forks workers that outlive the parent
        _stop(server)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)


def _ratios(result: dict[str, Any]) -> dict[str, float]:
    """Return our OCSP rates divided by OpenSSL's, same run, same number of processes."""
    ratios = {}
    for suffix in ("", "_2_processes"):
        theirs = result.get("d_openssl_ocsp" + suffix, {}).get("requests_per_s")
        for ours in ("c_our_ocsp", "c_our_ocsp_nonce"):
            rate = result.get(ours + suffix, {}).get("requests_per_s")
            if theirs and rate:
                ratios[ours + suffix] = round(rate / theirs, 2)
    return ratios


def main() -> None:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--only", choices=["indexer"], help="measure only this part (same keys, fewer of them)"
    )
    args = parser.parse_args()
    result = run(args.count, args.seconds, args.connections, args.only)
    result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["load_average"] = list(os.getloadavg())
    result["ratios"] = _ratios(result)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for db in ("sqlite", "postgresql"):
        ix = result[f"indexer_{db}"]
        if "skipped" in ix:
            print(f"indexer catch-up into {db}: skipped: {ix['skipped']}")
            continue
        print(f"indexer catch-up into {db}: {ix['events']} events in {ix['seconds']} s "
              f"= {ix['events_per_s']:.0f}/s (best of {len(ix['runs_events_per_s'])}: "
              f"{', '.join(f'{r:.0f}' for r in ix['runs_events_per_s'])})")  # fmt: skip
    if args.only == "indexer":
        return
    api = result["view_call_python_api"]
    print(
        f"view call via Registry.is_valid (1 thread): p50 {api['p50_ms']} ms p99 {api['p99_ms']} ms"
    )
    labels = {
        "a_view_call": "(a) view call eth_call",
        "b_json_status": "(b) JSON /status",
        "c_our_ocsp": "(c) our OCSP",
        "c_our_ocsp_nonce": "(c) our OCSP, nonces",
        "d_openssl_ocsp": "(d) openssl ocsp",
        "b_json_status_2_processes": "(b) JSON, 2 workers",
        "c_our_ocsp_2_processes": "(c) our OCSP, 2 workers",
        "c_our_ocsp_nonce_2_processes": "(c) our OCSP, nonces, 2 w.",
        "d_openssl_ocsp_2_processes": "(d) openssl, -multi 2",
    }
    for key, label in labels.items():
        r = result[key]
        if "skipped" in r:
            print(f"{label:24} skipped: {r['skipped']}")
            continue
        answer = f"  answer {r['answer']}" if "answer" in r else ""
        print(f"{label:24} {r['requests_per_s']:>9.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
              f"p99 {r['p99_ms']:.2f} ms  errors {r['errors']}{answer}")  # fmt: skip
    print("ours / openssl, same run: "
          + ", ".join(f"{k} {v}x" for k, v in result["ratios"].items()))  # fmt: skip
    print(f"client: {result['client']}, {result['connections']} connections, "
          f"{result['cpus']} CPUs shared with the servers")  # fmt: skip


if __name__ == "__main__":
    main()
