"""``make run``: start the local stack, print working keys and curl lines, stop on Ctrl-C.

    python -m devtools.run --port 8000 --stage dev [--persist]

``--persist`` (``PERSIST=1 make run``) keeps DynamoDB's data under ``.ddb/data``. The admin key is
``$SLUICE_ADMIN_KEY`` when set, a fresh random one otherwise. With ``UPSTREAM_BASE_URL`` (and
``UPSTREAM_API_KEY``) set, that provider is the upstream instead of the local demo one.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from typing import Any

from devtools.stack import REPO_ROOT, Stack, StackError, start_stack

PERSIST_DIR = REPO_ROOT / ".ddb" / "data"
DEMO_MODEL = "gpt-4o-mini"
SLOW_MODEL = "demo-slow"  # the demo upstream streams it word by word
# Exit on our own after this long, so a forgotten terminal does not run a JVM for ever.
MAX_SECONDS = 7 * 24 * 3600.0


def _curl(
    stack: Stack, path: str, key: str, body: str | None = None, *, stream: bool = False
) -> str:
    # -N: curl prints each event as it arrives instead of buffering the stream.
    parts = ["curl", "-sN" if stream else "-s", f"{stack.base_url}{path}"]
    parts += ["-H", f"Authorization: Bearer {key}"]
    if body is not None:
        parts += ["-H", "Content-Type: application/json", "-d", body]
    return shlex.join(parts)


def banner(stack: Stack) -> str:
    """What a new user needs to make the first calls, with keys that work right now."""
    chat = json.dumps({"model": DEMO_MODEL, "messages": [{"role": "user", "content": "Hello!"}]})
    hello = [{"role": "user", "content": "Tell me a story."}]
    slow = json.dumps({"model": SLOW_MODEL, "messages": hello, "stream": True})
    assert stack.management_key, "the stack issues a management key on every start"
    account_key = mk_line = stack.management_key
    dynamo = (
        "DynamoDB Local"
        if stack.dynamo.kind == "dynamodb-local"
        else "moto's server instead of DynamoDB Local (fine for trying things out, "
        "not for concurrency figures)"
    )
    upstream = {
        "demo": f"demo upstream at {stack.upstream_base_url}",
        "external": f"external upstream at {stack.upstream_base_url}",
        "none": "no upstream",
    }[stack.upstream_kind]
    lines = [
        "",
        f"Sluice is running at {stack.base_url}",
        f"  storage:   {dynamo}" + (f", data in {stack.persist_dir}" if stack.persist_dir else ""),
        f"  upstream:  {upstream}",
        "",
        f"  admin key:                {stack.admin_key}",
        f"  demo account:             {stack.account_id} (US$10.00)",
        f"  demo management key (mk): {mk_line}",
        f"  demo API key (sk):        {stack.demo_key}",
        "",
        "Try:",
        "  " + _curl(stack, "/account", account_key),
        "  " + _curl(stack, "/tokens", account_key),
        "  " + _curl(stack, "/v1/chat/completions", stack.demo_key, chat),
    ]
    if stack.upstream_kind == "demo":
        lines += [
            "Streaming, a word every 300 ms:",
            "  " + _curl(stack, "/v1/chat/completions", stack.demo_key, slow, stream=True),
        ]
    lines += [
        f"  API reference: {stack.base_url}/openapi.json",
        "",
        "Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Sluice locally.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--persist", action="store_true", help=f"keep data in {PERSIST_DIR}")
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    stop = threading.Event()
    running = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        # While starting, unwind: start_stack stops whatever it had started.
        if not running.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    external = os.environ.get("UPSTREAM_BASE_URL", "").strip()
    print("Starting DynamoDB, the upstream, the relay and chalice local...", flush=True)
    try:
        stack = start_stack(
            port=args.port,
            persist_dir=str(PERSIST_DIR) if args.persist else None,
            admin_key=os.environ.get("SLUICE_ADMIN_KEY", "").strip() or None,
            upstream="external" if external else "demo",
            stage=args.stage,
            upstream_base_url=external or None,
            upstream_api_key=os.environ.get("UPSTREAM_API_KEY", "").strip() or None,
            server_output=sys.stdout.buffer,
        )
    except (StackError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted while starting; everything started was stopped.", file=sys.stderr)
        return 130
    running.set()
    try:
        print(banner(stack), flush=True)
        # Wake up now and then to notice the app dying on its own.
        for _ in range(int(args.max_seconds) + 1):
            if stop.wait(timeout=1.0):
                break
            if not stack.alive():
                print("error: the server exited; stopping.", file=sys.stderr)
                return 1
        print("Stopping...", flush=True)
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
