"""Validator processes a devnet runs for its members (``dpki devnet up --validators``).

Each is ``dpki validator run --as ORG`` in a session of its own, logging beside the
deployment file; the deployment file records its pid so that ``dpki devnet down`` stops it,
whichever shell started the devnet.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dpki.chain.deployment import Deployment

__all__ = ["start_validators", "stop_validators"]


def start_validators(deployment: Deployment, poll: float = 0.1) -> list[dict[str, Any]]:
    """Start a validator for every validating member with a key here; return their records."""
    assert deployment.path is not None, "save the deployment file first"
    records: list[dict[str, Any]] = []
    for member in deployment.members:
        if "validator" not in member.roles:
            continue
        if member.dev_key_index is None and member.keystore is None:
            continue
        slug = re.sub(r"[^a-z0-9]+", "-", member.organization.lower()).strip("-")
        log_path = deployment.path.parent / f"validator-{slug}.log"
        argv = [sys.executable, "-m", "dpki", "validator", "run", "--as", member.organization]
        argv += ["--deployment", str(deployment.path.resolve()), "--poll", str(poll)]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the shell is not meant for it
            )
        records.append({"organization": member.organization, "pid": proc.pid, "log": str(log_path)})
    return records


def stop_validators(records: list[dict[str, Any]], timeout: float = 10.0) -> list[int]:
    """Stop the validators in ``records`` (SIGTERM, then SIGKILL); return the pids stopped.

    A pid is signalled only while it still runs ``dpki validator run``: a pid reused by
    another program since is left alone.
    """
    pids = [int(r["pid"]) for r in records if _is_validator(int(r["pid"]))]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _running(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    return pids


def _is_validator(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"validator" in argv and b"run" in argv


def _running(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # our own child (the demo's) would linger as a zombie
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
