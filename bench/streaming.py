"""Figure 7: what a gateway adds to a streamed call's first token, and to a whole call.

The mock upstream streams every chat answer a word per event, ``WORD_MS`` apart (``make
bench`` starts it with ``--stream-word-ms``), after its usual 20 ms; the same mock serves
Sluice, LiteLLM's proxy and the direct runs. Time to first token (TTFT) is the time from sending
the request to the first event that carries content; a gateway's added TTFT is its percentile
minus the direct one. As in figure 2 each level is split into rounds, every round sending its
share to direct, Sluice and LiteLLM back to back in a rotating order, so outside load lands on
all three alike; the quick runs (c=16) go first and each run may take an even share of the
time left, so the slow ones (a whole stream per call at c=1) get the time the quick ones did
not use. CPU per call is the gateway process's own utime + stime over the calls it
served. Every loop is bounded in count and in time, and aims at 127.0.0.1 only.

Figure 8: the relay function's cold start, locally: a fresh interpreter imports
``chalicelib.relay.app`` and starts uvicorn until it answers one HTTP request (what Lambda Web
Adapter waits for before the first invocation), against a fresh interpreter importing boto3.
Both run from the unpacked deployment zip, as Lambda runs them (``python -S`` with only the zip
on the path: no developer tools, the zip's own bytecode).
"""

from __future__ import annotations

import contextlib
import gc
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import cold_start
from bench.load import Target, percentile
from bench.overhead import Gateway
from bench.procs import WORK, cpu_seconds, sluice_env

WORD_MS = 20.0
PERCENTILES = (50, 99)
CALL_TIMEOUT_SECONDS = 30.0
COLD_RUNS = 7
COLD_TIMEOUT_SECONDS = 120.0


# The order the runs go in: the quick ones first, so the time they leave goes to the runs that
# need it (a streamed call at c=1 takes the whole stream, about ten times a word's gap).
ORDER = ((16, "stream"), (16, "whole"), (1, "whole"), (1, "stream"))


@dataclass
class Plan:
    requests: int = 160  # per target, level and kind
    rounds: int = 2
    seconds: float = 240.0  # the whole figure's time bound
    deadline: float = 0.0
    runs_left: int = 0

    def start(self, targets: int = 3) -> None:
        self.deadline = time.monotonic() + self.seconds
        self.runs_left = len(ORDER) * self.rounds * targets

    def cap(self) -> float:
        """Seconds the next run may take: an even share of the time left, never past the
        figure's deadline; a run that ends early leaves its time to the ones after it."""
        left = self.deadline - time.monotonic()
        share = left / max(self.runs_left, 1)
        self.runs_left -= 1
        return max(min(share, left), 2.0)


@dataclass
class Calls:
    """What one target's calls measured: TTFT (streams) and total time (ms), failures, CPU."""

    ttft_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    errors: int = 0
    # What the failed calls saw ("HTTP 502", "ReadTimeout"...), so a row's errors say what
    # they were.
    error_kinds: dict[str, int] = field(default_factory=dict)
    planned: int = 0
    stopped_early: bool = False
    cpu_seconds: float = 0.0
    jvm_cpu_seconds: float = 0.0

    def merge(self, other: Calls) -> None:
        self.ttft_ms += other.ttft_ms
        self.total_ms += other.total_ms
        self.errors += other.errors
        for kind, count in other.error_kinds.items():
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + count
        self.planned += other.planned
        self.stopped_early = self.stopped_early or other.stopped_early


class CallFailed(Exception):
    """A call the gateway answered, but not with a whole answer; its text names how."""


def _has_content(line: str) -> bool:
    if not line.startswith("data: ") or line == "data: [DONE]":
        return False
    try:
        chunk = json.loads(line[6:])
    except ValueError:
        return False
    return any((choice.get("delta") or {}).get("content") for choice in chunk.get("choices", []))


def one_call(client: httpx.Client, target: Target, stream: bool) -> tuple[float | None, float]:
    """(TTFT ms or None, total ms) of one call; raises on a failed one."""
    body = {**target.body, "stream": True} if stream else target.body
    started = time.perf_counter()
    if not stream:
        response = client.post(target.url, headers=target.headers, json=body)
        if response.status_code != 200:
            raise CallFailed(f"HTTP {response.status_code}")
        return None, (time.perf_counter() - started) * 1000
    first: float | None = None
    done = False
    with client.stream("POST", target.url, headers=target.headers, json=body) as response:
        if response.status_code != 200:
            raise CallFailed(f"HTTP {response.status_code}")
        for line in response.iter_lines():
            if first is None and _has_content(line):
                first = (time.perf_counter() - started) * 1000
            done = done or line == "data: [DONE]"
    if first is None or not done:
        raise CallFailed("a stream without content or [DONE]")
    return first, (time.perf_counter() - started) * 1000


