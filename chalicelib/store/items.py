"""Items in DynamoDB's JSON, read and written without PynamoDB (see ``tables.py`` for why).

``plain`` turns an item into Python values the way PynamoDB's attributes read them (a number
is an int unless it has a fraction, a map a dict, a list a list); ``attribute`` and ``item`` go
the other way, leaving out what is None as PynamoDB does. ``B`` values arrive base64-encoded
from the lean client and as bytes from botocore; both read as bytes.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def plain(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """An item (``{"name": {"S": "x"}}``) as ``{"name": "x"}``; {} for None."""
    return {name: value(typed) for name, typed in (raw or {}).items()}


def or_default(value: Any, default: Any) -> Any:
    """``value``, or ``default`` when the attribute is absent or NULL (not when it is falsy):
    how a record reads an item written before the attribute existed, as PynamoDB's defaults do."""
    return default if value is None else value


def value(typed: Mapping[str, Any]) -> Any:
    (kind, body), *_ = typed.items()
    if kind == "S":
        return str(body)
    if kind == "N":
        return number(body)
    if kind == "BOOL":
        return bool(body)
    if kind == "NULL":
        return None
    if kind == "M":
        return plain(body)
    if kind == "L":
        return [value(element) for element in body]
    if kind == "SS":
        return {str(element) for element in body}
    if kind == "NS":
        return {number(element) for element in body}
    if kind == "B":
        return body if isinstance(body, bytes) else base64.b64decode(body)
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def number(text: str) -> int | float:
    """As PynamoDB's NumberAttribute reads one: an int, or a float if it has a fraction."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def attribute(python: Any) -> dict[str, Any]:
    """One value in DynamoDB's JSON (None inside a map or list is NULL)."""
    if isinstance(python, bool):
        return {"BOOL": python}
    if isinstance(python, str):
        return {"S": python}
    if isinstance(python, int | Decimal):
        return {"N": str(python)}
    if isinstance(python, float):
        return {"N": repr(python)}
    if python is None:
        return {"NULL": True}
    if isinstance(python, Mapping):
        return {"M": {str(k): attribute(v) for k, v in python.items()}}
    if isinstance(python, list | tuple):
        return {"L": [attribute(element) for element in python]}
    raise TypeError(f"cannot store {type(python).__name__} in DynamoDB")


def item(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """An item from top-level values; None values are left out (the attribute is absent)."""
    return {name: attribute(v) for name, v in values.items() if v is not None}
