"""Helpers for end-to-end tests: private devnets and validator subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from dpki.chain.deployment import Deployment
from dpki.commands.chain import deploy_devnet
from dpki.dev.devnet import Devnet

ORGS = ("Vendor A", "Operator B", "CA C")


def dpki_cmd(*args: str) -> list[str]:
    """Return the argv that runs the dpki CLI with this interpreter."""
    return [sys.executable, "-m", "dpki", *args]


@contextmanager
def private_devnet(
    tmp: Path, orgs: tuple[str, ...] = ORGS, threshold: int = 2, *, role_keys: bool = False
) -> Iterator[Deployment]:
    """Start a devnet of our own (validators are subprocesses: no snapshot tricks)."""
    deployment = deploy_devnet(
        orgs, threshold, state_dir=tmp, path=tmp / "deployment.json", role_keys=role_keys
    )
    assert deployment.devnet is not None
    try:
        yield deployment
    finally:
        Devnet(deployment.devnet["pid"], deployment.devnet["port"]).stop()


class ValidatorProcess:
    """A `dpki validator run` subprocess."""

    def __init__(
        self,
        deployment: Deployment,
        org: str,
        tmp: Path,
        rpc_url: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.deployment_file = deployment.path
        slug = "-".join(org.lower().split())
        if rpc_url is not None:  # point this validator at another URL (e.g. a proxy)
            data = deployment.to_json() | {"rpc_url": rpc_url}
            self.deployment_file = tmp / f"deployment-{slug}.json"
            self.deployment_file.write_text(json.dumps(data))
        self.org = org
        self.extra = extra
        self.state = tmp / f"validator-{slug}.json"
        self.log = tmp / f"validator-{slug}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ValidatorProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                dpki_cmd(
                    "validator",
                    "run",
                    "--as",
                    self.org,
                    "--deployment",
                    str(self.deployment_file),
                    "--state",
                    str(self.state),
                    "--poll",
                    "0.05",
                    *self.extra,
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait; return the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        return self.proc.wait(20)

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def wait_until(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``check`` until true or fail the test."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def run_cli(
    *args: str, deployment: Deployment, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the dpki CLI against ``deployment``."""
    env = dict(os.environ, DPKI_DEPLOYMENT=str(deployment.path))
    return subprocess.run(dpki_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout)


class TcpProxy:
    """A loopback TCP forwarder that can be taken down and brought back (an RPC outage)."""

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self._socket_mod = socket
        self._threading = threading
        self.target_port = target_port
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        socket = self._socket_mod
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        self._threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            # shutdown wakes the thread blocked in accept(); close() alone does not on Linux
            with contextlib.suppress(OSError):
                self._server.shutdown(self._socket_mod.SHUT_RDWR)
            self._server.close()
            self._server = None
        for conn in self._conns:
            with suppress(OSError):  # shutdown wakes the pipe threads' recv; close alone does not
                conn.shutdown(self._socket_mod.SHUT_RDWR)
            with suppress(OSError):
                conn.close()
        self._conns.clear()

    def _accept(self, server: object) -> None:
        socket = self._socket_mod
        while True:
            try:
                client, _ = server.accept()  # type: ignore[attr-defined]
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: object, dst: object) -> None:
        try:
            while data := src.recv(65536):  # type: ignore[attr-defined]
                dst.sendall(data)  # type: ignore[attr-defined]
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()  # type: ignore[attr-defined]
