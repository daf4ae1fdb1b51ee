"""Small helpers shared by test modules (importable as ``support``: tests/ is on pythonpath)."""

from __future__ import annotations

import socket

ADMIN_KEY = "test-admin-" + "k" * 24


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
