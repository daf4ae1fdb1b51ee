"""``sluice``: the operator's command line, over the same use cases and schemas as the API.

It talks to the stage's DynamoDB tables directly with the caller's AWS credentials, so it needs
no admin key. The stage comes from ``--stage`` or the usual environment (``SLUICE_STAGE``,
``SLUICE_TABLE_PREFIX``, ``SLUICE_REGION``/``AWS_REGION``, ``SLUICE_DYNAMODB_ENDPOINT``).
Arguments are validated by the API's pydantic schemas, so the CLI refuses exactly what the API
refuses, with the same message. Output is an aligned table for people, or the API's JSON with
``--json``. One click group per resource; the relay's ``channels``, ``models``, ``groups``,
``resets``, ``ledger`` and the operator ``keys`` groups live in their own modules and are
attached below.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import click
from pydantic import ValidationError

from chalicelib.cli import alerts as cli_alerts
from chalicelib.cli import as_cli_errors, logs_to_stderr
from chalicelib.cli import audit as cli_audit
from chalicelib.cli import config as cli_config
from chalicelib.cli import keys as cli_keys
from chalicelib.cli import ledger as cli_ledger
from chalicelib.cli import resets as cli_resets
from chalicelib.core import audit
from chalicelib.core.text import escaped

MAX_PAGES = 100  # listings follow cursors, 100 items a page, up to this many pages


def _now() -> int:
    return int(time.time())


class _Cli(click.Group):
    """Turns a ``GatewayError`` anywhere below into ``Error: <message>`` and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        with as_cli_errors():
            return super().invoke(ctx)


def _store() -> Any:
    """The use cases, with the store pointed at the stage's tables."""
    from chalicelib.services import management
    from chalicelib.store import configure_store

    configure_store()
    return management


def _body(schema_name: str, fields: dict[str, Any]) -> Any:
    """Options given on the command line, validated by the API's own schema."""
    from chalicelib.services import schemas

    given = {
        name: value
        for name, value in fields.items()
        if value is not None and value is not False and value != [] and value != ()
    }
    with as_cli_errors():
        try:
            return getattr(schemas, schema_name).model_validate(given)
        except ValidationError as exc:
            raise schemas.validation_error(exc) from exc


def _pages(fetch: Callable[[str | None], dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(MAX_PAGES):
        page = fetch(cursor)
        items += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    return items


# Output -----------------------------------------------------------------------------------------
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _show(
    value: Any,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, Callable]],
    as_json: bool,
) -> None:
    if as_json:
        _echo_json(value)
    else:
        click.echo(table(rows, columns) if rows else "(none)")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, Callable]]) -> str:
    """Rows as left-aligned columns under upper-case headers.

    Control and bidi characters are printed as escapes: items stored before names were checked
    may hold them, and printed raw they would drive the operator's terminal.
    """
    cells = [[header.upper() for header, _ in columns]]
    cells += [
        ["" if (v := render(row)) is None else escaped(str(v)) for _, render in columns]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def _usd(value: str | None) -> str:
    return "unlimited" if value is None else f"${value}"


def _date(value: str | None) -> str:
    return "never" if value is None else value


ACCOUNT_COLUMNS: list[tuple[str, Callable]] = [
    ("id", lambda a: a["id"]),
    ("name", lambda a: a["name"]),
    ("status", lambda a: a["status"]),
    ("remaining", lambda a: _usd(a["remaining_usd"])),
    ("used", lambda a: _usd(a["used_usd"])),
    ("reserved", lambda a: a["reserved_units"]),
    ("created", lambda a: a["created_at"]),
]
ACCOUNT_LIMIT_COLUMNS: list[tuple[str, Callable]] = [
    (name, lambda a, name=name: "none" if a[name] is None else a[name])
    for name in ("rpm_limit", "tpm_limit", "max_concurrency")
]
TOKEN_COLUMNS: list[tuple[str, Callable]] = [
    ("id", lambda t: t["id"]),
    ("name", lambda t: t["name"]),
    ("key", lambda t: t.get("key") or t["key_preview"]),
    ("status", lambda t: t["status"]),
    ("remaining", lambda t: _usd(t["remaining_usd"])),
    ("used", lambda t: _usd(t["used_usd"])),
    ("reset", lambda t: t["reset_period"]),
    ("expires", lambda t: _date(t["expires_at"])),
    ("group", lambda t: t["group"]),
    ("models", lambda t: ",".join(t["models"]) or "any"),
]


# Root -------------------------------------------------------------------------------------------
@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--stage",
    default=None,
    help="Stage whose tables to use (sets SLUICE_STAGE and the table prefix sluice-STAGE).",
)
def cli(stage: str | None) -> None:
    """Operate a Sluice stage: tables, accounts, API keys, upstream channels, prices, resets."""
    logs_to_stderr()
    # What this command changes is the admin's doing (the caller holds the stage's credentials);
    # the request id tells the audit trail it came from the command line.
    actor = audit.Actor(audit.ADMIN, request_id=f"cli-{uuid.uuid4().hex}")
    click.get_current_context().with_resource(audit.acting(actor))
    if stage:
        from chalicelib.core.settings import reset_settings

        os.environ["SLUICE_STAGE"] = stage
        os.environ["SLUICE_TABLE_PREFIX"] = f"sluice-{stage}"
        reset_settings()


