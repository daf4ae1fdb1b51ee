"""Figure 2: what a gateway adds to a 20 ms upstream, Sluice and LiteLLM side by side.

The same bounded load goes (a) straight to the mock upstream, (b) through Sluice and (c) through
LiteLLM's proxy. The machine is shared and noisy, so nothing is compared across runs: each level
is split into rounds, and every round sends its share to (a), (b) and (c) back to back, in a
rotating order, so a burst of outside load lands on all three alike. Added latency is a
gateway's percentile minus the direct one; CPU per request is the gateway process's own
utime + stime over the requests it served (DynamoDB Local's JVM reported apart for Sluice).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from bench.load import Sample, Target, closed_loop, open_loop, percentile
from bench.procs import Proc, cpu_seconds, sluice_stats

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}
PERCENTILES = (50, 95, 99)
# Well below saturation: the machine is shared, and both gateways share its two cores with the
# mock, the load generator and (for Sluice) DynamoDB Local.
OPEN_LOOP_SHARE_OF_CAPACITY = 0.4
OPEN_LOOP_MAX_RATE = 30.0


@dataclass
class Plan:
    requests: int = 2000  # per target and closed-loop level
    warmup: int = 1000  # per gateway, at concurrency 16
    open_requests: int = 900  # per target
    rounds: int = 4
    seconds: float = 420.0  # the whole figure's time bound
    deadline: float = 0.0  # set when the figure starts

    def start(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def cap(self, share: float) -> float:
        """Seconds one run may take: its level's ``share`` of the figure, split over the rounds
        and the two gateways (the direct runs are quick), never past the figure's deadline."""
        wanted = self.seconds * share / self.rounds / 2
        return max(min(wanted, self.deadline - time.monotonic()), 5.0)


@dataclass
class Gateway:
    name: str
    target: Target
    proc: Proc
    jvm_pid: int | None = None  # DynamoDB Local, measured apart


@dataclass
class Tally:
    sample: Sample
    cpu_seconds: float = 0.0
    jvm_cpu_seconds: float = 0.0
    upstream_cpu_seconds: float = 0.0
    handler_ms: list[float] | None = None
    forward_ms: list[float] | None = None
    dynamodb: dict[str, Any] | None = None
    rounds: list[Sample] = field(default_factory=list)


def _merge_ddb(total: dict[str, Any] | None, part: dict[str, Any]) -> dict[str, Any]:
    if total is None:
        return {**part, "by_operation": dict(part["by_operation"])}
    names = ("calls", "attempts", "botocore_retries", "store_retries", "busy_ms", "client_cpu_ms")
    for name in names:
        total[name] += part[name]
    for op, n in part["by_operation"].items():
        total["by_operation"][op] = total["by_operation"].get(op, 0) + n
    return total


def _one_run(gateway: Gateway, mock: Proc, tally: Tally, send: Any) -> None:
    is_sluice = gateway.name == "sluice"
    if is_sluice:
        sluice_stats(gateway.proc)  # start the server's meters afresh
    cpu0 = gateway.proc.cpu()
    jvm0 = cpu_seconds(gateway.jvm_pid) if gateway.jvm_pid else 0.0
    up0 = mock.cpu()
    sample = send(gateway.target)
    tally.sample.merge(sample)
    tally.rounds.append(sample)
    tally.upstream_cpu_seconds += mock.cpu() - up0
    if gateway.proc is not mock:
        tally.cpu_seconds += gateway.proc.cpu() - cpu0
    if gateway.jvm_pid:
        tally.jvm_cpu_seconds += cpu_seconds(gateway.jvm_pid) - jvm0
    if is_sluice:
        stats = sluice_stats(gateway.proc)
        tally.handler_ms = (tally.handler_ms or []) + stats["handler_ms"]
        tally.forward_ms = (tally.forward_ms or []) + stats["forward_ms"]
        tally.dynamodb = _merge_ddb(tally.dynamodb, stats["dynamodb"])


def _level(gateways: list[Gateway], mock: Proc, rounds: int, send: Any) -> dict[str, Tally]:
    tallies = {g.name: Tally(Sample()) for g in gateways}
    for round_no in range(rounds):
        shift = round_no % len(gateways)
        for gateway in gateways[shift:] + gateways[:shift]:
            _one_run(gateway, mock, tallies[gateway.name], send)
    return tallies


def _per_request_ms(seconds: float, sample: Sample) -> float | None:
    return round(seconds * 1000 / sample.answered, 2) if sample.answered else None


def _summary(tally: Tally, direct: Sample | None) -> dict[str, Any]:
    sample = tally.sample
    row: dict[str, Any] = {
        "answered": sample.answered,
        "planned": sample.planned,
        "ok": sample.ok,
        "non_200": sample.answered - sample.ok,
        "errors": sample.errors,
        "stopped_early": sample.stopped_early,
        "throughput_rps": round(sample.throughput(), 1),
        "cpu_ms_per_request": _per_request_ms(tally.cpu_seconds, sample),
        "upstream_cpu_ms_per_request": _per_request_ms(tally.upstream_cpu_seconds, sample),
    }
    for pct in PERCENTILES:
        row[f"p{pct}_ms"] = round(percentile(sample.latencies_ms, pct), 2)
        if direct is not None:
            added = percentile(sample.latencies_ms, pct) - percentile(direct.latencies_ms, pct)
            row[f"added_p{pct}_ms"] = round(added, 2)
    if tally.jvm_cpu_seconds:
        row["dynamodb_local_cpu_ms_per_request"] = _per_request_ms(tally.jvm_cpu_seconds, sample)
    if tally.handler_ms:
        for pct in PERCENTILES:
            row[f"handler_p{pct}_ms"] = round(percentile(tally.handler_ms, pct), 2)
        if direct is not None:
            direct_p50 = percentile(direct.latencies_ms, 50)
            row["handler_added_p50_ms"] = round(percentile(tally.handler_ms, 50) - direct_p50, 2)
    if tally.dynamodb is not None:
        row["dynamodb"] = tally.dynamodb
    if tally.handler_ms and tally.forward_ms and tally.dynamodb is not None:
        row["handler_breakdown_mean_ms"] = _breakdown(tally)
    return row


