"""The scope rules: what a key may do, and what it may grant (pure, no mocks)."""

from __future__ import annotations

import pytest

from chalicelib.core import scopes
from chalicelib.core.errors import InsufficientScope


def test_a_missing_scope_is_a_403_naming_it() -> None:
    # GIVEN a key holding resets:run  WHEN it needs accounts:write
    with pytest.raises(InsufficientScope) as refused:
        scopes.require(frozenset({"resets:run"}), "accounts:write")

    # THEN the error is a 403 insufficient_scope whose message names the scope
    assert refused.value.status == 403
    assert refused.value.instance_code == "insufficient_scope"
    assert "'accounts:write'" in refused.value.message
    assert refused.value.needed == "accounts:write"


def test_a_held_scope_passes() -> None:
    scopes.require(frozenset({"resets:run"}), "resets:run")
    scopes.require(scopes.ALL_SCOPES, "keys:admin")


def test_only_scopes_the_granter_holds_can_be_granted() -> None:
    # GIVEN a granter with keys:admin and resets:run
    held = frozenset({"keys:admin", "resets:run"})

    # WHEN it grants its own scopes, then one more  THEN only the first passes
    scopes.require_grantable(held, ["resets:run", "keys:admin"])
    with pytest.raises(InsufficientScope) as refused:
        scopes.require_grantable(held, ["resets:run", "logs:read", "accounts:write"])
    assert refused.value.param == "scopes"
    assert "'accounts:write'" in refused.value.message  # the first in sorted order
