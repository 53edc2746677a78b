"""Measure certificates per second through load + evaluate, on one core.

Generates P-256 self-signed device certificates in memory, then times parsing each DER
(``load_certificate`` + ``facts``) and ``evaluate`` at a fixed instant, in one thread (one
core: neither the loop nor cryptography's verify uses more). Also times cryptography's own
load + self-signature verify, the floor the figure is judged against. Not a test.

Times are CPU seconds of this process (``time.process_time``), the two loops alternating
round by round, best round of each: on a machine shared with other work, wall-clock rounds
of the two loops would land in different load and their ratio would measure the load.

    .venv/bin/python bench/policy.py [--count 2000] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dpki.pki.policy import evaluate
from dpki.pki.x509 import facts, load_certificate

AT = datetime(2025, 6, 1, tzinfo=UTC)
ORGANIZATION = "Acme Devices"


def make_certificates(count: int) -> list[bytes]:
    """Return ``count`` DER P-256 self-signed device certificates (one key reused)."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(True, False, False, False, True, False, False, False, False)
    ders = []
    for i in range(count):
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, f"device-{i:06d}"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(i + 1)
            .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2035, 1, 1, tzinfo=UTC))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(f"device-{i:06d}.acme.example")]),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        ders.append(cert.public_bytes(serialization.Encoding.DER))
    return ders


def run(ders: list[bytes]) -> float:
    """Load and evaluate every DER; return the elapsed seconds."""
    start = time.process_time()
    for der in ders:
        verdict = evaluate(facts(load_certificate(der), der=der), organization=ORGANIZATION, at=AT)
        if not verdict.ok:
            raise SystemExit(f"unexpected violations: {verdict.codes}")
    return time.process_time() - start


def run_floor(ders: list[bytes]) -> float:
    """Time cryptography's load + verify_directly_issued_by alone (the limit)."""
    start = time.process_time()
    for der in ders:
        cert = x509.load_der_x509_certificate(der)
        cert.verify_directly_issued_by(cert)
    return time.process_time() - start


def main() -> None:
    """Run the benchmark and print the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ders = make_certificates(args.count)
    run(ders[:100])  # warm up
    ours, floors = [], []
    for _ in range(args.rounds):  # alternating, so both see the same machine
        ours.append(run(ders))
        floors.append(run_floor(ders))
    best, floor = min(ours), min(floors)
    rate = args.count / best
    result = {
        "certs_per_second": round(rate),
        "cryptography_load_verify_per_second": round(args.count / floor),
        "count": args.count,
        "rounds": args.rounds,
        "best_seconds": round(best, 4),
        "microseconds_per_cert": round(best / args.count * 1e6, 1),
        "ratio_to_cryptography": round(floor / best, 3),
        "clock": "process CPU time, rounds alternating",
        "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['certs_per_second']} certificates/s through load + evaluate "
            f"({result['microseconds_per_cert']} us each, best of {args.rounds} x {args.count}); "
            f"cryptography load + verify alone: {result['cryptography_load_verify_per_second']}/s "
            f"(ours = {result['ratio_to_cryptography']:.0%} of it)"
        )


if __name__ == "__main__":
    main()
