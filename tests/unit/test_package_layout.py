"""The repository's shape: ``operator/`` holds the ``kommons`` package without shadowing stdlib.

Behaviour matrix:

- ``import operator`` is still the standard library module (``operator/`` is not a package).
- ``kommons`` is imported from ``operator/kommons`` and carries ``py.typed``.
- the ``kommons`` and ``kommons-testbed`` commands answer ``--help``.
"""

from __future__ import annotations

import operator
import subprocess
import sys
from pathlib import Path

import kommons

REPO = Path(__file__).resolve().parents[2]


def test_import_operator_is_the_standard_library() -> None:
    assert operator.add(2, 3) == 5
    assert operator.__file__ is not None
    assert Path(operator.__file__).parent != REPO / "operator"
    assert not (REPO / "operator" / "__init__.py").exists()


def test_kommons_comes_from_operator_dir() -> None:
    assert kommons.__file__ is not None
    package = Path(kommons.__file__).parent
    assert package == REPO / "operator" / "kommons"
    assert (package / "py.typed").exists()


def test_commands_answer_help() -> None:
    for module in ("kommons.cli", "kommons_testbed.cli"):
        result = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "usage" in result.stdout.lower()
