"""The table: one row per figure, with its goal and whether the run met it (pure).

``rows(figures)`` turns the JSON the sections return into (figure, measured, goal, verdict).
"""

from __future__ import annotations

from typing import Any

GOALS = {
    # DynamoDB calls of a relayed call: the two reservations before upstream (side by side);
    # the record, then the two settles after it.
    "before_calls": 2,
    "after_calls": 3,
    "added_p50_ms": 7.0,
    "cpu_ms": 3.0,
    "import_ratio": 1.3,
    # Against LiteLLM's proxy in the same run (figure 7), and import boto3 (figure 8).
    "ttft_share_of_litellm": 0.5,
    "whole_share_of_litellm": 1.0,
    "relay_cold_ratio": 1.3,
    "reset_writes_per_key": 1.0,
}
Row = tuple[str, str, str, str]  # figure, measured, goal, verdict


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("meets" if ok else "**MISSES**")


def _ops(ops: dict[str, int]) -> str:
    return ", ".join(f"{op} {n}" for op, n in ops.items()) or "none"


def _round_trip_rows(rt: dict[str, Any], server_scans: int | None) -> list[Row]:
    rows: list[Row] = []
    for name, label in (("chat", "relayed chat call"), ("stream", "streamed chat call")):
        for phase in ("before", "after"):
            part = rt[name][phase]
            goal = GOALS[f"{phase}_calls"]
            rows.append(
                (
                    f"1. {label}, warm: {phase} upstream",
                    f"{part['calls']} calls in {part['round_trips']} round trip(s) "
                    f"({_ops(part['ops'])})",
                    f"≤ {goal} calls",
                    _verdict(part["calls"] <= goal),
                )
            )
    for name, label in (
        ("create_key", "key creation (POST /tokens)"),
        ("create_100_keys", "batch of 100 keys (POST /tokens count=100)"),
        ("reset_on_request_one_key", "reset of one due key, on the request path"),
        ("reset_scheduled_one_key", "reset of one due key, scheduled run"),
    ):
        part = rt[name]
        rows.append(
            (
                f"1. {label}",
                f"{part['round_trips']} round trip(s), {part['calls']} calls ({_ops(part['ops'])})",
                "—",
                "—",
            )
        )
    sweep = rt["sweep"]
    n = max(sweep["reservations"], 1)
    rows.append(
        (
            "1. sweeper, per pending reservation",
            f"{sweep['calls'] / n:.1f} calls, {sweep['round_trips'] / n:.1f} round trips "
            f"({_ops(sweep['ops'])} for {n}; {sweep['refunded']} refunded)",
            "—",
            "—",
        )
    )
    scans = sum(
        part["ops"].get("Scan", 0)
        for row in rt.values()
        for part in (
            [row[p] for p in ("before", "upstream", "after")] if "before" in row else [row]
        )
    ) + (server_scans or 0)
    rows.append(
        ("1. Scans, everything above and all HTTP load", str(scans), "0", _verdict(scans == 0))
    )
    return rows


def _limits_rows(rt: dict[str, Any]) -> list[Row]:
    """The same relayed call with and without rpm/tpm/concurrency limits, side by side."""
    rows: list[Row] = []
    for name, label in (("chat", "relayed chat call"), ("stream", "streamed chat call")):
        for phase in ("before", "after"):
            plain, limited = rt["no_limits"][name][phase], rt["limits"][name][phase]
            same = (plain["calls"], plain["round_trips"]) == (
                limited["calls"],
                limited["round_trips"],
            )
            rows.append(
                (
                    f"1. {label} with limits on key and account: {phase} upstream",
                    f"{limited['calls']} calls in {limited['round_trips']} round trip(s) "
                    f"({_ops(limited['ops'])}); no limits: {plain['calls']} calls in "
                    f"{plain['round_trips']}",
                    "same as no limits",
                    _verdict(same),
                )
            )
    return rows


def _spread(row: dict[str, Any]) -> str:
    by_round = row.get("added_p50_by_round_ms") or []
    if len(by_round) < 2:
        return ""
    return f"; P50 by round {min(by_round):+.1f} to {max(by_round):+.1f} ms"


