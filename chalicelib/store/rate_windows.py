"""The rate-limit clauses of a token reservation (see ``core/limits.py`` and ``store/ledger.py``).

Built per call from the key as the gateway checked it; the reservation pins that copy's
revision, so the limits used here are the stored ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.core import limits

if TYPE_CHECKING:
    from chalicelib.store.ledger import AccountLimits, KeyCheck


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


@dataclass(frozen=True)
class Counted:
    """A reservation that landed, and the key's current minute as it left it (None: no limit)."""

    requests: int | None = None
    tokens: int | None = None
    minute: int = 0


def limit_clauses(
    key: KeyCheck | AccountLimits, now: int, *, stored: bool = False
) -> tuple[str, str, str, dict[str, Any], dict[str, Any]]:
    """The rate-limit parts of a reservation: (SET actions, REMOVE actions, condition, names,
    values); all empty without limits.

    A key's limits are compared as values (the reservation pins the key's revision, so they are
    the stored ones). An account's are compared with its stored attributes (``stored``): the
    cached copy only says which clauses to send, so a limit lowered or removed counts at once.
    """
    sets, removes, conditions = [], [], []
    names: dict[str, Any] = {}
    values: dict[str, Any] = {}
    if key.max_concurrency is not None:
        if stored:
            conditions.append(
                "(attribute_not_exists(max_concurrency) OR size(pending) < max_concurrency)"
            )
        else:
            conditions.append("size(pending) < :max_concurrency")
            values[":max_concurrency"] = _n(key.max_concurrency)
    windows = [
        ("requests_by_minute", key.rpm_limit, ":rpm_limit", " + :one"),
        # Touched (not counted) so the answer carries the minute's total; the settle counts.
        ("tokens_by_minute", key.tpm_limit, ":tpm_limit", ""),
    ]
    minute = limits.minute(now)
    stale = limits.stale_minutes(key.known_minutes, minute)
    for attribute, limit, placeholder, count in windows:
        if limit is None:
            continue
        window = f"{attribute}.#minute"
        sets.append(f"{window} = if_not_exists({window}, :zero){count}")
        removes += [f"{attribute}.#stale{i}" for i in range(len(stale))]
        if stored:
            name = placeholder[1:]  # the attribute itself: rpm_limit, tpm_limit
            conditions.append(
                f"(attribute_not_exists({name}) OR attribute_not_exists({window})"
                f" OR {window} < {name})"
            )
        else:
            conditions.append(f"(attribute_not_exists({window}) OR {window} < {placeholder})")
            values[placeholder] = _n(limit)
    if sets:
        names["#minute"] = str(minute)
        names.update({f"#stale{i}": str(m) for i, m in enumerate(stale)})
        values.update({":zero": _n(0), ":one": _n(1)} if key.rpm_limit else {":zero": _n(0)})
    return (
        "".join(f", {action}" for action in sets),
        f" REMOVE {', '.join(removes)}" if removes else "",
        "".join(f" AND {clause}" for clause in conditions),
        names,
        values,
    )


def counted(item: dict[str, Any], key: KeyCheck, now: int) -> Counted:
    """This minute's requests and tokens, from the reservation's answer (or, for a retry that
    found its own entry, from the item as it was)."""
    minute = str(limits.minute(now))

    def count(attribute: str, limit: int | None) -> int | None:
        if limit is None:
            return None
        return int(item.get(attribute, {}).get("M", {}).get(minute, {}).get("N", 0))

    return Counted(
        requests=count("requests_by_minute", key.rpm_limit),
        tokens=count("tokens_by_minute", key.tpm_limit),
        minute=int(minute),
    )