def closed_loop(
    target: Target, requests: int, concurrency: int, max_seconds: float, stream: bool
) -> Calls:
    """``concurrency`` clients, each sending its next call when the last one ended; at most
    ``requests`` calls and ``max_seconds`` (a call under way then still finishes)."""
    calls = Calls(planned=requests)
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds
    sent = 0

    def worker() -> None:
        nonlocal sent
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(timeout=CALL_TIMEOUT_SECONDS, limits=limits, trust_env=False) as client:
            while True:
                with lock:
                    if sent >= requests:
                        return
                    if time.monotonic() > deadline:
                        calls.stopped_early = True
                        return
                    sent += 1
                try:
                    ttft, total = one_call(client, target, stream)
                except Exception as exc:
                    kind = str(exc) if isinstance(exc, CallFailed) else type(exc).__name__
                    with lock:
                        calls.errors += 1
                        calls.error_kinds[kind] = calls.error_kinds.get(kind, 0) + 1
                    continue
                with lock:
                    calls.total_ms.append(total)
                    if ttft is not None:
                        calls.ttft_ms.append(ttft)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    with _collector_paused():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max_seconds + CALL_TIMEOUT_SECONDS + 5)
    return calls


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection in this process while a run is timed. A full pass over the
    benchmark's own heap takes 60-170 ms here, and the call it lands in (a gateway's or the
    mock's) was timed with the pause inside: at concurrency 1 that one call was the P99 of
    whichever target it hit. Collected before and after instead (a run is bounded in calls)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def _one_run(
    gateway: Gateway, tally: Calls, plan: Plan, requests: int, concurrency: int, stream: bool
) -> None:
    measured = gateway.name != "direct"
    cpu0 = gateway.proc.cpu() if measured else 0.0
    jvm0 = cpu_seconds(gateway.jvm_pid) if gateway.jvm_pid else 0.0
    tally.merge(closed_loop(gateway.target, requests, concurrency, plan.cap(), stream))
    if measured:
        tally.cpu_seconds += gateway.proc.cpu() - cpu0
    if gateway.jvm_pid:
        tally.jvm_cpu_seconds += cpu_seconds(gateway.jvm_pid) - jvm0


def _per_call_ms(seconds: float, calls: Calls) -> float | None:
    return round(seconds * 1000 / len(calls.total_ms), 2) if calls.total_ms else None


def _summary(calls: Calls, direct: Calls, name: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "answered": len(calls.total_ms),
        "planned": calls.planned,
        "errors": calls.errors,
        "error_kinds": dict(sorted(calls.error_kinds.items())),
        "stopped_early": calls.stopped_early,
    }
    for pct in PERCENTILES:
        for measure in ("ttft", "total"):
            ours: list[float] = getattr(calls, f"{measure}_ms")
            theirs: list[float] = getattr(direct, f"{measure}_ms")
            if not ours:
                continue
            row[f"{measure}_p{pct}_ms"] = round(percentile(ours, pct), 2)
            if name != "direct" and theirs:
                added = percentile(ours, pct) - percentile(theirs, pct)
                row[f"added_{measure}_p{pct}_ms"] = round(added, 2)
    if name != "direct":
        row["cpu_ms_per_call"] = _per_call_ms(calls.cpu_seconds, calls)
    if calls.jvm_cpu_seconds:
        row["dynamodb_local_cpu_ms_per_call"] = _per_call_ms(calls.jvm_cpu_seconds, calls)
    return row