def _count(row: dict[str, Any]) -> str:
    """Requests answered, and whether the time bound cut the planned count short."""
    if row.get("stopped_early"):
        return f"{row['answered']} of {row['planned']} requests: stopped at the time bound"
    return f"{row['answered']} requests"


def _ms(value: Any) -> str:
    return (
        "n/a" if value is None else f"{value:+.1f} ms" if isinstance(value, float) else str(value)
    )


def _cpu_split(ov: dict[str, Any], http: dict[str, Any] | None) -> list[Row]:
    """Where Sluice's CPU per request goes: botocore, the dev server's HTTP layer, the rest."""
    sluice = ov["c1"]["rows"].get("sluice") or {}
    breakdown = sluice.get("handler_breakdown_mean_ms")
    total = sluice.get("cpu_ms_per_request")
    if not breakdown or total is None:
        return []
    server = (http or {}).get("chalice_local_health", {}).get("server_cpu_ms_per_request")
    rest = total - breakdown["botocore_cpu"] - (server or 0)
    calls = sluice.get("dynamodb", {}).get("calls", 0) / max(sluice.get("answered", 0), 1)
    return [
        (
            "2. Sluice CPU per request split, c=1",
            f"{total} ms = botocore {breakdown['botocore_cpu']} ({calls:.1f} calls) + chalice "
            f"local's "
            f"HTTP layer {server if server is not None else 'n/a'} (GET /health) + the rest "
            f"{rest:.2f} (app, httpx, logs)",
            "—",
            "—",
        )
    ]


