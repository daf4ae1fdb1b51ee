"""The ``sluice`` command line."""

from __future__ import annotations

import sys

import click

from chalicelib.core import observe


def logs_to_stderr() -> None:
    """For the current command, log warnings and errors to stderr and drop the rest.

    stdout is the command's answer (``--json`` must parse); the per-call and per-reset lines are
    for CloudWatch, where the Lambdas write them.
    """
    click.get_current_context().with_resource(observe.diverted(sys.stderr, "WARNING"))
