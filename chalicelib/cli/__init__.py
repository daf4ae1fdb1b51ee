"""The ``sluice`` command line."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from chalicelib.core import observe
from chalicelib.core.errors import GatewayError, InvalidRequest, ServiceUnavailable


def logs_to_stderr() -> None:
    """For the current command, log warnings and errors to stderr and drop the rest.

    stdout is the command's answer (``--json`` must parse); the per-call and per-reset lines are
    for CloudWatch, where the Lambdas write them.
    """
    click.get_current_context().with_resource(observe.diverted(sys.stderr, "WARNING"))


def error_message(exc: GatewayError) -> str:
    """What the operator reads for one of our errors.

    A refused field is named as the option they typed: the current command's option that sets
    it (``--input`` for ``input_usd_per_mtok``, ``--scope`` for ``scopes.1``), else the field
    with dashes. A store that is unavailable says why (no credentials, a missing table), which
    the API hides.
    """
    message = exc.message
    param = exc.param
    if isinstance(exc, InvalidRequest) and param and re.match(rf"{re.escape(param)}\b", message):
        message = _option_for(param) + message[len(param) :]
    if isinstance(exc, ServiceUnavailable) and exc.__cause__ is not None:
        message += f" ({type(exc.__cause__).__name__}: {exc.__cause__})"
    return message


def _option_for(param: str) -> str:
    field = param.split(".", 1)[0]
    context = click.get_current_context(silent=True)
    for option in context.command.params if context is not None else ():
        if isinstance(option, click.Option) and option.name == field:
            return option.opts[0]
    return f"--{param.replace('_', '-')}"


@contextmanager
def as_cli_errors() -> Iterator[None]:
    """Inside a command: our errors become ``Error: <message>`` naming its own options."""
    try:
        yield
    except GatewayError as exc:
        raise click.ClickException(error_message(exc)) from exc
