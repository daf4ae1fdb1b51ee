"""The demo upstream's output: a client hanging up is no traceback; a real fault still is."""

from __future__ import annotations

import pytest

from devtools.mock_upstream import MockUpstream


@pytest.mark.parametrize("error", [BrokenPipeError(32, "Broken pipe"), ConnectionResetError()])
def test_a_client_that_hung_up_leaves_no_traceback(
    error: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    with MockUpstream(api_key="k" * 20).start() as upstream:
        server = upstream._server
        assert server is not None
        try:
            raise error
        except ConnectionError:
            server.handle_error(None, ("127.0.0.1", 1))
        try:
            raise ValueError("a real fault")
        except ValueError:
            server.handle_error(None, ("127.0.0.1", 1))
    printed = capsys.readouterr().err
    assert "ValueError: a real fault" in printed
    assert type(error).__name__ not in printed
