"""The ``auto`` group: a key that lets the gateway pick its channel group per call (pure).

The operator orders groups (``PUT /admin/groups/auto`` with ``{"order": ["default", "vip"]}``).
A key whose group is ``auto`` uses, for each call, the first group of that order that

* the key's account is granted (``Account.groups``), and
* has an enabled channel serving the call's model.

That group's ratio prices the call, the account reservation checks that the account still grants
it, and the usage log records it. A key may be given the group ``auto`` when its account is
granted ``auto`` itself or at least one group of the current order: ``auto`` never reaches a group
the account is not granted, whatever the order says later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

AUTO_GROUP = "auto"


def may_use_auto(granted: Iterable[str], order: Iterable[str]) -> bool:
    """Whether an account granted ``granted`` may have keys in the ``auto`` group."""
    granted = set(granted)
    return AUTO_GROUP in granted or any(group in granted for group in order)


def auto_choice(
    order: Iterable[str], granted: Iterable[str], serves: Callable[[str], bool]
) -> str | None:
    """The first group of ``order`` that is granted and ``serves`` the call; None if none."""
    allowed = set(granted)
    for group in order:
        if group != AUTO_GROUP and group in allowed and serves(group):
            return group
    return None


def candidate_groups(order: Iterable[str], granted: Iterable[str]) -> list[str]:
    """The ordered groups an ``auto`` key of an account granted ``granted`` can reach."""
    allowed = set(granted)
    return [group for group in order if group != AUTO_GROUP and group in allowed]
