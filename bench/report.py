"""bench/results/: the table as Markdown and JSON, and the latency CDF chart.

``write`` puts ``latest.md``, ``latest.json`` and ``latency_cdf.png`` in bench/results/ (a
partial run's, with ``--only``, in bench/.work/partial/ instead).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.load import percentile
from bench.table import GOALS, rows

RESULTS = Path(__file__).resolve().parent / "results"
PARTIAL = Path(__file__).resolve().parent / ".work" / "partial"
CONTEXT = (
    "Sluice runs on `chalice local` (`devtools.chalice_local`, metered by `bench.counted_server`,"
    " which also turns off Nagle's algorithm on its responses: without that, every response of "
    "the dev server waits 40 ms for a delayed ACK, which Lambda behind API Gateway does not) "
    "with DynamoDB Local on the same two cores; every relayed call reserves and settles on the "
    "key and the account and writes its log record.",
    "LiteLLM runs in master-key mode without a database: it relays and authenticates only, and "
    "keeps no spend or budget.",
    "The mock upstream is `devtools.mock_upstream` (through `bench.mock_server`, a deeper listen "
    "backlog) answering after 20 ms, and streaming a word per event 20 ms apart; all three "
    "targets get the same request body.",
)
REFERENCE = (
    "LiteLLM 1.106 reference (20 ms mock, 1 worker, a machine like this): +22 ms P50 / +31 ms "
    "P99 at c=1, ~20 ms CPU per request, 65-87 req/s at c=16"
)


def markdown(figures: dict[str, Any], results: Path = RESULTS) -> str:
    meta = figures["meta"]
    lines = [
        f"# Sluice benchmarks — {meta['date']}",
        "",
        f"Machine: {meta['nproc']} cores, {meta['memory_gib']} GiB; load average "
        f"{meta['load_before']} before, {meta['load_after']} after. Command: `{meta['command']}` "
        f"({meta['seconds']:.0f} s). Tools: {meta['tools']}.",
        "",
        "| Figure | Measured | Goal | Verdict |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(figures)]
    lines += ["", f"Reference: {REFERENCE}.", ""]
    lines += [f"- {text}" for text in CONTEXT]
    lines.append("")
    if (results / "latency_cdf.png").exists():
        lines += ["![Latency CDF](latency_cdf.png)", ""]
    cold = figures.get("cold_start") or {}
    imports = cold.get("imports") or {}
    if imports.get("ratio") and imports["ratio"] > GOALS["import_ratio"]:
        lines += ["Slowest imports of `import app` (cumulative, median run):", ""]
        lines += [
            f"- {'  ' * t['depth']}`{t['module']}` {t['cumulative_ms']} ms"
            for t in imports["top_cumulative"]
        ]
        lines.append("")
    lines += [f"- {note}" for note in figures.get("notes", [])]
    return "\n".join(lines) + "\n"


def chart(curves: dict[str, list[float]], path: Path, open_rate: float | None = None) -> str | None:
    """Latency CDFs of (a), (b), (c); None when written, else why not."""
    import importlib

    importlib.invalidate_caches()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import ScalarFormatter
    except ImportError:
        return "matplotlib unavailable"
    panels = [p for p in ("c1", "open") if any(k.startswith(p + " ") for k in curves)]
    if not panels:
        return "no latencies"
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    rate = f"{open_rate:.0f} req/s" if open_rate else "fixed rate"
    titles = {"c1": "closed loop, concurrency 1", "open": f"open loop, {rate}"}
    for ax, panel in zip(axes[0], panels, strict=True):
        for label, values in curves.items():
            if not label.startswith(panel + " ") or not values:
                continue
            ordered = sorted(values)
            fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
            ax.plot(ordered, fractions, label=label.split(" ", 1)[1])
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(ScalarFormatter())
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(titles[panel])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    figure.suptitle("Chat completion latency: direct to a 20 ms mock vs through a gateway")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


def strip_samples(curves: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Percentiles for the JSON (the raw latencies only feed the chart)."""
    return {
        label: {f"p{p}": round(percentile(values, p), 2) for p in (50, 90, 95, 99, 99.9)}
        for label, values in curves.items()
    }


def write(
    figures: dict[str, Any], curves: dict[str, list[float]], *, partial: bool = False
) -> dict[str, str]:
    results = PARTIAL if partial else RESULTS
    results.mkdir(parents=True, exist_ok=True)
    written = {"table": str(results / "latest.md"), "json": str(results / "latest.json")}
    open_rate = ((figures.get("overhead") or {}).get("open") or {}).get("rate_rps")
    note = chart(curves, results / "latency_cdf.png", open_rate) if curves else "no latencies"
    if note is None:
        written["chart"] = str(results / "latency_cdf.png")
    else:
        figures.setdefault("notes", []).append(f"chart not drawn: {note}")
    figures["latency_percentiles"] = strip_samples(curves)
    (results / "latest.md").write_text(markdown(figures, results), encoding="utf-8")
    (results / "latest.json").write_text(
        json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )
    return written
