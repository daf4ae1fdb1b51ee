"""Load generators, all bounded in count and in time, all aimed at 127.0.0.1.

* ``closed_loop``: ``c`` clients each send the next request when the previous one is answered.
  Uses Debian's ``hey`` (Go, cheap on CPU, per-request CSV) when installed, else httpx threads.
* ``open_loop``: requests leave at a fixed rate whatever the answers do; latency counts from the
  scheduled send time, so a stall shows up in the figures instead of silently slowing the
  sender down (closed-loop latency near saturation only measures the queue).
"""

from __future__ import annotations

import csv
import io
import json
import math
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx

SIGINT_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    headers: dict[str, str] = field(repr=False)
    body: dict[str, Any]

    def __post_init__(self) -> None:
        if urlparse(self.url).hostname != "127.0.0.1":
            raise ValueError("benchmarks only send load to 127.0.0.1")


@dataclass
class Sample:
    """Latencies (ms) of answered requests, their statuses, and what failed outright."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    seconds: float = 0.0
    planned: int = 0
    stopped_early: bool = False

    @property
    def answered(self) -> int:
        return len(self.latencies_ms)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def merge(self, other: Sample) -> None:
        self.latencies_ms += other.latencies_ms
        self.statuses.update(other.statuses)
        self.errors += other.errors
        self.seconds += other.seconds
        self.planned += other.planned
        self.stopped_early = self.stopped_early or other.stopped_early

    def throughput(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation), NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return ordered[rank - 1]


# Closed loop ----------------------------------------------------------------------------------
def closed_loop(
    target: Target, requests: int, concurrency: int, max_seconds: float, hey: str | None
) -> Sample:
    if hey:
        return _hey(hey, target, requests, concurrency, max_seconds)
    return _threads(target, requests, concurrency, max_seconds)


def _hey(hey: str, target: Target, requests: int, concurrency: int, max_seconds: float) -> Sample:
    """``hey -o csv``: one row per answered request; SIGINT at the time bound makes it report.

    hey gives each of its ``c`` workers ``n // c`` requests, so that is what is planned.
    """
    requests = max(requests // concurrency, 1) * concurrency
    command = [hey, "-n", str(requests), "-c", str(concurrency), "-m", "POST", "-o", "csv"]
    command += ["-t", "30", "-T", "application/json", "-d", json.dumps(target.body)]
    for name, value in target.headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(target.url)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stopped_early = False
    try:
        out, err = process.communicate(timeout=max_seconds)
    except subprocess.TimeoutExpired:
        stopped_early = True
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=SIGINT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
    sample = Sample(seconds=time.perf_counter() - started, planned=requests)
    sample.stopped_early = stopped_early
    for row in csv.DictReader(io.StringIO(out.decode("utf-8", "replace"))):
        try:
            sample.latencies_ms.append(float(row["response-time"]) * 1000)
            sample.statuses[int(row["status-code"])] += 1
        except (KeyError, TypeError, ValueError):
            continue
    if process.returncode not in (0, -signal.SIGINT) and not sample.answered:
        raise RuntimeError(f"hey failed: {err.decode('utf-8', 'replace')[-500:]}")
    if not stopped_early:
        sample.errors = max(requests - sample.answered, 0)
    return sample


def _client(connections: int) -> httpx.Client:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.Client(timeout=30, limits=limits, trust_env=False)


def _threads(target: Target, requests: int, concurrency: int, max_seconds: float) -> Sample:
    sample = Sample(planned=requests)
    lock = threading.Lock()
    issued = iter(range(requests))
    deadline = time.perf_counter() + max_seconds
    payload = json.dumps(target.body).encode()
    headers = {"Content-Type": "application/json", **target.headers}

    def worker(client: httpx.Client) -> None:
        while time.perf_counter() < deadline:
            with lock:
                if next(issued, None) is None:
                    return
            started = time.perf_counter()
            try:
                response = client.post(target.url, content=payload, headers=headers)
            except httpx.HTTPError:
                with lock:
                    sample.errors += 1
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                sample.latencies_ms.append(elapsed)
                sample.statuses[response.status_code] += 1

    started = time.perf_counter()
    with _client(concurrency) as client:
        threads = [threading.Thread(target=worker, args=(client,)) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max_seconds + 60)
    sample.seconds = time.perf_counter() - started
    sample.stopped_early = sample.answered + sample.errors < requests
    return sample


# Open loop ------------------------------------------------------------------------------------
def open_loop(
    target: Target, rate: float, requests: int, max_seconds: float, max_in_flight: int = 64
) -> Sample:
    """``requests`` sends at ``rate`` per second; latency from each one's scheduled time."""
    sample = Sample(planned=requests)
    lock = threading.Lock()
    payload = json.dumps(target.body).encode()
    headers = {"Content-Type": "application/json", **target.headers}

    def send(client: httpx.Client, scheduled: float) -> None:
        try:
            response = client.post(target.url, content=payload, headers=headers)
        except httpx.HTTPError:
            with lock:
                sample.errors += 1
            return
        elapsed = (time.perf_counter() - scheduled) * 1000
        with lock:
            sample.latencies_ms.append(elapsed)
            sample.statuses[response.status_code] += 1

    with _client(max_in_flight) as client, ThreadPoolExecutor(max_in_flight) as pool:
        start = time.perf_counter()
        futures = []
        for i in range(requests):
            scheduled = start + i / rate
            if scheduled - start > max_seconds:
                sample.stopped_early = True
                break
            pause = scheduled - time.perf_counter()
            if pause > 0:
                time.sleep(pause)  # pacing the sender, not waiting for an outcome
            futures.append(pool.submit(send, client, scheduled))
        for future in futures:
            future.result(timeout=max_seconds + 60)
        sample.seconds = time.perf_counter() - start
    return sample
