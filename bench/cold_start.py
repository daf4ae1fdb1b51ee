"""Figure 3: what a cold start pays to import the app, against importing boto3 alone.

Each import runs in a fresh interpreter (``python -X importtime``) with the app's environment,
alternating app and boto3 so a burst of outside load hits both alike; the figure is the ratio of
the medians. The deployment zip comes from ``devtools.package`` (``chalice package``).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import zipfile
from typing import Any

from bench.procs import REPO, WORK, sluice_env

RUNS = 7
TOP_IMPORTS = 10
PACKAGE_TIMEOUT = 240.0


def parse_importtime(stderr: str) -> list[tuple[int, int, str]]:
    """(self us, cumulative us, indented name) for each ``import time:`` line."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|", 2)
        if len(parts) != 3:
            continue
        try:
            rows.append((int(parts[0]), int(parts[1]), parts[2].rstrip()))
        except ValueError:
            continue
    return rows


def _import_us(statement: str, env: dict[str, str]) -> tuple[int, list[tuple[int, int, str]]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=str(REPO),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{statement!r} failed: {done.stderr[-1000:]}")
    rows = parse_importtime(done.stderr)
    return sum(own for own, _, _ in rows), rows


def imports(runs: int = RUNS) -> dict[str, Any]:
    # The endpoint is never called: importing the app opens no connection.
    env = sluice_env("http://127.0.0.1:9", "bench-admin-unused")
    app_us: list[int] = []
    boto_us: list[int] = []
    app_rows: list[list[tuple[int, int, str]]] = []
    for _ in range(runs):
        total, rows = _import_us("import app", env)
        app_us.append(total)
        app_rows.append(rows)
        boto_us.append(_import_us("import boto3", env)[0])
    app_ms = statistics.median(app_us) / 1000
    boto_ms = statistics.median(boto_us) / 1000
    median_run = app_rows[app_us.index(sorted(app_us)[len(app_us) // 2])]
    top = sorted(
        (row for row in median_run if row[2].strip() != "app"), key=lambda r: r[1], reverse=True
    )[:TOP_IMPORTS]
    return {
        "runs": runs,
        "app_ms": round(app_ms, 1),
        "boto3_ms": round(boto_ms, 1),
        "ratio": round(app_ms / boto_ms, 2) if boto_ms else None,
        "app_ms_all": [round(v / 1000, 1) for v in app_us],
        "boto3_ms_all": [round(v / 1000, 1) for v in boto_us],
        "top_cumulative": [
            {
                "module": name.strip(),
                "depth": (len(name) - len(name.lstrip())) // 2,
                "cumulative_ms": round(cum / 1000, 1),
            }
            for _, cum, name in top
        ],
    }


def package_zip() -> dict[str, Any]:
    """Size of the Lambda zip ``python -m devtools.package --stage prod`` builds."""
    out = WORK / "package"
    command = [sys.executable, "-m", "devtools.package", "--stage", "prod", "--out", str(out)]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=str(REPO),
            capture_output=True,
            text=True,
            timeout=PACKAGE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "note": f"devtools.package took over {PACKAGE_TIMEOUT:.0f}s"}
    seconds = round(time.perf_counter() - started, 1)
    zip_file = out / "deployment.zip"
    if done.returncode != 0 or not zip_file.exists():
        tail = (done.stderr or done.stdout)[-400:].strip().replace("\n", " | ")
        return {"ok": False, "seconds": seconds, "note": f"devtools.package failed: {tail}"}
    with zipfile.ZipFile(zip_file) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    return {
        "ok": True,
        "seconds": seconds,
        "zip_bytes": zip_file.stat().st_size,
        "unzipped_bytes": unzipped,
    }
