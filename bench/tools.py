"""What ``make bench`` installs for itself, idempotently, and only through ordinary clients.

* ``hey`` from Debian (``apt-get install hey``) as the load generator; without it the bench
  falls back to httpx threads and says so.
* LiteLLM's proxy, pinned, in its own venv ``.venv-litellm`` (git-ignored by ``.venv-*/``), so
  its many dependencies never touch the project's venv. 1.106.2 is of the line the reference
  figures were taken with and predates the compromised 1.107.0; 1.106.3 and later pin a
  ``certifi`` newer than the package index here serves.
* matplotlib in the project's venv, for the latency chart only.

Each step returns what it found (a path, or None with the reason) instead of failing the run:
a missing comparison is reported in the table, not as a crash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LITELLM_VERSION = "1.106.2"
LITELLM_VENV = REPO / ".venv-litellm"
MATPLOTLIB_VERSION = "3.10.8"
INSTALL_TIMEOUT = 900


@dataclass(frozen=True)
class Found:
    path: str | None
    note: str


def _run(command: list[str], timeout: float = INSTALL_TIMEOUT) -> bool:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(command, env=env, timeout=timeout, capture_output=True, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if done.returncode != 0:
        sys.stderr.write(done.stderr.decode("utf-8", "replace")[-2000:])
    return done.returncode == 0


def ensure_hey() -> Found:
    found = shutil.which("hey")
    if found:
        return Found(found, "hey (Debian)")
    apt = shutil.which("apt-get")
    if apt is None:
        return Found(None, "hey unavailable (no apt-get): httpx threads generate the load")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    install = [*sudo, apt, "install", "-y", "-qq", "--no-install-recommends", "hey"]
    print("installing hey from Debian...", flush=True)
    if not _run(install, 300):
        _run([*sudo, apt, "update", "-qq"], 300)
        _run(install, 300)
    found = shutil.which("hey")
    if found:
        return Found(found, "hey (Debian)")
    return Found(None, "hey could not be installed: httpx threads generate the load")


def ensure_litellm() -> Found:
    """``.venv-litellm/bin/python`` with ``litellm[proxy]==LITELLM_VERSION``."""
    python = LITELLM_VENV / "bin" / "python"
    stamp = LITELLM_VENV / f".installed-litellm-{LITELLM_VERSION}"
    if stamp.exists() and python.exists():
        return Found(str(python), f"LiteLLM {LITELLM_VERSION}")
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV.name}...", flush=True)
    base = getattr(sys, "_base_executable", None) or sys.executable
    if not python.exists() and not _run([base, "-m", "venv", str(LITELLM_VENV)], 300):
        return Found(None, "could not create .venv-litellm")
    if not _run([str(python), "-m", "pip", "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"]):
        return Found(None, f"pip could not install litellm[proxy]=={LITELLM_VERSION}")
    stamp.touch()
    return Found(str(python), f"LiteLLM {LITELLM_VERSION}")


def ensure_matplotlib() -> Found:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"installing matplotlib=={MATPLOTLIB_VERSION} for the chart...", flush=True)
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            f"matplotlib=={MATPLOTLIB_VERSION}",
        ]
        if not _run(command, 600):
            return Found(None, "matplotlib could not be installed: no chart")
    return Found("matplotlib", "matplotlib")
