"""``python -m bench`` (``make bench``): every figure, one table, written to bench/results/.

    python -m bench              # the full run (about 12 minutes here, bounded by --budget)
    python -m bench --quick      # tiny counts: checks the wiring in a few minutes
    python -m bench --quick --only streaming,relay_cold_start   # just those sections

Sections run one after the other, never side by side, so none loads the machine under another;
a section that fails is reported in the table and the others still run. The whole run is bounded
by ``--budget`` seconds: the load figure gets what the other sections leave, and says when it
had to stop a run at its time bound. A run with ``--only`` writes its partial table to
bench/.work/, never over bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cold_start, floor, hot_key, overhead, report, round_trips, soak, streaming, tools
from bench.load import Target
from bench.procs import STRIPPED_ENV, WORK, Proc, start_litellm, start_mock, start_sluice
from devtools.ddblocal import LOCAL_AWS

MODEL = "gpt-4o-mini"
UPSTREAM_DELAY_MS = 20
# Seconds kept for what follows the load figure: streaming, hot key, reset job, report.
RESERVED_AFTER_LOAD = 200.0
SECTIONS = (
    "round_trips",
    "limits_round_trips",
    "soak",
    "dynamodb_floor",
    "cold_start",
    "relay_cold_start",
    "http_floor",
    "overhead",
    "streaming",
    "hot_key",
    "hot_key_limited",
    "resets",
)
SERVED_SECTIONS = ("http_floor", "overhead", "streaming", "hot_key", "hot_key_limited")
# The hot key run again with the key limited to this many calls in flight (of 64 clients).
HOT_MAX_CONCURRENCY = 16


def _machine() -> dict[str, Any]:
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {"nproc": os.cpu_count(), "memory_gib": round(mem_kib / 1024 / 1024, 1)}


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


class Run:
    """The figures so far, the deadline, and a guard that turns a crash into a table row."""

    def __init__(self, budget: float, only: tuple[str, ...] = ()) -> None:
        self.deadline = time.monotonic() + budget
        self.only = only
        self.figures: dict[str, Any] = {"skipped": {}, "notes": []}
        self.curves: dict[str, list[float]] = {}
        self.failed = False

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def wants(self, *names: str) -> bool:
        return not self.only or any(name in self.only for name in names)

    def section(self, name: str, work: Callable[[], Any]) -> None:
        if not self.wants(name):
            self.figures["skipped"][name] = "not in --only"
            return
        print(f"\n== {name} ({self.left():.0f} s of budget left)", flush=True)
        started = time.monotonic()
        try:
            self.figures[name] = work()
        except Exception as exc:
            self.failed = True
            traceback.print_exc()
            self.figures["skipped"][name] = f"{type(exc).__name__}: {str(exc)[:300]}"
        print(f"   {name}: {time.monotonic() - started:.0f} s", flush=True)

    def note(self, text: str) -> None:
        print(f"   note: {text}", flush=True)
        self.figures["notes"].append(text)


_app_log: Any = None


@contextlib.contextmanager
def _quiet() -> Any:
    """The in-process app logs a JSON line per call: send them to a file, not to the table.

    One file, open for the whole run: Chalice's logger keeps the stream it found at import.
    """
    global _app_log
    if _app_log is None:
        WORK.mkdir(parents=True, exist_ok=True)
        _app_log = open(WORK / "in-process-app.log", "w", encoding="utf-8")  # noqa: SIM115
    with contextlib.redirect_stdout(_app_log):
        yield
    _app_log.flush()


def _load_figures(
    run: Run,
    args: argparse.Namespace,
    ddb: Any,
    hey: str | None,
    litellm_python: str | None,
) -> None:
    upstream_key = "bench-upstream-" + secrets.token_hex(12)
    master_key = "sk-bench-" + secrets.token_hex(16)
    with contextlib.ExitStack() as stack:
        mock = start_mock(UPSTREAM_DELAY_MS, upstream_key, streaming.WORD_MS)
        stack.callback(mock.stop)
        sluice = start_sluice(ddb.endpoint, mock.base_url, upstream_key)
        stack.callback(sluice.stop)
        litellm: Proc | None = None
        if litellm_python:
            try:
                litellm = start_litellm(
                    Path(litellm_python), MODEL, mock.base_url, upstream_key, master_key
                )
                stack.callback(litellm.stop)
            except Exception as exc:
                run.note(f"LiteLLM did not start: {str(exc)[:300]}")
        run.section(
            "http_floor",
            lambda: {
                "chalice_local_health": floor.http_get(sluice.base_url + "/health", pid=sluice.pid),
                "mock_models": floor.http_get(
                    mock.base_url + "/v1/models",
                    headers={"Authorization": f"Bearer {upstream_key}"},
                ),
            },
        )
        chat = "/v1/chat/completions"
        gateways = [
            overhead.Gateway(
                "direct",
                Target(
                    "direct",
                    mock.base_url + chat,
                    {"Authorization": f"Bearer {upstream_key}"},
                    overhead.BODY,
                ),
                mock,
            ),
            overhead.Gateway(
                "sluice",
                Target(
                    "sluice",
                    sluice.base_url + chat,
                    {"Authorization": f"Bearer {sluice.extra['keys'].key}"},
                    overhead.BODY,
                ),
                sluice,
                jvm_pid=ddb.pid,
            ),
        ]
        if litellm is not None:
            gateways.append(
                overhead.Gateway(
                    "litellm",
                    Target(
                        "litellm",
                        litellm.base_url + chat,
                        {"Authorization": f"Bearer {master_key}"},
                        overhead.BODY,
                    ),
                    litellm,
                )
            )
        seconds = min(args.load_seconds, max(run.left() - RESERVED_AFTER_LOAD, 60.0))
        plan = overhead.Plan(
            requests=args.requests,
            warmup=args.warmup,
            open_requests=args.open_requests,
            rounds=args.rounds,
            seconds=seconds,
        )

        def load() -> Any:
            figures, curves = overhead.run(plan, gateways, mock, hey)
            run.curves.update(curves)
            return figures

        run.section("overhead", load)
        stream_plan = streaming.Plan(
            requests=args.stream_requests,
            rounds=args.stream_rounds,
            seconds=min(args.stream_seconds, max(run.left() - 150, 30.0)),
        )
        run.section("streaming", lambda: streaming.run(stream_plan, gateways))
        if litellm is not None:
            litellm.stop()  # frees a core's worth of idle work for the hot key
        hot_seconds = min(args.hot_seconds, max(run.left() - 120, 5.0))
        run.section("hot_key", lambda: hot_key.run(sluice, args.hot_clients, hot_seconds))
        limited_seconds = min(args.hot_seconds, max(run.left() - 100, 5.0))
        limit = min(HOT_MAX_CONCURRENCY, args.hot_clients)
        run.section(
            "hot_key_limited",
            lambda: hot_key.run(sluice, args.hot_clients, limited_seconds, max_concurrency=limit),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts, to check the wiring")
    parser.add_argument("--budget", type=float, default=660.0, help="seconds for the whole run")
    parser.add_argument("--requests", type=int, default=2000, help="per target and level")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--open-requests", type=int, default=900)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--load-seconds", type=float, default=420.0)
    parser.add_argument("--hot-clients", type=int, default=hot_key.CLIENTS)
    parser.add_argument("--hot-seconds", type=float, default=hot_key.SECONDS)
    parser.add_argument("--reset-keys", type=int, default=10_000)
    parser.add_argument("--import-runs", type=int, default=cold_start.RUNS)
    parser.add_argument("--soak-calls", type=int, default=soak.CALLS)
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--no-package", action="store_true")
    parser.add_argument("--stream-requests", type=int, default=streaming.Plan.requests)
    parser.add_argument("--stream-rounds", type=int, default=streaming.Plan.rounds)
    parser.add_argument("--stream-seconds", type=float, default=streaming.Plan.seconds)
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated sections to run, of: {', '.join(SECTIONS)}",
    )
    args = parser.parse_args(argv)
    only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) for --only: {', '.join(unknown)}")
    if args.quick:
        args.requests, args.warmup, args.open_requests, args.rounds = 100, 50, 60, 2
        args.hot_seconds, args.reset_keys, args.import_runs = 5.0, 500, 3
        args.soak_calls, args.stream_requests = 200, 32
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    for name in STRIPPED_ENV:
        os.environ.pop(name, None)
    os.environ.update(LOCAL_AWS)

    run = Run(args.budget, only)
    started = time.monotonic()
    meta = {**_machine(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    meta.update(command=command.strip(), load_before=_load())
    served = run.wants(*SERVED_SECTIONS)
    hey = tools.ensure_hey() if served else tools.Found(None, "hey not needed")
    litellm = (
        tools.Found(None, "LiteLLM skipped (--no-litellm)")
        if args.no_litellm or not served
        else tools.ensure_litellm()
    )
    plotting = tools.ensure_matplotlib()
    meta["tools"] = ", ".join(t.note for t in (hey, litellm, plotting))
    for found in (hey, litellm, plotting) if served else (plotting,):
        if found.path is None:
            run.note(found.note)

    from devtools.ddblocal import start_local_dynamodb

    with start_local_dynamodb() as ddb:
        if ddb.kind != "dynamodb-local":
            run.note("DynamoDB Local unavailable: moto's server stood in; figures not meaningful")

        def counted() -> Any:
            with _quiet():
                return round_trips.measure(ddb.endpoint)

        run.section("round_trips", counted)

        def counted_with_limits() -> Any:
            with _quiet():
                return round_trips.measure_limits(ddb.endpoint)

        run.section("limits_round_trips", counted_with_limits)

        def soaked() -> Any:
            with _quiet():
                return soak.run(ddb.endpoint, calls=args.soak_calls)

        run.section("soak", soaked)
        run.section("dynamodb_floor", lambda: floor.dynamodb(ddb.endpoint))

        def cold() -> Any:
            package = (
                {"ok": False, "note": "--no-package"}
                if args.no_package
                else cold_start.package_zip()
            )
            return {"imports": cold_start.imports(args.import_runs), "package": package}

        run.section("cold_start", cold)
        packaged = bool((run.figures.get("cold_start") or {}).get("package", {}).get("ok"))
        run.section(
            "relay_cold_start",
            lambda: (
                {"ok": False, "note": "--no-package (it runs from the deployment zip)"}
                if args.no_package
                else streaming.relay_cold_start(max(args.import_runs, 3), built=packaged)
            ),
        )
        try:
            if served:
                _load_figures(run, args, ddb, hey.path, litellm.path)
        except Exception as exc:
            traceback.print_exc()
            run.failed = True
            run.figures["skipped"].setdefault("overhead", f"{type(exc).__name__}: {exc}"[:300])
            run.figures["skipped"].setdefault("streaming", "the servers did not start")
            run.figures["skipped"].setdefault("hot_key", "the servers did not start")
            run.figures["skipped"].setdefault("hot_key_limited", "the servers did not start")

        def resets() -> Any:
            from bench import bench_resets

            with _quiet():
                return bench_resets.run(
                    args.reset_keys, endpoint=ddb.endpoint, max_seconds=max(run.left() - 20, 30)
                )

        run.section("resets", resets)

    meta.update(load_after=_load(), seconds=time.monotonic() - started)
    run.figures["meta"] = meta
    written = report.write(run.figures, run.curves, partial=bool(only))
    print("\n" + report.markdown(run.figures))
    print("written: " + ", ".join(written.values()))
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