def _overhead_rows(ov: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    c1 = ov["c1"]["rows"]
    for name, label in (("sluice", "Sluice"), ("litellm", "LiteLLM")):
        if name not in c1:
            continue
        r = c1[name]
        goal = GOALS["added_p50_ms"] if name == "sluice" else None
        rows.append(
            (
                f"2. added latency, c=1, {label}",
                f"P50 {_ms(r['added_p50_ms'])}, P95 {_ms(r['added_p95_ms'])}, "
                f"P99 {_ms(r['added_p99_ms'])} ({_count(r)}{_spread(r)})",
                f"≤ +{goal:.0f} ms P50" if goal else "—",
                _verdict(r["added_p50_ms"] <= goal) if goal else "—",
            )
        )
        rows.append(
            (
                f"2. CPU per request, {label} process",
                f"{r['cpu_ms_per_request']} ms"
                + (
                    f" (+ DynamoDB Local JVM {r['dynamodb_local_cpu_ms_per_request']} ms)"
                    if "dynamodb_local_cpu_ms_per_request" in r
                    else ""
                ),
                f"≤ {GOALS['cpu_ms']:.0f} ms" if name == "sluice" else "—",
                _verdict(r["cpu_ms_per_request"] <= GOALS["cpu_ms"]) if name == "sluice" else "—",
            )
        )
    if "sluice" in c1 and "handler_p50_ms" in c1["sluice"]:
        r = c1["sluice"]
        rows.append(
            (
                "2. Sluice handler time, c=1 (what Lambda bills; includes the 20 ms upstream)",
                f"P50 {r['handler_p50_ms']} ms, P99 {r['handler_p99_ms']} ms "
                f"(P50 {_ms(r['handler_added_p50_ms'])} over direct)",
                "—",
                "—",
            )
        )
    breakdown = c1.get("sluice", {}).get("handler_breakdown_mean_ms")
    if breakdown:
        rows.append(
            (
                "2. Sluice handler time split, c=1 (means)",
                f"{breakdown['handler']} ms = upstream {breakdown['upstream']} + DynamoDB calls "
                f"{breakdown['dynamodb']} (of which botocore's CPU {breakdown['botocore_cpu']}) "
                f"+ the rest {breakdown['rest']}",
                "—",
                "—",
            )
        )
    ratios = ov["c1"].get("litellm_over_sluice") or {}
    if ratios:
        rows.append(
            (
                "2. LiteLLM ÷ Sluice, c=1 (added latency; CPU)",
                f"P50 {ratios['p50']}x, P95 {ratios['p95']}x, P99 {ratios['p99']}x; "
                f"CPU {ratios['cpu']}x",
                "> 1x",
                _verdict(all((v or 0) > 1 for v in ratios.values())),
            )
        )
    c16 = ov["c16"]["rows"]
    rows.append(
        (
            "2. closed loop c=16: throughput",
            ", ".join(
                f"{name} {r['throughput_rps']} req/s ({_count(r)})" for name, r in c16.items()
            ),
            "—",
            "—",
        )
    )
    opened = ov["open"]["rows"]
    for name in ("sluice", "litellm"):
        if name in opened:
            r = opened[name]
            rows.append(
                (
                    f"2. open loop {ov['open']['rate_rps']} req/s: added latency, {name}",
                    f"P50 {_ms(r['added_p50_ms'])}, P95 {_ms(r['added_p95_ms'])}, "
                    f"P99 {_ms(r['added_p99_ms'])}; non-200 {r['non_200']}, "
                    f"errors {r['errors']} ({_count(r)}{_spread(r)})",
                    "—",
                    "—",
                )
            )
    return rows


def _floor_rows(figures: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    ddb = figures.get("dynamodb_floor")
    if ddb:
        rows.append(
            (
                "0. floor: DynamoDB Local here",
                f"UpdateItem P50 {ddb['update_p50_ms']} ms, GetItem P50 {ddb['get_p50_ms']} ms, "
                f"3 UpdateItems side by side P50 {ddb['three_parallel_updates_p50_ms']} ms; "
                f"botocore CPU {ddb['client_cpu_ms_per_call']} ms per call; the store's lean "
                f"client: UpdateItem P50 {ddb.get('lean_update_p50_ms', '?')} ms, "
                f"CPU {ddb.get('lean_cpu_ms_per_call', '?')} ms per call",
                "—",
                "—",
            )
        )
    http = figures.get("http_floor")
    if http:
        health = http["chalice_local_health"]
        rows.append(
            (
                "0. floor: chalice local GET /health, c=1 (mock GET /v1/models)",
                f"P50 {health['p50_ms']} ms, {health.get('server_cpu_ms_per_request')} ms CPU "
                f"per request (mock: P50 {http['mock_models']['p50_ms']} ms)",
                "—",
                "—",
            )
        )
    return rows


def _cold_rows(cold: dict[str, Any]) -> list[Row]:
    imports, package = cold["imports"], cold["package"]
    rows: list[Row] = [
        (
            "3. cold start: import app ÷ import boto3 (medians)",
            f"{imports['ratio']}x ({imports['app_ms']} ms vs {imports['boto3_ms']} ms, "
            f"{imports['runs']} runs each)",
            f"≤ {GOALS['import_ratio']}x",
            _verdict(imports["ratio"] is not None and imports["ratio"] <= GOALS["import_ratio"]),
        )
    ]
    if package.get("ok"):
        measured = (
            f"{package['zip_bytes'] / 1e6:.2f} MB zipped, "
            f"{package['unzipped_bytes'] / 1e6:.1f} MB unzipped"
        )
    else:
        measured = f"not measured: {package.get('note')}"
    rows.append(("3. Lambda zip (devtools.package --stage prod)", measured, "—", "—"))
    return rows


def _stream_count(row: dict[str, Any]) -> str:
    if row.get("stopped_early"):
        return f"{row['answered']} of {row['planned']} calls: stopped at the time bound"
    if not row["errors"]:
        return f"{row['answered']} calls"
    kinds = ", ".join(f"{n} x {kind}" for kind, n in row.get("error_kinds", {}).items())
    return f"{row['answered']} calls, {row['errors']} errors" + (f": {kinds}" if kinds else "")


def _share_goal(ours: Any, theirs: Any, share: float) -> bool | None:
    """Whether Sluice adds at most ``share`` of what LiteLLM adds (None: not comparable)."""
    if not isinstance(ours, float) or not isinstance(theirs, float):
        return None
    return ours <= share * theirs if theirs > 0 else ours <= 0


def _streaming_rows(st: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    labels = {"sluice": "Sluice", "litellm": "LiteLLM"}
    for level in (1, 16):
        for kind, measure, goal_name, what in (
            ("stream", "ttft", "ttft_share_of_litellm", "time to first token added"),
            ("whole", "total", "whole_share_of_litellm", "whole call, total added"),
        ):
            level_rows = st.get(f"c{level}_{kind}") or {}
            sluice, litellm = level_rows.get("sluice"), level_rows.get("litellm")
            share = GOALS[goal_name]
            for name in ("sluice", "litellm"):
                r = level_rows.get(name)
                if r is None:
                    continue
                ok: bool | None = None
                if name == "sluice" and litellm is not None and sluice is not None:
                    checks = [
                        _share_goal(
                            sluice.get(f"added_{measure}_p{pct}_ms"),
                            litellm.get(f"added_{measure}_p{pct}_ms"),
                            share,
                        )
                        for pct in (50, 99)
                    ]
                    ok = None if None in checks else all(checks)
                goal = (
                    ("≤ ½ LiteLLM's, P50 and P99" if share == 0.5 else "≤ LiteLLM's, P50 and P99")
                    if name == "sluice"
                    else "—"
                )
                rows.append(
                    (
                        f"7. {what}, c={level}, {labels[name]}",
                        f"P50 {_ms(r.get(f'added_{measure}_p50_ms'))}, "
                        f"P99 {_ms(r.get(f'added_{measure}_p99_ms'))}; CPU "
                        f"{r.get('cpu_ms_per_call')} ms per call"
                        + (
                            f" (+ DynamoDB Local JVM {r['dynamodb_local_cpu_ms_per_call']} ms)"
                            if "dynamodb_local_cpu_ms_per_call" in r
                            else ""
                        )
                        + f" ({_stream_count(r)})",
                        goal,
                        _verdict(ok) if name == "sluice" else "—",
                    )
                )
    direct = (st.get("c1_stream") or {}).get("direct")
    if direct:
        rows.append(
            (
                "7. direct to the mock, c=1 streamed: TTFT; whole stream",
                f"P50 {direct.get('ttft_p50_ms')} ms; P50 {direct.get('total_p50_ms')} ms "
                f"(words {st.get('word_ms')} ms apart)",
                "—",
                "—",
            )
        )
    return rows


def _relay_cold_rows(cold: dict[str, Any]) -> list[Row]:
    title = "8. relay cold start: import chalicelib.relay.app + uvicorn answering ÷ import boto3"
    if not cold.get("ok", True):
        return [
            (title, f"not measured: {cold.get('note')}", f"≤ {GOALS['relay_cold_ratio']}x", "—")
        ]
    ratio = cold.get("ratio")
    return [
        (
            f"{title}, both from the deployment zip",
            f"{ratio}x ({cold['relay_ms']} ms vs {cold['boto3_ms']} ms, medians of "
            f"{cold['runs']} runs each; botocore and PynamoDB never loaded); its libraries "
            "alone (httpx, Starlette, uvicorn), serving one route: "
            f"{cold.get('libraries_ratio')}x ({cold.get('libraries_ms')} ms)",
            f"≤ {GOALS['relay_cold_ratio']}x",
            _verdict(ratio is not None and ratio <= GOALS["relay_cold_ratio"]),
        )
    ]


def _hot_limited_rows(hot: dict[str, Any]) -> list[Row]:
    limit = hot["max_concurrency"]
    title = f"4. hot key, max_concurrency {limit}: {hot['clients']} clients for {hot['seconds']} s"
    return [
        (
            title,
            f"{hot['throughput_rps']} req/s ({hot['ok']} ok, {hot['refused_over_limit']} refused "
            f"429 rate_limit_exceeded, of {hot['requests']})",
            "—",
            "—",
        ),
        (
            "4. hot key, max_concurrency: calls in flight (sampled pending map)",
            f"max {hot['pending_max_under_load']} of limit {limit}",
            f"≤ {limit}",
            _verdict(hot["pending_max_under_load"] <= limit),
        ),
        (
            "4. hot key, max_concurrency: errors (other than the limit's 429s)",
            str(hot["errors"])
            + "".join(f"; {sample}" for sample in hot.get("error_samples", [])[:2]),
            "0",
            _verdict(hot["errors"] == 0),
        ),
        (
            "4. hot key, max_concurrency: used == sum of X-Sluice-Cost-Units",
            f"token +{hot['token_used_units_delta']}, account +{hot['account_used_units_delta']}, "
            f"headers {hot['charged_units_sum']}; reserved after {hot['reserved_after']}",
            "exactly equal",
            _verdict(hot["exact"] and hot["reserved_after"] == 0),
        ),
    ]


def _hot_rows(hot: dict[str, Any]) -> list[Row]:
    return [
        (
            f"4. hot key: {hot['clients']} clients on one key for {hot['seconds']} s",
            f"{hot['throughput_rps']} req/s ({hot['ok']} ok of {hot['requests']})",
            "—",
            "—",
        ),
        (
            "4. hot key: errors",
            str(hot["errors"])
            + "".join(f"; {sample}" for sample in hot.get("error_samples", [])[:2]),
            "0",
            _verdict(hot["errors"] == 0),
        ),
        (
            "4. hot key: retries (botocore; store's own)",
            f"{hot['botocore_retries']}; {hot['store_retries']}",
            "—",
            "—",
        ),
        (
            "4. hot key: used == sum of X-Sluice-Cost-Units",
            f"token +{hot['token_used_units_delta']}, account +{hot['account_used_units_delta']}, "
            f"headers {hot['charged_units_sum']}; reserved after {hot['reserved_after']}",
            "exactly equal",
            _verdict(hot["exact"] and hot["reserved_after"] == 0),
        ),
        (
            "4. hot key: token item size under load",
            f"max {hot['item_bytes_max_under_load']} B ({hot['pending_max_under_load']} pending),"
            f" idle {hot['item_bytes_idle']} B; {hot['write_units_per_write_at_max']} WCU/write",
            "≤ 400 KB",
            _verdict(hot["item_bytes_max_under_load"] <= 400 * 1024),
        ),
    ]


def _reset_rows(reset: dict[str, Any]) -> list[Row]:
    return [
        (
            f"5. reset job: {reset['keys']} due keys",
            f"{reset['keys_per_second']} keys/s, {reset['writes_per_key']} writes/key, "
            f"{reset['index_pages']} index pages, {reset['scans']} Scans, "
            f"complete {reset['complete']}",
            "≤ 1 write/key, 0 Scans",
            _verdict(
                reset["writes_per_key"] <= GOALS["reset_writes_per_key"] and reset["scans"] == 0
            ),
        )
    ]


def _soak_rows(soak: dict[str, Any]) -> list[Row]:
    faults = soak["faults"]
    return [
        (
            f"6. ledger soak: {soak['calls']} calls on {soak['keys']} keys with random faults",
            f"{soak['drift']} drift, {soak['leaked_units']} units left reserved after sweep "
            f"(faults: {faults['throttled']} throttled, {faults['lost']} answers lost, "
            f"{faults['killed']} kills, {faults['upstream_failures']} upstream failures; "
            f"swept {soak['swept']['refunded']} refunded, {soak['swept']['settled']} settled)",
            "0 drift, 0 leaked",
            _verdict(soak["drift"] == 0 and soak["leaked_units"] == 0),
        )
    ]


def rows(figures: dict[str, Any]) -> list[Row]:
    sections: list[Row] = []
    skipped = figures.get("skipped", {})
    server_scans = (figures.get("hot_key") or {}).get("scans", 0)
    server_scans += (figures.get("hot_key_limited") or {}).get("scans", 0)
    for level in ("c1", "c16", "open"):
        for row in (figures.get("overhead") or {}).get(level, {}).get("rows", {}).values():
            server_scans += row.get("dynamodb", {}).get("by_operation", {}).get("Scan", 0)
    builders = (
        ("round_trips", lambda f: _round_trip_rows(f, server_scans)),
        ("limits_round_trips", _limits_rows),
        ("overhead", lambda f: _overhead_rows(f) + _cpu_split(f, figures.get("http_floor"))),
        ("cold_start", _cold_rows),
        ("streaming", _streaming_rows),
        ("relay_cold_start", _relay_cold_rows),
        ("hot_key", _hot_rows),
        ("hot_key_limited", _hot_limited_rows),
        ("resets", _reset_rows),
        ("soak", _soak_rows),
    )
    sections += _floor_rows(figures)
    for name, build in builders:
        if figures.get(name):
            sections += build(figures[name])
        else:
            sections.append((name, f"not measured: {skipped.get(name, 'skipped')}", "—", "—"))
    return sections
