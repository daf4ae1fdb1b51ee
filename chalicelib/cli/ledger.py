"""``sluice ledger verify``: the ledger verifier from a shell (the daily schedule's use case).

Reads only. Exit code 0 when every invariant holds, 1 when drift was found (each drift printed
with its ids and amounts), so a cron job or CI step can alert on it.
"""

from __future__ import annotations

import json
import sys
import time

import click

from chalicelib.services import ledger_verify
from chalicelib.store import configure_store


@click.group("ledger")
def ledger() -> None:
    """The money ledger of keys and accounts."""


@ledger.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(as_json: bool) -> None:
    """Check every account and key against the ledger's invariants (never writes)."""
    configure_store()
    run = ledger_verify.verify(int(time.time()))
    if as_json:
        click.echo(json.dumps(run.as_json()))
    else:
        for drift in run.drift:
            where = f" request {drift.request_id}" if drift.request_id else ""
            click.echo(
                f"DRIFT {drift.kind}: {drift.item} {drift.id}{where}: "
                f"expected {drift.expected}, found {drift.found}"
            )
        verdict = "ok" if run.ok else f"{len(run.drift)} drift(s)"
        click.echo(f"Checked {run.accounts} accounts and {run.tokens} keys: {verdict}.")
    if not run.ok:
        sys.exit(1)
