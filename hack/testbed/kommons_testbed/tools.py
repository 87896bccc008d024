"""Where the bed's binaries are: the cache that ``hack/testbed/build-tools.sh`` fills."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from kommons_testbed.processes import BedError

TESTBED_DIR = Path(__file__).resolve().parent.parent
"""``hack/testbed/`` of the checkout this package is installed from (editable install)."""
REPO_ROOT = TESTBED_DIR.parent.parent
KWOK_STAGES = TESTBED_DIR / "kwok-stages.yaml"

KUBE_TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubectl",
)
"""Binaries a bed with providers needs (``kubectl`` for people and tests)."""


@functools.cache
def bin_dir() -> Path:
    """Return ``$KOMMONS_BIN``, or the cache directory ``versions.sh`` derives from the pins."""
    env = os.environ.get("KOMMONS_BIN")
    if env:
        return Path(env)
    versions = TESTBED_DIR / "versions.sh"
    try:
        out = subprocess.run(
            ["bash", "-c", 'source "$1" && printf %s "$KOMMONS_BIN"', "versions", str(versions)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BedError(f"cannot read the pinned versions from {versions}: {exc}") from None
    return Path(out)


def binary(name: str) -> Path:
    """Return the path of the cached binary ``name``; a clear error if it was not built."""
    path = bin_dir() / name
    if not os.access(path, os.X_OK):
        raise BedError(
            f"{name} not found at {path}: run `make deps` (or `make tools`) to build the "
            "bed's binaries from the pinned Go modules"
        )
    return path


def check_binaries(names: tuple[str, ...] = KUBE_TOOLS) -> None:
    """Raise one :class:`BedError` listing every missing binary."""
    missing = [n for n in names if not os.access(bin_dir() / n, os.X_OK)]
    if missing:
        raise BedError(
            f"missing bed binaries {missing} in {bin_dir()}: run `make deps` (or `make tools`)"
        )
