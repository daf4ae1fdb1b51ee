"""``sluice alerts show|set|rotate-secret|off|dead-letters``: budget alerts from a shell.

The same use cases and schema as ``/admin/accounts/{id}/alerts`` and ``/tokens/{id}/alerts``
(``--token`` picks one key of the account). The signing secret is printed once, by the ``set``
that creates the settings and by ``rotate-secret``; nothing else prints it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

MAX_PAGES = 100


def _use_cases() -> Any:
    from chalicelib.services import alerts
    from chalicelib.store import configure_store

    configure_store()
    return alerts


def _subject(token_id: str | None) -> tuple[str, str | None]:
    return ("token", token_id) if token_id else ("account", None)


def _print(settings: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(settings, indent=2))
        return
    who = f"key {settings['token_id']}" if settings["token_id"] else "the account"
    if not settings["enabled"]:
        click.echo(f"No budget alerts for {who}.")
        return
    thresholds = ", ".join(f"{t}%" for t in settings["thresholds"])
    targets = [settings.get(name) for name in ("webhook_url", "sns_topic_arn", "event_bus")]
    click.echo(f"Budget alerts for {who}: {thresholds} -> {', '.join(t for t in targets if t)}")
    if settings.get("webhook_secret"):
        click.echo(f"Signing secret (shown once): {settings['webhook_secret']}")


token_option = click.option("--token", "token_id", help="One key of the account (default: it).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
def alerts() -> None:
    """Budget alerts: thresholds in percent of quota, to a signed webhook (or the stack's topic
    or bus)."""


@alerts.command("show")
@click.argument("account_id")
@token_option
@json_option
def show(account_id: str, token_id: str | None, as_json: bool) -> None:
    """The alert settings of ACCOUNT_ID (or of one of its keys)."""
    kind, token = _subject(token_id)
    _print(_use_cases().get_alerts(kind, account_id, token), as_json)


@alerts.command("set")
@click.argument("account_id")
@click.option("--webhook-url", "--url", "webhook_url", help="Where to POST (https).")
@click.option("--sns-topic-arn", help="The stack's alert topic (deployed stages).")
@click.option("--event-bus", help="The stack's alert bus (deployed stages).")
@click.option(
    "--threshold",
    "thresholds",
    type=int,
    multiple=True,
    help="Percent of quota; repeat for several (default 50, 80, 100).",
)
@token_option
@json_option
def set_alerts(
    account_id: str,
    webhook_url: str | None,
    sns_topic_arn: str | None,
    event_bus: str | None,
    thresholds: tuple[int, ...],
    token_id: str | None,
    as_json: bool,
) -> None:
    """Set where and when ACCOUNT_ID's (or a key's) budget alerts go."""
    from chalicelib.services import schemas

    targets = {"webhook_url": webhook_url, "sns_topic_arn": sns_topic_arn, "event_bus": event_bus}
    fields: dict[str, Any] = {name: value for name, value in targets.items() if value}
    if thresholds:
        fields["thresholds"] = list(thresholds)
    body = schemas.parse(schemas.AlertSettings, json.dumps(fields))
    kind, token = _subject(token_id)
    _print(_use_cases().put_alerts(kind, account_id, body, int(time.time()), token), as_json)


@alerts.command("rotate-secret")
@click.argument("account_id")
@token_option
@json_option
def rotate_secret(account_id: str, token_id: str | None, as_json: bool) -> None:
    """Issue a new signing secret (printed once); the old one signs nothing from now on."""
    kind, token = _subject(token_id)
    _print(_use_cases().rotate_secret(kind, account_id, int(time.time()), token), as_json)


@alerts.command("off")
@click.argument("account_id")
@token_option
def turn_off(account_id: str, token_id: str | None) -> None:
    """Turn budget alerts off."""
    kind, token = _subject(token_id)
    _use_cases().delete_alerts(kind, account_id, token)
    click.echo("Budget alerts turned off.")


@alerts.command("dead-letters")
@json_option
def dead_letters(as_json: bool) -> None:
    """Deliveries that failed every attempt, newest first."""
    use_cases = _use_cases()
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(MAX_PAGES):
        page = use_cases.list_dead_letters(100, cursor)
        items += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    from chalicelib.cli.main import table

    columns = [
        ("at", lambda d: d["at"]),
        ("account", lambda d: d["account_id"]),
        ("key", lambda d: d["token_id"] or "-"),
        ("threshold", lambda d: f"{d['threshold']}%"),
        ("url", lambda d: d["webhook_url"]),
        ("error", lambda d: d["last_error"]),
    ]
    click.echo(table(items, columns) if items else "(none)")