def run(plan: Plan, gateways: list[Gateway]) -> dict[str, Any]:
    """Streamed and whole calls at c=1 and c=16 through every gateway."""
    plan.start(len(gateways))
    figures: dict[str, Any] = {
        "plan": {k: v for k, v in plan.__dict__.items() if k not in {"deadline", "runs_left"}},
        "word_ms": WORD_MS,
    }
    for gateway in gateways:  # connections and caches warm, as the load figure's warm-up does
        if gateway.name != "direct":
            closed_loop(gateway.target, 16, 4, 30.0, stream=True)
    for level, kind in ORDER:
        per_run = max(plan.requests // plan.rounds // level, 1) * level
        tallies = {g.name: Calls() for g in gateways}
        for round_no in range(plan.rounds):
            shift = round_no % len(gateways)
            for gateway in gateways[shift:] + gateways[:shift]:
                _one_run(gateway, tallies[gateway.name], plan, per_run, level, kind == "stream")
        figures[f"c{level}_{kind}"] = {
            name: _summary(calls, tallies["direct"], name) for name, calls in tallies.items()
        }
    return figures


# Cold start -------------------------------------------------------------------------------
# Both children time themselves from their first line, so the interpreter's own start (the same
# for both) is left out, as ``-X importtime`` leaves it out of figure 3. uvicorn binds its own
# socket, as run.sh has it do in Lambda: asyncio turns Nagle's algorithm off only on sockets
# whose protocol is IPPROTO_TCP, and a bare socket.socket() handed to it says 0, so every
# response written in two parts (headers, then body) would wait ~40 ms for a delayed ACK. The
# child asks as Web Adapter does, over a bare socket: Web Adapter is a process of its own, and
# http.client (with the email package it loads, 20-40 ms here) is nothing the relay imports.
RELAY_CHILD = """
import time
started = time.perf_counter()
import socket, threading
import uvicorn
from chalicelib.relay.app import app
config = uvicorn.Config(
    app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="off"
)
server = uvicorn.Server(config)
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
for _ in range(100000):
    if server.started:
        break
    time.sleep(0.001)
port = server.servers[0].sockets[0].getsockname()[1]
connection = socket.create_connection(("127.0.0.1", port), timeout=30)
connection.sendall(b"GET /v1/models HTTP/1.1\\r\\nHost: relay\\r\\nConnection: close\\r\\n\\r\\n")
status = int(connection.recv(64).split()[1])
ready = time.perf_counter() - started
connection.close()
server.should_exit = True
thread.join(10)
assert status == 401, status
import sys
assert not {"botocore", "pynamodb"} & {name.split(".")[0] for name in sys.modules}, "AWS SDK loaded"
print(ready * 1000)
"""
# The floor under figure 8: the relay's libraries alone (httpx, Starlette, uvicorn; it loads
# neither botocore nor PynamoDB), serving a one-route Starlette app the same way. What the relay
# takes beyond this is the app's own code.
LIBRARIES_CHILD = RELAY_CHILD.replace(
    "from chalicelib.relay.app import app",
    "import httpx\n"
    "from starlette.applications import Starlette\n"
    "from starlette.responses import Response\n"
    "from starlette.routing import Route\n"
    "async def refuse(request): return Response(status_code=401)\n"
    "app = Starlette(routes=[Route('/v1/models', refuse)])",
)
BOTO3_CHILD = """
import time
started = time.perf_counter()
import boto3
print((time.perf_counter() - started) * 1000)
"""


def _child_ms(code: str, env: dict[str, str], root: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=str(root),
        env={**env, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=COLD_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cold start child failed: {done.stderr[-1000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _unpacked(zip_file: Path) -> Path:
    root = WORK / "relay-package"
    shutil.rmtree(root, ignore_errors=True)
    with zipfile.ZipFile(zip_file) as archive:
        archive.extractall(root)
    return root


def relay_cold_start(runs: int = COLD_RUNS, built: bool = False) -> dict[str, Any]:
    """Medians of alternating runs, so a burst of outside load hits both alike.

    ``built``: figure 3 packaged the app in this run already; otherwise it is packaged here (a
    zip left by an earlier run may hold older code).
    """
    if not built:
        package = cold_start.package_zip()
        if not package["ok"]:
            return {"ok": False, "note": package.get("note", "no deployment zip")}
    root = _unpacked(WORK / "package" / "deployment.zip")
    # The endpoint is never called: the relay's first request here is refused before any lookup.
    env = sluice_env("http://127.0.0.1:9", "bench-admin-unused")
    relay_ms: list[float] = []
    libraries_ms: list[float] = []
    boto_ms: list[float] = []
    for _ in range(runs):
        relay_ms.append(_child_ms(RELAY_CHILD, env, root))
        libraries_ms.append(_child_ms(LIBRARIES_CHILD, env, root))
        boto_ms.append(_child_ms(BOTO3_CHILD, env, root))
    relay, boto = statistics.median(relay_ms), statistics.median(boto_ms)
    libraries = statistics.median(libraries_ms)
    return {
        "ok": True,
        "from": "the unpacked deployment zip",
        "runs": runs,
        "relay_ms": round(relay, 1),
        "boto3_ms": round(boto, 1),
        "ratio": round(relay / boto, 2) if boto else None,
        "libraries_ms": round(libraries, 1),
        "libraries_ratio": round(libraries / boto, 2) if boto else None,
        "relay_ms_all": [round(v, 1) for v in relay_ms],
        "boto3_ms_all": [round(v, 1) for v in boto_ms],
    }
