"""``devtools.chalice_local`` with two meters inside: DynamoDB calls and the handler's own time.

    python -m bench.counted_server --stats FILE -- --host 127.0.0.1 --port P --stage dev ...

The server is the very same ``chalice local`` (same backlog, same app); this wrapper only

* registers a ``CallCounter`` on the store's shared botocore client once the app configures the
  store, so calls, botocore retries, the store's own retries and Scans made while serving HTTP
  are counted where they happen;
* times every ``app(event, context)`` call, which is what a Lambda bills (chalice local's HTTP
  parsing and threading around it stand in for API Gateway and are not part of it), and every
  upstream call (``relay.forward``), so the handler's time splits into upstream, DynamoDB and
  the rest;
* turns off Nagle's algorithm on chalice local's responses (see ``_no_nagle``).

``kill -USR1 <pid>`` writes what was measured since the previous signal to FILE (atomically)
and starts afresh, so the caller gets per-phase figures without a route in the app.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.ddb_calls import CallCounter

_lock = threading.Lock()
_durations_ms: list[float] = []
_forward_ms: list[float] = []
_counter = CallCounter(phase="serve")


def _instrument_store() -> None:
    from chalicelib.store import models
    from chalicelib.store.common import connection

    original = models.configure

    def configure_and_count(settings: Any) -> None:
        original(settings)
        _counter.register(connection().client)

    models.configure = configure_and_count  # type: ignore[assignment]


def _instrument_handler() -> None:
    from chalice.app import Chalice

    original = Chalice.__call__

    def timed_call(self: Chalice, event: Any, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, event, context)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            with _lock:
                _durations_ms.append(elapsed)

    Chalice.__call__ = timed_call  # type: ignore[method-assign]


def _instrument_upstream() -> None:
    """Time ``relay.forward`` (the upstream call), to split the handler's time into parts."""
    from chalicelib import upstream as relay

    original = relay.forward

    def timed_forward(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            with _lock:
                _forward_ms.append(elapsed)

    relay.forward = timed_forward  # type: ignore[assignment]


def _no_nagle() -> None:
    """Answer without the 40 ms stall a dev server adds and Lambda does not.

    chalice local writes a response's headers and body in two sends; with Nagle's algorithm on,
    the body waits for the client's delayed ACK of the headers (40 ms on Linux), so every
    response took 40 ms more than the app did. The mock upstream sets the same flag.
    """
    from chalice import local

    local.ChaliceRequestHandler.disable_nagle_algorithm = True


def _dump(path: Path) -> None:
    with _lock:
        durations, forwards = list(_durations_ms), list(_forward_ms)
        _durations_ms.clear()
        _forward_ms.clear()
    stats = {"handler_ms": durations, "forward_ms": forwards, "dynamodb": _counter.summary()}
    _counter.reset("serve")
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(stats), encoding="utf-8")
    os.replace(scratch, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stats", type=Path, required=True, help="where SIGUSR1 writes figures")
    parser.add_argument("chalice_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    chalice_args = [a for a in args.chalice_args if a != "--"]
    _instrument_store()
    _instrument_handler()
    _instrument_upstream()
    _no_nagle()
    signal.signal(signal.SIGUSR1, lambda signum, frame: _dump(args.stats))
    from devtools import chalice_local

    return chalice_local.main(chalice_args)


if __name__ == "__main__":
    sys.exit(main())