@cli.group()
def tables() -> None:
    """The stage's DynamoDB tables."""


@tables.command("create")
def create_tables() -> None:
    """Create the tables that do not exist yet (a deployed stack gets them from infra/)."""
    _store()
    from chalicelib.store import models

    created = models.create_tables()
    for name in created:
        click.echo(f"Created {name}")
    click.echo(f"{len(models.TABLES)} tables ready ({len(created)} created).")


# Accounts ---------------------------------------------------------------------------------------
@cli.group()
def accounts() -> None:
    """Accounts: a balance, a management key, and API keys."""


quota_usd_option = click.option("--quota-usd", help='US dollars as a decimal, e.g. "10.50".')
quota_units_option = click.option("--quota-units", type=int, help="500,000 units = US$1.00.")


@accounts.command("create")
@click.argument("name")
@quota_usd_option
@quota_units_option
@click.option("--unlimited", is_flag=True, help="No balance limit.")
@click.option(
    "--group", "groups", multiple=True, help="Channel group its keys may use; repeatable."
)
@json_option
def create_account(
    name: str,
    quota_usd: str | None,
    quota_units: int | None,
    unlimited: bool,
    groups: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create account NAME with its management key and a default API key (shown once)."""
    management = _store()
    fields = {"name": name, "quota_usd": quota_usd, "quota_units": quota_units}
    body = _body(
        "CreateAccount",
        {**fields, "unlimited": unlimited, "groups": list(groups) or None},
    )
    created = management.create_account(body, _now())
    if as_json:
        _echo_json(created)
        return
    click.echo(table([created["account"]], ACCOUNT_COLUMNS))
    click.echo("")
    click.echo(f"Management key: {created['management_key']}")
    click.echo(f"Default API key: {created['default_token']['key']}")
    click.echo("Store both now: they are shown only once.")


@accounts.command("list")
@json_option
def list_accounts(as_json: bool) -> None:
    """Every account, newest first."""
    management = _store()
    rows = _pages(lambda cursor: management.list_accounts(management.MAX_LIST_LIMIT, cursor))
    _show({"data": rows}, rows, ACCOUNT_COLUMNS, as_json)


@accounts.command("groups")
@click.argument("account_id")
@click.argument("groups", nargs=-1, required=True)
@json_option
def set_account_groups(account_id: str, groups: tuple[str, ...], as_json: bool) -> None:
    """Grant ACCOUNT_ID exactly GROUPS (its keys in any other group stop relaying at once)."""
    management = _store()
    account = management.patch_account(account_id, _body("PatchAccount", {"groups": list(groups)}))
    _show(account, [account], ACCOUNT_COLUMNS, as_json)


@accounts.command("limits")
@click.argument("account_id")
@click.option("--rpm-limit", default=None, help="Requests per UTC minute, all keys; or none.")
@click.option("--tpm-limit", default=None, help="Tokens per UTC minute, all keys; or none.")
@click.option("--max-concurrency", default=None, help="Calls in flight, all keys; or none.")
@json_option
def set_account_limits(account_id: str, as_json: bool, **given: str | None) -> None:
    """Set or remove (``none``) limits capping all of ACCOUNT_ID's keys together."""
    from chalicelib.services import schemas

    management = _store()
    fields = {k: _limit_value(v) for k, v in given.items() if v is not None}
    try:
        body = schemas.PatchAccount.model_validate(fields)
    except ValidationError as exc:
        raise schemas.validation_error(exc) from exc
    account = management.patch_account(account_id, body)
    if as_json:
        _echo_json(account)
        return
    click.echo(table([account], ACCOUNT_COLUMNS + ACCOUNT_LIMIT_COLUMNS))


@accounts.command("credit")
@click.argument("account_id")
@quota_usd_option
@quota_units_option
@click.option("--note", default=None, help="Why (kept with the credit).")
@json_option
def credit_account(
    account_id: str, quota_usd: str | None, quota_units: int | None, note: str | None, as_json: bool
) -> None:
    """Add balance to ACCOUNT_ID."""
    management = _store()
    body = _body(
        "CreditAccount", {"quota_usd": quota_usd, "quota_units": quota_units, "note": note}
    )
    account = management.credit_account(account_id, body, _now())
    _show(account, [account], ACCOUNT_COLUMNS, as_json)


# Tokens (API keys) ------------------------------------------------------------------------------
@cli.group()
def tokens() -> None:
    """API keys (sk-) of an account."""


account_option = click.option("--account", "account_id", required=True, help="Account id.")


@tokens.command("create")
@account_option
@click.option("--name", default=None)
@click.option("--expires-in-days", type=int, default=None)
@click.option("--expires-at", default=None, help="ISO-8601 with offset, e.g. 2027-01-31T00:00:00Z.")
@quota_usd_option
@quota_units_option
@click.option("--reset-period", type=click.Choice(["never", "daily", "weekly", "monthly"]))
@click.option("--count", type=int, default=None, help="How many keys (1-100).")
@click.option("--group", default=None)
@click.option("--model", "models", multiple=True, help="Allowed model; repeatable (default any).")
@click.option("--allow-ip", "allow_ips", multiple=True, help="IP or CIDR; repeatable.")
@click.option("--rpm-limit", type=int, default=None, help="Requests per UTC minute.")
@click.option("--tpm-limit", type=int, default=None, help="Tokens per UTC minute.")
@click.option("--max-concurrency", type=int, default=None, help="Calls in flight at once.")
@json_option
def create_tokens(
    account_id: str,
    as_json: bool,
    models: tuple[str, ...],
    allow_ips: tuple[str, ...],
    **fields: Any,
) -> None:
    """Create API keys for an account (the full keys are shown once)."""
    management = _store()
    fields.update(models=list(models), allow_ips=list(allow_ips))
    created = management.create_tokens(account_id, _body("CreateTokens", fields), _now())
    if as_json:
        _echo_json(created)
        return
    click.echo(table(created["data"], TOKEN_COLUMNS))
    click.echo("Store the keys now: they are shown only once.")


@tokens.command("list")
@account_option
@click.option(
    "--status", type=click.Choice(["enabled", "disabled", "expired", "exhausted"]), default=None
)
@json_option
def list_tokens(account_id: str, status: str | None, as_json: bool) -> None:
    """An account's API keys, newest first (previews only, never the keys)."""
    management = _store()
    management.get_account(account_id)  # 404 for an unknown account rather than an empty list
    now = _now()
    rows = _pages(
        lambda cursor: management.list_tokens(
            account_id, management.MAX_LIST_LIMIT, cursor, status, now
        )
    )
    _show({"data": rows}, rows, TOKEN_COLUMNS, as_json)


def _limit_value(text: str) -> int | str | None:
    """``none`` clears a limit; a whole number sets it; anything else goes to the schema as
    typed, so the refusal names the option like the API names the field."""
    cleaned = text.strip()
    if cleaned.lower() == "none":
        return None
    return int(cleaned) if cleaned.isdigit() else cleaned


@tokens.command("update")
@account_option
@click.argument("token_id")
@click.option("--name", default=None)
@click.option("--rpm-limit", default=None, help="Requests per UTC minute, or none.")
@click.option("--tpm-limit", default=None, help="Tokens per UTC minute, or none.")
@click.option("--max-concurrency", default=None, help="Calls in flight at once, or none.")
@json_option
def update_token(
    account_id: str, token_id: str, name: str | None, as_json: bool, **given: str | None
) -> None:
    """Rename TOKEN_ID or change its rate limits (``none`` removes a limit)."""
    from chalicelib.services import schemas

    management = _store()
    fields: dict[str, Any] = {k: _limit_value(v) for k, v in given.items() if v is not None}
    if name is not None:
        fields["name"] = name
    try:
        body = schemas.PatchToken.model_validate(fields)
    except ValidationError as exc:
        raise schemas.validation_error(exc) from exc
    token = management.patch_token(account_id, token_id, body, _now())
    _show(token, [token], TOKEN_COLUMNS, as_json)


def _set_status(account_id: str, token_id: str, status: str, as_json: bool) -> None:
    management = _store()
    body = _body("PatchToken", {"status": status})
    token = management.patch_token(account_id, token_id, body, _now())
    _show(token, [token], TOKEN_COLUMNS, as_json)


@tokens.command("disable")
@account_option
@click.argument("token_id")
@json_option
def disable_token(account_id: str, token_id: str, as_json: bool) -> None:
    """Disable TOKEN_ID: its very next request is refused."""
    _set_status(account_id, token_id, "disabled", as_json)


@tokens.command("enable")
@account_option
@click.argument("token_id")
@json_option
def enable_token(account_id: str, token_id: str, as_json: bool) -> None:
    """Enable TOKEN_ID again."""
    _set_status(account_id, token_id, "enabled", as_json)


@tokens.command("delete")
@account_option
@click.argument("token_id")
@json_option
def delete_token(account_id: str, token_id: str, as_json: bool) -> None:
    """Delete TOKEN_ID for good."""
    _store().delete_token(account_id, token_id)
    if as_json:
        _echo_json({"id": token_id, "deleted": True})
    else:
        click.echo(f"Deleted {token_id}.")


# The relay's configuration and the reset job, from their own modules.
cli.add_command(cli_config.channels)
cli.add_command(cli_config.models)
cli.add_command(cli_config.groups)
cli.add_command(cli_resets.resets)
cli.add_command(cli_ledger.ledger)
cli.add_command(cli_keys.keys)
cli.add_command(cli_audit.audit)
cli.add_command(cli_alerts.alerts)


def main() -> None:
    """Console script entry point (``sluice``)."""
    cli(prog_name="sluice")
