"""``make run`` on a port something already serves: refused before anything starts."""

from __future__ import annotations

import socket

import pytest

from devtools import stack


def test_a_busy_port_is_refused_before_anything_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a port another server (an earlier `make run`, say) listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started: list[str] = []
        monkeypatch.setattr(stack, "start_local_dynamodb", lambda **_: started.append("ddb"))
        # WHEN the stack is started on it
        with pytest.raises(stack.StackError) as refused:
            stack.start_stack(port=port)
    # THEN nothing was started (no banner with keys that server would refuse), and the error
    # says how to choose another port
    assert started == []
    assert f"port {port} is in use" in str(refused.value)
    assert "make run PORT=" in str(refused.value)
