"""The README's typical session, run as written, twice in one fresh folder, leaves nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def typical_session() -> str:
    """Return the shell block that follows "A typical session on the devnet:"."""
    text = README.read_text()
    found = re.search(r"A typical session on the devnet:\n\n```sh\n(.*?)```", text, re.S)
    assert found, "the README lost its typical session"
    return found.group(1)


def _processes_in(folder: Path) -> list[str]:
    """Return the processes whose working directory is ``folder`` (what a session left)."""
    left = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if Path(os.readlink(proc / "cwd")).resolve() == folder.resolve():
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                left.append(f"{proc.name}: {cmdline}")
        except OSError:
            continue
    return left


@pytest.mark.slow
def test_the_typical_session_runs_twice_in_one_folder_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    script = typical_session()
    assert "&" not in script.replace("&&", "")  # nothing the shell forgets about
    env = {k: v for k, v in os.environ.items() if k != "DPKI_DEPLOYMENT"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for run in (1, 2):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"run {run}:\n{done.stdout}\n{done.stderr}"
        assert "-> VALID" in done.stdout, done.stdout
        assert "Traceback" not in done.stderr
        assert _processes_in(tmp_path) == [], f"run {run} left processes behind"
