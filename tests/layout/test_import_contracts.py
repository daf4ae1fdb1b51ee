"""The layout's arrows are contracts: `make lint` runs import-linter, and a forbidden import fails.

Each test copies ``chalicelib/`` and the contracts to a temporary directory, adds one import that
breaks a rule, and runs ``lint-imports`` there: it must fail and name the offending import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "chalicelib",
        tmp_path / "chalicelib",
        ignore=shutil.ignore_patterns("__pycache__", "static"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_layout_keeps_every_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "named"),
    [
        ("core/keys.py", "import httpx  # noqa", "chalicelib.core.keys -> httpx"),
        ("core/quota.py", "import boto3  # noqa", "chalicelib.core.quota -> boto3"),
        (
            "core/pricing.py",
            "from chalicelib.store import models  # noqa",
            "chalicelib.core.pricing -> chalicelib.store.models",
        ),
        (
            "store/tokens.py",
            "from chalicelib.upstream import client  # noqa",
            "chalicelib.store.tokens -> chalicelib.upstream.client",
        ),
        (
            "store/usage.py",
            "from chalicelib.services import gateway  # noqa",
            "chalicelib.store.usage -> chalicelib.services.gateway",
        ),
        (
            "services/reports.py",
            "from chalicelib.api import web  # noqa",
            "chalicelib.services.reports -> chalicelib.api.web",
        ),
        (
            "cli/resets.py",
            "from chalicelib.api import auth  # noqa",
            "chalicelib.cli.resets -> chalicelib.api.auth",
        ),
        (
            "relay/app.py",
            "from chalicelib.api import web  # noqa",
            "chalicelib.relay.app -> chalicelib.api.web",
        ),
        (
            "api/web.py",
            "from chalicelib.relay import app  # noqa",
            "chalicelib.api.web -> chalicelib.relay.app",
        ),
        ("core/errors.py", "import starlette  # noqa", "chalicelib.core.errors -> starlette"),
    ],
)
def test_a_forbidden_import_breaks_a_contract_and_is_named(
    tree: Path, module: str, bad_import: str, named: str
) -> None:
    # GIVEN the tree with one import against the layout
    _append(tree / "chalicelib" / module, bad_import)
    # WHEN the contracts are checked
    result = _lint(tree)
    # THEN the check fails and its report names the import
    assert result.returncode != 0
    assert named in result.stdout, result.stdout


def test_importing_the_relay_app_loads_neither_chalice_nor_pydantic() -> None:
    # GIVEN a fresh interpreter  WHEN it imports the relay's ASGI app
    probe = (
        "import sys, chalicelib.relay.app as relay; "
        "print(','.join(m for m in ('chalice', 'pydantic') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # THEN it starts without the management API's heavy dependencies
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
