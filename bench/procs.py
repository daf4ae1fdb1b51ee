"""The processes a benchmark runs: the mock upstream, Sluice (make run's front), LiteLLM's proxy.

Each runs in its own process group (so stopping it stops its children too), writes to its own log
under ``bench/.work/`` and binds 127.0.0.1 only. CPU time is read from ``/proc/<pid>/stat``
(utime + stime of the process and of its live descendants), which is what the process really
spent, whatever else the machine is doing.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devtools.ddblocal import LOCAL_AWS, free_port

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / ".work"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STOP_GRACE_SECONDS = 5.0
STRIPPED_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL")


class StartError(RuntimeError):
    """A benchmark process did not start or never became ready."""


# CPU accounting -------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; everything after its ")" is space separated.
    return raw[raw.rindex(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pid: int, descendants: bool = True) -> float:
    """utime + stime of ``pid`` (all its threads), plus its live descendants' when asked."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # Fields 14..17 of stat (utime, stime, cutime, cstime); index 0 here is field 3.
    ticks = sum(int(value) for value in fields[11:15])
    total = ticks / CLOCK_TICKS
    if descendants:
        total += sum(cpu_seconds(child, True) for child in _children(pid))
    return total


# Processes ------------------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    base_url: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def log_tail(self, size: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_bytes()[-size:].decode("utf-8", "replace")
        return "(no log)"

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
                break
            except subprocess.TimeoutExpired:
                continue


def _spawn(name: str, command: list[str], env: dict[str, str], base_url: str) -> Proc:
    WORK.mkdir(parents=True, exist_ok=True)
    log_path = WORK / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=str(REPO),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(name, process, log_path, base_url)


def _wait_ready(proc: Proc, path: str, timeout: float, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    for _ in range(int(timeout / 0.2) + 1):
        if not proc.alive():
            raise StartError(f"{proc.name} exited early:\n{proc.log_tail()}")
        try:
            response = httpx.get(proc.base_url + path, headers=headers, timeout=5, trust_env=False)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    proc.stop()
    raise StartError(f"{proc.name} not ready after {timeout:.0f}s ({last}):\n{proc.log_tail()}")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED_ENV}
    env.update(LOCAL_AWS)
    env.update(extra or {})
    return env


def start_mock(delay_ms: int, api_key: str, stream_word_ms: float | None = None) -> Proc:
    """The demo upstream in its own process, so its CPU never competes with the load generator.

    Started through ``bench.mock_server`` (the same mock with a deeper listen backlog); with
    ``stream_word_ms`` it streams every chat answer a word per event, that far apart.
    """
    port = free_port()
    command = [sys.executable, "-m", "bench.mock_server", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--delay-ms", str(delay_ms), "--api-key", api_key]
    command += ["--max-seconds", "3600"]
    if stream_word_ms is not None:
        command += ["--stream-word-ms", str(stream_word_ms)]
    proc = _spawn("mock-upstream", command, clean_env(), f"http://127.0.0.1:{port}")
    _wait_ready(proc, "/v1/models", 30, {"Authorization": f"Bearer {api_key}"})
    return proc


@dataclass(frozen=True)
class SluiceKeys:
    key: str = field(repr=False)
    token_id: str
    account_id: str


def sluice_env(ddb_endpoint: str, admin_key: str) -> dict[str, str]:
    """The app's environment; the table prefix is the one ``.chalice/config.json`` gives dev."""
    return clean_env(
        {
            "SLUICE_STAGE": "dev",
            "SLUICE_TABLE_PREFIX": "sluice-dev",
            "SLUICE_DYNAMODB_ENDPOINT": ddb_endpoint,
            "SLUICE_ADMIN_KEY": admin_key,
            "PYTHONUNBUFFERED": "1",
        }
    )


def bootstrap_sluice(env: dict[str, str], upstream_url: str, upstream_key: str) -> SluiceKeys:
    """Tables, the upstream as the demo channel, and an unlimited account with one key."""
    from bench.inprocess import store_bound_to

    with store_bound_to(env):
        from chalicelib.services import management, schemas
        from chalicelib.store import models
        from devtools.demo_seed import register_demo

        models.create_tables()
        register_demo(upstream_url.rstrip("/") + "/v1", upstream_key)
        body = schemas.CreateAccount.model_validate({"name": "bench", "unlimited": True})
        created = management.create_account(body, int(time.time()))
    token = created["default_token"]
    return SluiceKeys(token["key"], token["id"], created["account"]["id"])


def start_sluice(ddb_endpoint: str, upstream_url: str, upstream_key: str) -> Proc:
    """Sluice as ``make run`` serves it (``devtools.front``), metered by bench.counted_server."""
    env = sluice_env(ddb_endpoint, "bench-admin-" + secrets.token_urlsafe(18))
    keys = bootstrap_sluice(env, upstream_url, upstream_key)
    port = free_port()
    stats = WORK / "sluice-stats.json"
    stats.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.counted_server", "--stats", str(stats), "--"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--stage", "dev", "--no-autoreload"]
    proc = _spawn("sluice", command, env, f"http://127.0.0.1:{port}")
    proc.extra.update(keys=keys, stats=stats, env=env)
    _wait_ready(proc, "/health", 90, {})
    return proc


def sluice_stats(proc: Proc, timeout: float = 10.0) -> dict[str, Any]:
    """What the server measured since the previous call (see bench.counted_server)."""
    stats: Path = proc.extra["stats"]
    stats.unlink(missing_ok=True)
    os.kill(proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 1):
        if stats.exists():
            return dict(json.loads(stats.read_text(encoding="utf-8")))
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise StartError("the Sluice server did not write its figures")


def start_litellm(
    python_bin: Path, model: str, upstream_url: str, upstream_key: str, master_key: str
) -> Proc:
    """LiteLLM's proxy: master-key mode, no database, one worker, one model on the mock."""
    WORK.mkdir(parents=True, exist_ok=True)
    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": upstream_url.rstrip("/") + "/v1",
                    "api_key": upstream_key,
                },
            }
        ],
        "general_settings": {"master_key": master_key},
        "litellm_settings": {"telemetry": False},
    }
    config_path = WORK / "litellm-config.yaml"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    port = free_port()
    litellm = python_bin.parent / "litellm"
    command = [str(litellm), "--config", str(config_path), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--num_workers", "1"]
    env = clean_env({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"})
    for name in ("DATABASE_URL", "REDIS_HOST", "REDIS_URL"):
        env.pop(name, None)
    proc = _spawn("litellm", command, env, f"http://127.0.0.1:{port}")
    _wait_ready(proc, "/health/liveliness", 240, {})
    return proc
