"""The embedded devnet: an anvil node from ``node_modules`` on 127.0.0.1.

anvil always runs with ``--prune-history`` (without it, anvil keeps a state snapshot per
block under ``$HOME/.foundry`` and fills the disk). Nothing outside the devnet and the tests
uses anvil-only RPC methods.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from dpki.errors import ToolchainError

__all__ = ["Devnet", "find_tool", "free_port", "stop_pid"]

_PLATFORMS = {
    ("Linux", "x86_64"): "linux-amd64",
    ("Linux", "aarch64"): "linux-arm64",
    ("Darwin", "x86_64"): "darwin-amd64",
    ("Darwin", "arm64"): "darwin-arm64",
}


def _node_modules() -> list[Path]:
    roots = []
    if os.environ.get("DPKI_NODE_MODULES"):
        roots.append(Path(os.environ["DPKI_NODE_MODULES"]))
    roots.append(Path(__file__).resolve().parents[2] / "node_modules")
    roots.append(Path.cwd() / "node_modules")
    return roots


def find_tool(name: str) -> Path:
    """Return the foundry binary ``name`` (anvil, cast) from node_modules, else from PATH."""
    plat = _PLATFORMS.get((platform.system(), platform.machine()))
    for root in _node_modules():
        if plat:
            binary = root / "@foundry-rs" / f"{name}-{plat}" / "bin" / name
            if binary.is_file():
                return binary
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ToolchainError(
        f"{name} not found: run `npm ci` in the project (npm package @foundry-rs/{name})"
    )


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        response = requests.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1
        )
        return response.ok
    except requests.RequestException:
        return False


@dataclass
class Devnet:
    """A running anvil process."""

    pid: int
    port: int
    log: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def rpc_url(self) -> str:
        """Return the JSON-RPC URL."""
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        port: int | None = None,
        *,
        log: Path | None = None,
        block_time: float | None = None,
        accounts: int = 10,
        timeout: float = 20.0,
    ) -> Devnet:
        """Start anvil in its own session and wait until it answers."""
        binary = find_tool("anvil")
        port = port or free_port()
        args = [
            str(binary),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--prune-history",
            "--accounts",
            str(accounts),
            "--balance",
            "1000000",
            "--gas-limit",
            "100000000",
        ]
        if block_time:
            args += ["--block-time", str(block_time)]
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise ToolchainError(f"could not start {binary}: {exc}") from None
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
        net = cls(pid=proc.pid, port=port, log=log)
        deadline = time.monotonic() + timeout
        while not _answers(net.rpc_url):
            if proc.poll() is not None:
                raise ToolchainError(
                    f"anvil exited with code {proc.returncode} on port {port}"
                    + (f"; see {log}" if log else "")
                )
            if time.monotonic() > deadline:
                net.stop()
                raise ToolchainError(f"anvil did not answer on {net.rpc_url} in {timeout:.0f} s")
            time.sleep(0.05)
        net._proc = proc
        return net

    def alive(self) -> bool:
        """Return True when the process still exists."""
        proc = self._proc
        if proc is not None:
            return proc.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop anvil (SIGTERM, then SIGKILL) and reap it; a no-op when already gone."""
        stop_pid(self.pid, timeout, self._proc)


def stop_pid(pid: int, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Stop the process group led by ``pid`` (SIGTERM, then SIGKILL) and reap it."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout

    def alive() -> bool:
        if proc is not None:
            return proc.poll() is None
        _reap(pid)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    while alive() and time.monotonic() < deadline:
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.05)
        else:
            time.sleep(0.05)
    if alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        if proc is not None:
            proc.wait(timeout)
        else:
            deadline = time.monotonic() + timeout
            while alive() and time.monotonic() < deadline:
                time.sleep(0.05)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