def _breakdown(tally: Tally) -> dict[str, float]:
    """Mean handler time split into upstream, DynamoDB wait and the rest (Python in Sluice).

    Additive only when requests do not overlap (concurrency 1): then DynamoDB's busy time is
    exactly the time a handler spent waiting on it.
    """
    assert tally.handler_ms and tally.forward_ms and tally.dynamodb is not None
    handled = len(tally.handler_ms)
    handler = sum(tally.handler_ms) / handled
    upstream = sum(tally.forward_ms) / max(len(tally.forward_ms), 1)
    dynamodb = tally.dynamodb["busy_ms"] / handled
    return {
        "handler": round(handler, 2),
        "upstream": round(upstream, 2),
        "dynamodb": round(dynamodb, 2),
        "rest": round(handler - upstream - dynamodb, 2),
        "botocore_cpu": round(tally.dynamodb["client_cpu_ms"] / handled, 2),
    }


def _ratios(rows: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """LiteLLM's added latency over Sluice's (above 1: Sluice adds less)."""
    if "sluice" not in rows or "litellm" not in rows:
        return {}
    ratios: dict[str, float | None] = {}
    for pct in PERCENTILES:
        ours, theirs = rows["sluice"][f"added_p{pct}_ms"], rows["litellm"][f"added_p{pct}_ms"]
        ratios[f"p{pct}"] = round(theirs / ours, 2) if ours and ours > 0 else None
    ours_cpu = rows["sluice"]["cpu_ms_per_request"]
    theirs_cpu = rows["litellm"]["cpu_ms_per_request"]
    ratios["cpu"] = round(theirs_cpu / ours_cpu, 2) if ours_cpu and theirs_cpu else None
    return ratios


def _by_round(tally: Tally, direct: Tally) -> list[float]:
    """Added P50 of each round against the direct run of the same round: the spread says how
    much of a difference between gateways the machine's noise alone could make."""
    return [
        round(percentile(ours.latencies_ms, 50) - percentile(theirs.latencies_ms, 50), 2)
        for ours, theirs in zip(tally.rounds, direct.rounds, strict=False)
        if ours.latencies_ms and theirs.latencies_ms
    ]


def _rows(tallies: dict[str, Tally]) -> dict[str, Any]:
    direct = tallies["direct"]
    rows = {
        name: _summary(t, None if name == "direct" else direct.sample)
        for name, t in tallies.items()
    }
    for name, tally in tallies.items():
        if name != "direct":
            rows[name]["added_p50_by_round_ms"] = _by_round(tally, direct)
    return {"rows": rows, "litellm_over_sluice": _ratios(rows)}


def run(
    plan: Plan, gateways: list[Gateway], mock: Proc, hey: str | None
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Warm up, then c=1, c=16 and open loop; returns figures and the latencies for the chart."""
    plan.start()
    for gateway in gateways:
        if gateway.name != "direct":
            closed_loop(gateway.target, plan.warmup, 16, plan.cap(0.06) * plan.rounds, hey)
    figures: dict[str, Any] = {
        "plan": {k: v for k, v in plan.__dict__.items() if k != "deadline"},
        "generator": "hey" if hey else "httpx",
    }
    per_run = max(plan.requests // plan.rounds, 16)
    per_run_16 = per_run // 16 * 16  # hey splits a run evenly over its clients
    c1 = _level(
        gateways,
        mock,
        plan.rounds,
        lambda t: closed_loop(t, per_run, 1, plan.cap(0.5), hey),
    )
    figures["c1"] = _rows(c1)
    c16 = _level(
        gateways,
        mock,
        plan.rounds,
        lambda t: closed_loop(t, per_run_16, 16, plan.cap(0.17), hey),
    )
    figures["c16"] = _rows(c16)
    capacity = min(c16[g.name].sample.throughput() for g in gateways if g.name != "direct") or 1.0
    rate = max(min(capacity * OPEN_LOOP_SHARE_OF_CAPACITY, OPEN_LOOP_MAX_RATE), 1.0)
    open_cap = plan.cap(0.22)
    open_per_run = max(min(plan.open_requests // plan.rounds, math.floor(rate * open_cap)), 1)
    opened = _level(
        gateways, mock, plan.rounds, lambda t: open_loop(t, rate, open_per_run, plan.cap(0.22))
    )
    figures["open"] = {**_rows(opened), "rate_rps": round(rate, 1)}
    curves = {
        **{f"c1 {name}": t.sample.latencies_ms for name, t in c1.items()},
        **{f"open {name}": t.sample.latencies_ms for name, t in opened.items()},
    }
    return figures, curves
